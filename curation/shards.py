"""Shard I/O: finding and validating input shards, streaming batches, atomic writes."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

TEXT_TYPES = (pa.string(), pa.large_string(), pa.binary(), pa.large_binary())


class ShardError(Exception):
    """An input shard that cannot be read at all; the message names the file (and column)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


def _has_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def expand_input_paths(patterns: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Resolve globs and URLs into a sorted list of shard paths, plus (pattern, error) for misses."""
    found: set[str] = set()
    errors: list[tuple[str, str]] = []
    for pattern in patterns:
        try:
            fs, _ = fsspec.core.url_to_fs(pattern)
            if _has_glob(pattern):
                matches = fs.glob(pattern)
                if not matches:
                    errors.append((pattern, "no file matches this pattern"))
                found.update(m if "://" not in pattern else fs.unstrip_protocol(m) for m in matches)
            elif fs.exists(pattern):
                found.add(pattern)
            else:
                errors.append((pattern, "no such file"))
        except Exception as err:  # noqa: BLE001 - any backend failure is reported per path
            errors.append((pattern, f"cannot list: {err}"))
    return sorted(found), errors


@contextmanager
def open_parquet(path: str) -> Iterator[pq.ParquetFile]:
    try:
        with fsspec.open(path, "rb") as handle:
            try:
                yield pq.ParquetFile(handle)
            except (pa.ArrowInvalid, OSError) as err:
                if isinstance(err, FileNotFoundError):
                    raise
                raise ShardError(path, f"not a readable Parquet file ({err})") from None
    except FileNotFoundError:
        raise ShardError(path, "file not found") from None
    except PermissionError:
        raise ShardError(path, "permission denied") from None
    except IsADirectoryError:
        raise ShardError(path, "is a directory, not a Parquet file") from None


def check_text_column(path: str, schema: pa.Schema, text_column: str) -> None:
    if text_column not in schema.names:
        raise ShardError(
            path, f"missing text column {text_column!r} (columns: {schema.names}); set input.text_column"
        )
    column_type = schema.field(text_column).type
    if column_type not in TEXT_TYPES:
        raise ShardError(path, f"column {text_column!r} has type {column_type}, expected string or binary")


def iter_parquet_batches(path: str | Path, batch_size: int, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Stream a Parquet file in bounded batches (memory stays flat however big the shard)."""
    with open_parquet(str(path)) as pf:
        if pf.metadata.num_rows == 0:
            return
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            yield pa.Table.from_batches([batch])


class ShardWriter:
    """Writes one Parquet shard under a temporary name and renames it into place on success.

    A crash leaves only a ``.tmp-*`` file behind, never a complete-looking shard. A writer that
    received no rows still produces a valid empty shard, so readers never special-case absence.
    """

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self.bytes = 0
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}")
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression="zstd")
        return self

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.select(self.schema.names).cast(self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows
        self.bytes += text_bytes(table)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def text_bytes(table: pa.Table) -> int:
    """UTF-8 bytes of the text column: what 'bytes kept/dropped' means in stats."""
    if "text" not in table.schema.names or table.num_rows == 0:
        return 0
    import pyarrow.compute as pc

    total = pc.sum(pc.binary_length(table.column("text"))).as_py()
    return int(total or 0)


def write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


def write_table_atomic(path: Path, table: pa.Table) -> None:
    with ShardWriter(path, table.schema) as writer:
        writer.write(table)


def read_table(paths: list[Path] | Path, schema: pa.Schema) -> pa.Table:
    paths = [paths] if isinstance(paths, Path | str) else paths
    tables = [pq.read_table(p, schema=schema) for p in paths]
    return pa.concat_tables(tables) if tables else schema.empty_table()
