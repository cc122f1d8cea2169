"""A mixture's sources read into candidate files: every record a source could give, in a stable
order, with the text hash its cached facts are keyed by.

Documents and synthetic records are selected from the warehouse views with the source's `where`,
numbered and hashed by DuckDB in one `COPY`: the row numbers come from the ordering columns alone
and the texts stream to the file in row groups of about 2 MB, so memory does not grow with the
source; replay files are read row by row, each row checked, and written as they stream. The order
(record identity, then file and row) fixes what the seeded sampling sees, whatever order the
warehouse returned them in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.mixture import MIXTURE_RECORD, DocumentsSource, ReplaySource, SyntheticSource
from warehouse.arrow import numeric_array, repeated_string, string_array
from warehouse.record_cache import TEXT_HASH, text_hash_sql, text_hashes
from warehouse.shards import ShardWriter
from warehouse.warehouse import Warehouse, sql_string

IDENTITY_COLUMNS = ("record_id", "doc_id", "run_id", "rewrite_id", "style", "replay_file", "replay_row")
CANDIDATE = pa.schema(
    [pa.field("row", pa.int64(), nullable=False)]
    + [MIXTURE_RECORD.field(name) for name in (*IDENTITY_COLUMNS, "text")]
    + [TEXT_HASH, pa.field("language", pa.string())]  # which language-specific eval sets apply
    + [pa.field("text_bytes", pa.int64(), nullable=False)]  # the shuffle's memory budget counts these
)
BATCH_ROWS = 4096
# a row group is what a reader of the candidates holds at once (per thread): a size in bytes keeps
# that the same for short and long records, and for small and large sources
CANDIDATE_ROW_GROUP_BYTES = "2MB"


class MixtureError(ValueError):
    """A spec that cannot be met or read: the message names the source and the knob."""


def _sql_list(values: list[str]) -> str:
    return ", ".join(map(sql_string, values))


def _where(source, lists: dict[str, list[str]]) -> str:
    """The WHERE clause of a source: each non-empty list as `column IN (...)`, and its own `where`."""
    conditions = [f"{column} IN ({_sql_list(values)})" for column, values in lists.items() if values]
    if source.where:
        conditions.append(f"({source.where})")
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def _warehouse_query(source: DocumentsSource | SyntheticSource) -> tuple[str, str]:
    """The source's records as candidate columns, and the columns that order them stably."""
    if isinstance(source, DocumentsSource):
        where = _where(source, {"run_id": source.runs})
        query = f"""SELECT doc_id AS record_id, doc_id, run_id, NULL::VARCHAR AS rewrite_id, NULL::VARCHAR AS style,
                           NULL::VARCHAR AS replay_file, NULL::BIGINT AS replay_row, text, language
                    FROM documents {where}"""
        return query, "run_id, doc_id"
    where = _where(source, {"style": source.styles, "rewrite_id": source.rewrite_ids})
    query = f"""SELECT record_id, doc_id, source_run_id AS run_id, rewrite_id, style,
                       NULL::VARCHAR AS replay_file, NULL::BIGINT AS replay_row, text, language
                FROM synthetic {where}"""
    return query, "rewrite_id, record_id"


def _check_named_jobs(warehouse: Warehouse, source) -> None:
    """A run or rewrite named in the spec that is not completed would select nothing, silently."""
    if isinstance(source, DocumentsSource):
        named, view, column = source.runs, "runs", "run_id"
    elif isinstance(source, SyntheticSource):
        named, view, column = source.rewrite_ids, "rewrites", "rewrite_id"
    else:
        return
    if not named:
        return
    done = set(warehouse.select(f"SELECT {column} FROM {view} WHERE status = 'completed'").column(0).to_pylist())
    missing = [n for n in named if n not in done]
    if missing:
        raise MixtureError(f"source {source.name!r}: no completed {view[:-1]} {missing} in the warehouse {warehouse.path}")


