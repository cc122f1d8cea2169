"""Per-record facts that cost time to compute and never change for the same text under the same
identity (a tokenizer's token count, a decontamination verdict), kept as Parquet parts in a cache
folder keyed by a text hash.

A job asks which of its texts are missing, computes only those, and adds one new part file. Parts
are written atomically and never edited, so a killed job leaves the cache as it was, and two jobs
that computed the same text add the same value twice (read back as one).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from warehouse.shards import ShardWriter

TEXT_HASH = pa.field("text_hash", pa.string(), nullable=False)


# Part of every cache folder's key: parts keyed by another digest must never be read as these.
TEXT_HASH_SCHEME = "sha256"


def text_hash(text: str) -> str:
    """What a cached fact is keyed by: the text itself, not a record id that could be reused. The
    hex SHA-256 of its UTF-8 bytes, which DuckDB's `sha256(text)` (`text_hash_sql`) gives too, so
    texts hashed in SQL and in Python meet in one cache."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_hash_sql(column: str) -> str:
    return f"sha256({column})"


def _parts(cache_dir: Path) -> list[str]:
    return sorted(str(p) for p in Path(cache_dir).glob("part-*.parquet"))


def cached_relation(con: duckdb.DuckDBPyConnection, cache_dir: Path, schema: pa.Schema) -> str:
    """A SQL relation over the cache (one row per text hash), empty where nothing is cached yet."""
    parts = _parts(cache_dir)
    if not parts:
        columns = ", ".join(f"CAST(NULL AS {_sql_type(f.type)}) AS {f.name}" for f in schema)
        return f"(SELECT {columns} WHERE false)"
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in parts)
    return f"(SELECT DISTINCT ON (text_hash) * FROM read_parquet([{listed}]) ORDER BY text_hash)"


def _sql_type(typ: pa.DataType) -> str:
    if pa.types.is_integer(typ):
        return "BIGINT"
    if pa.types.is_boolean(typ):
        return "BOOLEAN"
    return "VARCHAR"


def missing_texts(
    con: duckdb.DuckDBPyConnection, cache_dir: Path, schema: pa.Schema, texts_relation: str, batch_size: int = 2048
) -> Iterator[pa.RecordBatch]:
    """(text_hash, text) of the texts in `texts_relation` (which has both columns) that the cache
    does not hold, each hash once, in hash order (so the new part's bytes do not depend on timing)."""
    cached = cached_relation(con, cache_dir, schema)
    reader = con.sql(
        f"""SELECT DISTINCT ON (t.text_hash) t.text_hash, t.text FROM {texts_relation} t
            ANTI JOIN {cached} c USING (text_hash) ORDER BY t.text_hash"""
    ).fetch_record_batch(batch_size)
    yield from reader


def count_missing(con: duckdb.DuckDBPyConnection, cache_dir: Path, schema: pa.Schema, texts_relation: str) -> int:
    """How many distinct texts `missing_texts` will give (for progress bars)."""
    cached = cached_relation(con, cache_dir, schema)
    return con.sql(
        f"SELECT count(DISTINCT t.text_hash) FROM {texts_relation} t ANTI JOIN {cached} c USING (text_hash)"
    ).fetchall()[0][0]


def add_part(cache_dir: Path, schema: pa.Schema, batches: Iterator[pa.Table]) -> int:
    """Write the newly computed facts as one part; returns the number of rows (no part for none)."""
    cache_dir = Path(cache_dir)
    # a unique name: two jobs adding parts at once must not replace each other's
    path = cache_dir / f"part-{uuid.uuid4().hex}.parquet"
    rows = 0
    with ShardWriter(path, schema) as writer:
        for table in batches:
            writer.write(table)
            rows += table.num_rows
    if rows == 0:
        path.unlink()
    return rows
