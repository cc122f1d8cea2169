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
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.arrow import numeric_array, numpy_values, utf8_buffer
from warehouse.shards import ShardWriter
from warehouse.warehouse import sql_string

TEXT_HASH = pa.field("text_hash", pa.string(), nullable=False)


# Part of every cache folder's key: parts keyed by another digest must never be read as these.
TEXT_HASH_SCHEME = "sha256"


def text_hash(text: str) -> str:
    """What a cached fact is keyed by: the text itself, not a record id that could be reused. The
    hex SHA-256 of its UTF-8 bytes, which DuckDB's `sha256(text)` (`text_hash_sql`) gives too, so
    texts hashed in SQL and in Python meet in one cache."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def text_hashes(texts: pa.StringArray) -> pa.StringArray:
    """`text_hash` of every string of a null-free Arrow string array, read from its UTF-8 buffer:
    no Python string per text is made only to be encoded back."""
    data, offsets = utf8_buffer(texts)
    view, starts = memoryview(data or b""), offsets.tolist()
    digests = "".join(hashlib.sha256(view[start:end]).hexdigest() for start, end in zip(starts, starts[1:]))
    width = hashlib.sha256().digest_size * 2
    return pa.StringArray.from_buffers(
        len(texts), pa.py_buffer(np.arange(0, width * (len(texts) + 1), width, dtype=np.int32)), pa.py_buffer(digests.encode())
    )


def text_hash_sql(column: str) -> str:
    return f"sha256({column})"


def _parts(cache_dir: Path) -> list[str]:
    return sorted(str(p) for p in Path(cache_dir).glob("part-*.parquet"))


def has_parts(cache_dir: Path) -> bool:
    return bool(_parts(cache_dir))


def cached_relation(con: duckdb.DuckDBPyConnection, cache_dir: Path, schema: pa.Schema) -> str:
    """A SQL relation over the cache (one row per text hash), empty where nothing is cached yet."""
    parts = _parts(cache_dir)
    if not parts:
        columns = ", ".join(f"CAST(NULL AS {_sql_type(f.type)}) AS {f.name}" for f in schema)
        return f"(SELECT {columns} WHERE false)"
    listed = ", ".join(map(sql_string, parts))
    return f"(SELECT DISTINCT ON (text_hash) * FROM read_parquet([{listed}]) ORDER BY text_hash)"


def _sql_type(typ: pa.DataType) -> str:
    if pa.types.is_integer(typ):
        return "BIGINT"
    if pa.types.is_boolean(typ):
        return "BOOLEAN"
    return "VARCHAR"


@dataclass(frozen=True)
class MissingTexts:
    """The texts a cache lacks among the rows of some Parquet files (columns `text_hash` and
    `text`): each missing text once, at its first row, files in order and rows in order. Only the
    row numbers are held; the texts are read from the files as they are streamed, so memory does
    not grow with the files."""

    files: tuple[str, ...]
    rows: tuple[np.ndarray, ...]  # per file, its sorted row numbers to compute

    @property
    def count(self) -> int:
        return sum(len(rows) for rows in self.rows)

    def keys(self) -> np.ndarray:
        """Every missing row as one sorted number: file index * 2**40 + row number."""
        return np.concatenate([np.empty(0, np.int64)] + [rows + (i << _FILE_SHIFT) for i, rows in enumerate(self.rows)])

    def newest_file(self) -> MissingTexts:
        """The missing texts of the last file alone: those no earlier file holds. Files that
        arrive one at a time are each computed as they come, and a text is computed once."""
        return MissingTexts(self.files[-1:], self.rows[-1:])

    @classmethod
    def union(cls, missing: list[MissingTexts]) -> MissingTexts:
        """The rows missing from any of several caches over the same files, each once: read once,
        they serve every cache (each computes its own rows among them)."""
        files = missing[0].files
        if any(m.files != files for m in missing):
            raise ValueError("missing rows of different files cannot be joined")
        return cls(files, tuple(np.unique(np.concatenate(rows)) for rows in zip(*(m.rows for m in missing), strict=True)))

    def batches(self, batch_size: int = 2048) -> Iterator[pa.Table]:
        """(text_hash, text) of the missing texts in tables of about `batch_size` rows, in order
        (the order of `keys()`)."""
        pending: list[pa.RecordBatch] = []
        held = 0
        for path, rows in zip(self.files, self.rows, strict=True):
            if not len(rows):
                continue
            start = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=["text_hash", "text"]):
                first, last = np.searchsorted(rows, [start, start + batch.num_rows])
                if last > first:
                    taken = batch.take(numeric_array(rows[first:last] - start))
                    # one schema for every file, whatever nullability each file's schema declares
                    pending.append(pa.RecordBatch.from_arrays(taken.columns, names=["text_hash", "text"]))
                    held += int(last - first)
                start += batch.num_rows
                if held >= batch_size:
                    yield pa.Table.from_batches(pending)
                    pending, held = [], 0
        if pending:
            yield pa.Table.from_batches(pending)


_FILE_SHIFT = 40  # a row's key: file index * 2**40 + row number


def find_missing(
    con: duckdb.DuckDBPyConnection, cache_dir: Path, schema: pa.Schema, files: list[Path], where: str = "true"
) -> MissingTexts:
    """Which rows of `files` (those meeting the SQL condition `where`) hold a text the cache lacks,
    each such text at its first row. DuckDB groups and sorts the hashes and row numbers only."""
    if not files:
        return MissingTexts((), ())
    cached = cached_relation(con, cache_dir, schema)
    rows = " UNION ALL ".join(
        f"SELECT {index}::BIGINT AS f, file_row_number AS r, text_hash "
        f"FROM read_parquet({sql_string(str(path))}, file_row_number = true) WHERE {where}"
        for index, path in enumerate(files)
    )
    keys = numpy_values(
        con.sql(
            f"""SELECT min((f << {_FILE_SHIFT}) + r) AS k FROM ({rows}) t ANTI JOIN {cached} c USING (text_hash)
                GROUP BY text_hash ORDER BY k"""
        )
        .to_arrow_table()
        .column("k")
    )
    file_of = keys >> _FILE_SHIFT
    bounds = np.searchsorted(file_of, np.arange(len(files) + 1))
    per_file = tuple(keys[bounds[i] : bounds[i + 1]] - (i << _FILE_SHIFT) for i in range(len(files)))
    return MissingTexts(tuple(str(path) for path in files), per_file)


class CachePart:
    """A new part of a cache, written batch by batch as its facts are computed. It takes its
    place only when closed without an error, and only if it holds rows."""

    def __init__(self, cache_dir: Path, schema: pa.Schema):
        # a unique name: two jobs adding parts at once must not replace each other's
        self._writer = ShardWriter(Path(cache_dir) / f"part-{uuid.uuid4().hex}.parquet", schema)

    @property
    def rows(self) -> int:
        return self._writer.rows

    def __enter__(self) -> CachePart:
        self._writer.__enter__()
        return self

    def write(self, table: pa.Table) -> None:
        self._writer.write(table)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.__exit__(exc_type, exc, tb)
        if exc_type is None and self._writer.rows == 0:
            self._writer.path.unlink()
