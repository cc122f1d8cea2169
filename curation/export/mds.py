"""MosaicML streaming export: one MDS dataset per source, and the streams with their proportions.

    mds/<source>/index.json, shard.00000.mds, ...   as streaming's MDSWriter writes them, uncompressed,
                                                    no hashes, its default size_limit (1 << 26 bytes)
    mds/streams.json                                {"streams": {source: {"local": folder, "proportion": share}}}

Columns: record_id:str, source:str, text:str, tokens:ndarray:int32 (token ids with the
end-of-document token; int32 as llm-foundry's convert_dataset_hf writes pre-tokenized samples).
`local` is the absolute path of the final folder; `proportion` the manifest's realised share.

The layout, from mosaicml/streaming (streaming/base/format/mds/writer.py, base/format/base/writer.py,
mds/encodings.py; format version 2):
- columns are kept sorted by name; a sample is the uint32 byte sizes of its variable-size columns
  (here all of them) followed by each column's encoding: `str` is UTF-8; `ndarray:<dtype>` without a
  fixed shape is one byte `(ndim << 2) | shape dtype code` (0 uint8, 1 uint16, 2 uint32, 3 uint64;
  the smallest that holds every dimension), the shape in that dtype, then the values;
- a shard is uint32 sample count, uint32 offsets of the n samples plus their end (absolute in the
  file), the shard config as JSON (sorted keys), then the samples; all little-endian;
- a sample goes to a new shard when the current one's bytes (4 + 4 + config per shard, 4 + sample
  per sample) plus it would exceed size_limit, tested before it is added, as MDSWriter does;
- index.json is `{"shards": [config + samples, raw_data {basename, bytes, hashes}, zip_data], "version": 2}`
  dumped with sorted keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from curation.export.records import Progress, TokenizedRecords, sources_in_order
from warehouse.files import write_json_atomic

SIZE_LIMIT = 1 << 26  # MDSWriter's default
COLUMNS = {"record_id": "str", "source": "str", "text": "str", "tokens": "ndarray:int32"}
TOKEN_DTYPE = np.dtype("<i4")
SHAPE_DTYPES = ((1 << 8, 0, "<u1"), (1 << 16, 1, "<u2"), (1 << 32, 2, "<u4"), (1 << 64, 3, "<u8"))


def shard_config(size_limit: int) -> dict:
    names = sorted(COLUMNS)
    return {
        "version": 2,
        "format": "mds",
        "compression": None,
        "hashes": [],
        "size_limit": size_limit,
        "column_names": names,
        "column_encodings": [COLUMNS[name] for name in names],
        "column_sizes": [None] * len(names),  # str and shape-free ndarray are variable-size
    }


def encode_ids(ids: list[int]) -> bytes:
    length = len(ids)
    code, shape_dtype = next((code, dtype) for bound, code, dtype in SHAPE_DTYPES if length < bound)
    header = bytes([(1 << 2) | code]) + np.array([length], dtype=shape_dtype).tobytes()
    return header + np.asarray(ids, dtype=TOKEN_DTYPE).tobytes()


def encode_sample(record_id: str, source: str, text: str, ids: list[int]) -> bytes:
    parts = [record_id.encode("utf-8"), source.encode("utf-8"), text.encode("utf-8"), encode_ids(ids)]
    return np.array([len(p) for p in parts], dtype="<u4").tobytes() + b"".join(parts)


class MDSDataset:
    """One source's shards, flushed as each fills, and its index.json on close."""

    def __init__(self, folder: Path, size_limit: int):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.size_limit = size_limit
        self.config = shard_config(size_limit)
        self.config_data = json.dumps(self.config, sort_keys=True).encode("utf-8")
        self.shards: list[dict] = []
        self._reset()

    def _reset(self) -> None:
        self.samples: list[bytes] = []
        self.size = 4 + 4 + len(self.config_data)

    def add(self, sample: bytes) -> None:
        if self.size_limit < self.size + len(sample) + 4:
            self._flush()
        self.samples.append(sample)
        self.size += len(sample) + 4

    def _flush(self) -> None:
        count = len(self.samples)
        head = 4 + 4 * (count + 1) + len(self.config_data)
        offsets = np.cumsum([0] + [len(s) for s in self.samples], dtype=np.int64) + head
        data = np.array([count], "<u4").tobytes() + offsets.astype("<u4").tobytes() + self.config_data + b"".join(self.samples)
        basename = f"shard.{len(self.shards):05d}.mds"
        (self.folder / basename).write_bytes(data)
        raw = {"basename": basename, "bytes": len(data), "hashes": {}}
        self.shards.append({"samples": count, "raw_data": raw, "zip_data": None, **self.config})
        self._reset()

    def close(self) -> None:
        if self.samples:
            self._flush()
        text = json.dumps({"version": 2, "shards": self.shards}, sort_keys=True)
        (self.folder / "index.json").write_text(text, encoding="utf-8")


def write(manifest: dict, tokenizer, out_dir: Path, progress: Progress | None = None, *, final_dir: Path | None = None) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = TokenizedRecords(manifest, tokenizer, progress, columns=["record_id", "source", "text"])
    datasets: dict[str, MDSDataset] = {}
    for batch in records:
        columns = (batch.rows.column(name).to_pylist() for name in ("record_id", "source", "text"))
        for record_id, source, text, ids in zip(*columns, batch.ids):
            if source not in datasets:
                datasets[source] = MDSDataset(out_dir / source, SIZE_LIMIT)
            datasets[source].add(encode_sample(record_id, source, text, ids))
    tokens = records.finish()
    for dataset in datasets.values():
        dataset.close()
    folder = Path(final_dir or out_dir).resolve()
    streams = {
        source: {"local": str(folder / source), "proportion": float(manifest["sources"][source]["realised_share"])}
        for source in sources_in_order(manifest, datasets)
    }
    write_json_atomic(out_dir / "streams.json", {"streams": streams})
    return {"tokens_per_source": tokens, "size_limit": SIZE_LIMIT}
