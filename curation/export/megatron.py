"""Megatron-LM export: one indexed dataset (`.bin` + `.idx`) per source, and the blend.

    megatron/<source>_text_document.bin / .idx   one sequence (and one document) per record, mixture order
    megatron/data_path.txt                       `w1 prefix1 w2 prefix2 ...`  for --data-args-path
    megatron/blend.json                          {"train": [w1, prefix1, ...], "valid": null, "test": null}
                                                 for --per-split-data-args-path

Prefixes are absolute paths of the final export folder, so the files work from any working
directory (Megatron reads relative prefixes against the trainer's own); moving the export means
exporting again. Weights are the manifest's realised shares (Megatron normalises them).

`.idx` layout, version 1 (megatron/core/datasets/indexed_dataset.py, `_IndexWriter`): the 9-byte
magic `MMIDIDX\\x00\\x00`, u64 version 1, u8 dtype code, u64 sequence count, u64 document count, then
the sequence lengths (int32), sequence byte offsets into `.bin` (int64) and document indices (int64,
0 followed by each document's end in sequences), all little-endian. Token dtype as Megatron's
`DType.optimal_dtype(vocab size)`: uint16 below 65500 ids, else int32.
"""

from __future__ import annotations

import struct
from array import array
from pathlib import Path

import numpy as np

from curation.export.records import ExportError, Progress, TokenizedRecords, sources_in_order
from warehouse.files import write_json_atomic, write_text_atomic

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}  # Megatron's DType enum


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


def prefix_name(source: str) -> str:
    return f"{source}_text_document"


class IndexedDatasetFile:
    """One `.bin` written as records arrive; its `.idx` written on close."""

    def __init__(self, prefix: Path, dtype: np.dtype):
        self.prefix = prefix
        self.dtype = dtype
        self.lengths = array("q")
        self.bin = open(f"{prefix}.bin", "wb")  # noqa: SIM115 - closed in close()

    def add(self, ids: list[int]) -> None:
        self.bin.write(np.asarray(ids, dtype=self.dtype).tobytes())
        self.lengths.append(len(ids))

    def close(self) -> None:
        self.bin.close()
        lengths = np.frombuffer(self.lengths, dtype=np.int64)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1] * self.dtype.itemsize, out=pointers[1:])
        documents = np.arange(len(lengths) + 1, dtype=np.int64)  # one document per sequence
        with open(f"{self.prefix}.idx", "wb") as idx:
            idx.write(MAGIC)
            idx.write(struct.pack("<QBQQ", VERSION, DTYPE_CODES[self.dtype], len(lengths), len(documents)))
            idx.write(lengths.astype("<i4").tobytes())
            idx.write(pointers.astype("<i8").tobytes())
            idx.write(documents.astype("<i8").tobytes())


def check_folder(folder: Path) -> None:
    if any(ch.isspace() for ch in str(folder)):
        raise ExportError(f"megatron export folder {folder} contains whitespace: Megatron's data paths are whitespace-separated")


def blend(manifest: dict, sources: list[str], folder: Path) -> list:
    """`[weight, prefix, weight, prefix, ...]` as Megatron's get_blend_from_list reads it."""
    flat = []
    for source in sources:
        flat += [float(manifest["sources"][source]["realised_share"]), str(folder / prefix_name(source))]
    return flat


def write(manifest: dict, tokenizer, out_dir: Path, progress: Progress | None = None, *, final_dir: Path | None = None) -> dict:
    out_dir = Path(out_dir)
    folder = Path(final_dir or out_dir).resolve()
    check_folder(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.vocab_size)
    records = TokenizedRecords(manifest, tokenizer, progress, columns=["source"])
    files: dict[str, IndexedDatasetFile] = {}
    try:
        for batch in records:
            for source, ids in zip(batch.rows.column("source").to_pylist(), batch.ids):
                if source not in files:
                    files[source] = IndexedDatasetFile(out_dir / prefix_name(source), dtype)
                files[source].add(ids)
    finally:
        for file in files.values():
            file.close()
    tokens = records.finish()
    flat = blend(manifest, sources_in_order(manifest, files), folder)
    write_text_atomic(out_dir / "data_path.txt", " ".join(str(item) for item in flat) + "\n")
    write_json_atomic(out_dir / "blend.json", {"train": flat, "valid": None, "test": None})
    return {"tokens_per_source": tokens, "dtype": dtype.name}
