"""Hugging Face `datasets` export: the mixture as Parquet and as JSONL, one file per mixture shard.

    hf/parquet/train-00000-of-00002.parquet ...   datasets.load_dataset("parquet", data_files=sorted files)
    hf/jsonl/train-00000-of-00002.jsonl ...       datasets.load_dataset("json", data_files=sorted files)

Each row is a mixture record (every MIXTURE_RECORD column) plus `input_ids`, its token ids with the
end-of-document token. File names sort in training order, rows keep the mixture's order, so the
files concatenated in name order are the training order (`position` says so too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.export.records import Progress, TokenizedRecords
from schemas.mixture import MIXTURE_RECORD

IDS_FIELD = pa.field("input_ids", pa.list_(pa.int32()), nullable=False)
SCHEMA = MIXTURE_RECORD.append(IDS_FIELD)


def shard_name(index: int, count: int) -> str:
    return f"train-{index:05d}-of-{count:05d}"


class _ShardFiles:
    """The Parquet and JSONL files of one mixture shard."""

    def __init__(self, out_dir: Path, name: str):
        self.parquet = pq.ParquetWriter(out_dir / "parquet" / f"{name}.parquet", SCHEMA)
        self.jsonl = open(out_dir / "jsonl" / f"{name}.jsonl", "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, rows: pa.RecordBatch, ids: list[list[int]]) -> None:
        table = pa.Table.from_batches([rows]).select(MIXTURE_RECORD.names).cast(MIXTURE_RECORD)
        table = table.append_column(IDS_FIELD, pa.array(ids, type=IDS_FIELD.type))
        self.parquet.write_table(table)
        for record in table.to_pylist():
            self.jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.parquet.close()
        self.jsonl.close()


def write(manifest: dict, tokenizer, out_dir: Path, progress: Progress | None = None, *, final_dir: Path | None = None) -> dict:
    out_dir = Path(out_dir)
    for folder in ("parquet", "jsonl"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    records = TokenizedRecords(manifest, tokenizer, progress, columns=MIXTURE_RECORD.names)
    count = len(manifest["shards"])
    current, files = None, None
    try:
        for batch in records:
            if batch.shard != current:
                if files is not None:
                    files.close()
                current, files = batch.shard, _ShardFiles(out_dir, shard_name(batch.shard, count))
            files.write(batch.rows, batch.ids)
    finally:
        if files is not None:
            files.close()
    return {"tokens_per_source": records.finish()}