def _write_warehouse_candidates(warehouse: Warehouse, source, path: Path) -> int:
    """The source's records straight from the warehouse into the candidate file, numbered and
    hashed by DuckDB in one statement: no text passes through Python. The row numbers come from
    the ordering columns alone, and the texts stream past them to the file: numbering the records
    with their texts sorted every text of the source in memory."""
    _check_named_jobs(warehouse, source)
    query, order = _warehouse_query(source)
    columns = ", ".join(IDENTITY_COLUMNS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warehouse.connect(read_only=True) as con:
        try:
            # DuckDB builds the join's hash table on the numbered keys, not the texts (EXPLAIN, for
            # both kinds of source); the setting that forces a build side is global to the
            # database, here the warehouse every connection of the process shares, so it is not set
            con.execute(
                f"""COPY (SELECT n.row, {columns}, text, {text_hash_sql("text")} AS text_hash, language,
                                 strlen(text) AS text_bytes
                          FROM ({query}) JOIN (
                              SELECT {order}, row_number() OVER (ORDER BY {order}) - 1 AS row FROM ({query})
                          ) n USING ({order}))
                    TO {_sql_list([str(path)])} (FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE {BATCH_ROWS}, ROW_GROUP_SIZE_BYTES '{CANDIDATE_ROW_GROUP_BYTES}')"""
            )
        except duckdb.Error as err:
            view = "documents" if isinstance(source, DocumentsSource) else "synthetic"
            raise MixtureError(f"source {source.name!r}: `where` {source.where!r} over `{view}` fails: {err}") from None
    return pq.ParquetFile(path).metadata.num_rows


def _replay_format(path: str, declared: str) -> str:
    if declared != "auto":
        return declared
    if path.endswith(".parquet"):
        return "parquet"
    if path.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise MixtureError(f"replay file {path}: cannot tell its format from the name; set `format: parquet` or `format: jsonl`")


def _replay_batches(source: ReplaySource) -> Iterator[pa.Table]:
    """Every replay row, file by file in batches, columnar: record_id (`file#row`), replay_file,
    replay_row, text. A row without text is an error naming its file and row."""
    for path in source.paths:
        if not Path(path).is_file():
            raise MixtureError(f"source {source.name!r}: replay file {path} does not exist")
        texts_of = _parquet_texts if _replay_format(path, source.format) == "parquet" else _jsonl_texts
        row = 0
        for texts in texts_of(source, path):
            rows = numeric_array(np.arange(row, row + len(texts)))
            yield pa.table(
                {
                    # the separator as an array too: a Python "" would go through pa.scalar, which imports pandas
                    "record_id": pc.binary_join_element_wise(
                        repeated_string(f"{path}#", len(texts)), rows.cast(pa.string()), repeated_string("", len(texts))
                    ),
                    "replay_file": repeated_string(path, len(texts)),
                    "replay_row": rows,
                    "text": texts,
                }
            )
            row += len(texts)


def _parquet_texts(source: ReplaySource, path: str) -> Iterator[pa.Array]:
    file = pq.ParquetFile(path)
    if source.text_column not in file.schema_arrow.names:
        raise MixtureError(f"replay file {path} has no column {source.text_column!r} (source {source.name!r}: text_column)")
    row = 0
    for batch in file.iter_batches(batch_size=BATCH_ROWS, columns=[source.text_column]):
        texts = batch.column(0)
        if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
            raise MixtureError(f"replay file {path}: column {source.text_column!r} holds {texts.type}, not text")
        if texts.null_count:
            first = row + pc.index(pc.is_null(texts), True).as_py()
            raise MixtureError(f"replay file {path} row {first}: {source.text_column!r} is null, not text")
        yield texts.cast(pa.string())
        row += len(texts)


def _jsonl_texts(source: ReplaySource, path: str) -> Iterator[pa.Array]:
    texts: list[str] = []
    with open(path, encoding="utf-8") as f:
        for row, line in enumerate(f):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise MixtureError(f"replay file {path} row {row}: not JSON ({err})") from None
            text = record.get(source.text_column) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise MixtureError(f"replay file {path} row {row}: {source.text_column!r} is {type(text).__name__}, not text")
            texts.append(text)
            if len(texts) == BATCH_ROWS:
                yield string_array(texts)
                texts = []
    if texts:
        yield string_array(texts)


def write_candidates(warehouse: Warehouse, source, path: Path) -> int:
    """Every record `source` selects, numbered in its stable order, to `path`; the row count."""
    if isinstance(source, ReplaySource):
        rows = _write_replay_candidates(source, path)
    else:
        rows = _write_warehouse_candidates(warehouse, source, path)
    if rows == 0:
        raise MixtureError(f"source {source.name!r} selects no records: check its `where`, runs, styles or paths")
    return rows


def _write_replay_candidates(source: ReplaySource, path: Path) -> int:
    rows = 0
    # a working file, read twice and deleted: compressing it would cost more than it saves
    with ShardWriter(path, CANDIDATE, compression="none") as writer:
        for batch in _replay_batches(source):
            table = pa.table(
                {
                    "row": numeric_array(np.arange(rows, rows + batch.num_rows)),
                    **{
                        name: batch.column(name)
                        if name in batch.schema.names
                        else pa.nulls(batch.num_rows, CANDIDATE.field(name).type)
                        for name in IDENTITY_COLUMNS
                    },
                    "text": batch.column("text"),
                    "text_hash": text_hashes(batch.column("text").combine_chunks()),
                    "language": pa.nulls(batch.num_rows, pa.string())
                    if source.language is None
                    else repeated_string(source.language, batch.num_rows),
                    "text_bytes": pc.binary_length(batch.column("text")).cast(pa.int64()),
                }
            )
            writer.write(table)
            rows += batch.num_rows
    return rows
