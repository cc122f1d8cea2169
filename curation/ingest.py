"""Ingest: read an input shard, validate it, normalise text, give every document a stable id.

File-level problems (unreadable, not Parquet, no text column, two columns of one name) raise
`ShardError`; row-level problems (null, empty, a value in any column that is not UTF-8, too long)
quarantine that row with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath

import pyarrow as pa

from curation.stage import Rejection, ShardContext, Stage, split_rows
from schemas.config import IngestConfig, InputConfig
from scorers.normalize import content_hash, generated_doc_id, normalize_text
from warehouse.shards import (
    InvalidUtf8,
    ShardError,
    check_text_column,
    decode_utf8,
    iter_parquet_batches,
    open_parquet,
    python_rows,
)


class InputShard:
    """One input file, validated up front so that a bad file fails before any output is written."""

    def __init__(self, path: str, cfg: InputConfig):
        self.path = path
        self.cfg = cfg
        with open_parquet(path) as pf:
            self.schema = pf.schema_arrow
            self.num_rows = pf.metadata.num_rows  # what the footer declares, checked against what is read
        duplicated = sorted({n for n in self.schema.names if self.schema.names.count(n) > 1})
        if duplicated:
            raise ShardError(path, f"duplicate column names {duplicated}: their values cannot be told apart")
        check_text_column(path, self.schema, cfg.text_column)
        self.id_column = cfg.id_column if cfg.id_column in self.schema.names else None
        # logical -> physical, for the optional columns this shard actually has
        self.mapped = {k: v for k, v in cfg.columns.items() if v in self.schema.names}
        used = {cfg.text_column, *self.mapped.values()} | ({self.id_column} if self.id_column else set())
        self.unmapped = [n for n in self.schema.names if n not in used]
        self.default_source = cfg.source or PurePosixPath(path.split("://")[-1]).parent.name or None

    def input_column(self, batch_column: str) -> str:
        """The input file's name of a column of `batches()`."""
        return self.cfg.text_column if batch_column == "text" else batch_column.removeprefix("__in_")

    def batches(self) -> Iterator[pa.Table]:
        try:
            for batch in iter_parquet_batches(self.path, self.cfg.batch_size):
                yield batch.rename_columns(["text" if n == self.cfg.text_column else f"__in_{n}" for n in batch.schema.names])
        except ShardError:
            raise
        except (pa.ArrowException, OSError) as err:
            raise ShardError(self.path, f"corrupt data while reading rows ({err})") from None


def _text_verdict(
    value: str | bytes | None, invalid: list[InvalidUtf8], shard: InputShard, limits: IngestConfig
) -> tuple[str | None, Rejection | None]:
    """The document's text and why it is rejected, if it is. `invalid` lists the row's values that
    are not UTF-8 (in any column); such a row keeps a readable rendering, unnormalised, so that
    input_file/input_row still lead to the raw bytes."""
    if isinstance(value, bytes):
        value, problem = decode_utf8(value, "text")
        invalid = invalid + [problem] if problem else invalid
    if invalid:
        detail = "; ".join(str(replace(p, column=shard.input_column(p.column))) for p in invalid)
        return value, Rejection("invalid_utf8", detail)
    if value is None:
        return None, Rejection("null_text")
    text = normalize_text(value).strip("\n")
    if len(text.strip()) < limits.min_chars:
        return None, Rejection("empty_text", f"{len(text.strip())} characters after normalisation")
    if len(text) > limits.max_chars:
        return text, Rejection("too_long", f"{len(text)} characters > ingest.max_chars={limits.max_chars}")
    return text, None


def _as_datetime(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _metadata(row: dict, shard: InputShard, extra: dict) -> str | None:
    meta: dict = dict(extra)
    raw = row.get(f"__in_{shard.mapped['metadata']}") if "metadata" in shard.mapped else None
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
            meta.update(parsed if isinstance(parsed, dict) else {"metadata": parsed})
        except json.JSONDecodeError:
            meta["metadata"] = raw
    elif isinstance(raw, dict):
        meta.update(raw)
    elif raw is not None:  # a list, a number, a map's pairs: kept as they are, never dropped
        meta["metadata"] = raw
    for name in shard.unmapped:
        meta[name] = row.get(f"__in_{name}")
    return json.dumps(meta, default=str, sort_keys=True) if meta else None


def ingest_batch(
    batch: pa.Table, shard: InputShard, first_row: int, run_id: str, limits: IngestConfig
) -> tuple[pa.Table, pa.Table]:
    rows_out, verdicts = [], []
    rows, invalid = python_rows(batch)
    for offset, row in enumerate(rows):
        input_row = first_row + offset
        text, verdict = _text_verdict(row["text"], invalid[offset], shard, limits)
        raw_id = row.get(f"__in_{shard.id_column}") if shard.id_column else None
        doc_id = str(raw_id) if raw_id is not None else generated_doc_id(shard.path, input_row)

        def field(name: str, row: dict = row):
            return row.get(f"__in_{shard.mapped[name]}") if name in shard.mapped else None

        source = field("source")
        crawl_date = _as_datetime(field("crawl_date"))
        # a value we cannot read as a date is kept, not dropped
        unparsed = (
            {"crawl_date_unparsed": str(field("crawl_date"))} if crawl_date is None and field("crawl_date") is not None else {}
        )
        rows_out.append(
            {
                "doc_id": doc_id,
                "text": text if text is not None else "",
                "content_hash": content_hash(text) if text is not None else "",
                "run_id": run_id,
                "source": str(source) if source is not None else shard.default_source,
                "url": None if field("url") is None else str(field("url")),
                "crawl_date": crawl_date,
                "input_file": shard.path,
                "input_row": input_row,
                "metadata": _metadata(row, shard, unparsed),
                "n_chars": len(text) if text is not None else 0,
                "n_words": len(text.split()) if text is not None else 0,
                "n_lines": text.count("\n") + 1 if text else 0,
                "input_language": None if field("language") is None else str(field("language")),
            }
        )
        verdicts.append(verdict)
    return split_rows(rows_out, verdicts, Ingest.name)


class Ingest(Stage):
    """The first stage: reads the shard's input file instead of a previous stage's output. A file
    that cannot be read raises `ShardError`; the runner records it as an input error."""

    name = "ingest"
    config_section = "ingest"
    reads_input = True

    def begin_shard(self, ctx: ShardContext) -> None:
        self.run_id = ctx.run_id
        self.source = InputShard(ctx.input_path, self.run_config.input)
        self.next_row = 0

    def batches(self, previous_curated: Path | None) -> Iterator[pa.Table]:
        return self.source.batches()

    def process(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        first, self.next_row = self.next_row, self.next_row + batch.num_rows
        return ingest_batch(batch, self.source, first, self.run_id, self.config)

    def shard_extra(self) -> dict:
        return {"input_rows": self.source.num_rows}  # checked against the rows read
