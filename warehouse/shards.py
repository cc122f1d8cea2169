"""Parquet shard I/O: finding and validating input shards, streaming batches, writing shards
atomically (through `warehouse.files`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.files import temporary_name

TEXT_TYPES = (pa.string(), pa.large_string(), pa.binary(), pa.large_binary())


class ShardError(Exception):
    """An input shard that cannot be read at all; the message names the file (and column)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message

    def __reduce__(self):
        # raised in a Dask worker, it travels pickled to the driver: rebuilt from its two fields
        return type(self), (self.path, self.reason)


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


def file_fingerprint(path: str, known: dict[tuple, str] | None = None) -> dict:
    """What identifies an input file's version: path, size, modification time (or the store's
    etag), and the SHA-256 of its bytes. `known` maps (path, size, modified) to a hash recorded
    before, so that an unchanged file is not read again."""
    fs, stripped = fsspec.core.url_to_fs(path)
    info = fs.info(stripped)
    modified = next((info[k] for k in ("mtime", "LastModified", "last_modified", "ETag", "etag") if info.get(k)), None)
    size, modified = int(info.get("size") or 0), None if modified is None else str(modified)
    sha256 = (known or {}).get((path, size, modified))
    if sha256 is None:
        digest = hashlib.sha256()
        with fsspec.open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        sha256 = digest.hexdigest()
    return {"path": path, "size": size, "modified": modified, "sha256": sha256}


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
        raise ShardError(path, f"missing text column {text_column!r} (columns: {schema.names}); set input.text_column")
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


@dataclass(frozen=True)
class InvalidUtf8:
    """A string value that is not UTF-8: its column, where inside a nested value, the first bad byte."""

    column: str
    byte: int
    reason: str
    path: str = ""  # inside a nested value: "[2]" list item, ".name" struct field, "[0].value" map entry

    def __str__(self) -> str:
        where = f"column {self.column!r}" + (f" at {self.path}" if self.path else "")
        return f"{where}, byte {self.byte}: {self.reason}"


def decode_utf8(data: bytes, column: str, path: str = "") -> tuple[str, InvalidUtf8 | None]:
    """The text of `data`; when it is not UTF-8, a readable rendering (U+FFFD for bad bytes) and where."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as err:
        return data.decode("utf-8", errors="replace"), InvalidUtf8(column, err.start, err.reason, path)


def python_rows(table: pa.Table) -> tuple[list[dict], list[list[InvalidUtf8]]]:
    """The rows of `table` as dicts, and per row the string values that are not UTF-8.

    Parquet writers need not validate string columns, and pyarrow's `to_pylist` raises on the first
    bad value, which would lose the whole batch. A column that raises is re-read as bytes and decoded
    value by value, so one bad value costs only its row.
    """
    invalid: list[list[InvalidUtf8]] = [[] for _ in range(table.num_rows)]
    columns = []
    for name, column in zip(table.column_names, table.columns):
        try:
            columns.append(column.to_pylist())
        except UnicodeDecodeError:
            columns.append(_decode_column(name, column, invalid))
    rows = [dict(zip(table.column_names, values)) for values in zip(*columns)]
    return rows, invalid


def _decode_column(name: str, column: pa.ChunkedArray, invalid: list[list[InvalidUtf8]]) -> list:
    as_bytes = _with_binary_strings(column.type)
    raw = [value for chunk in column.chunks for value in chunk.view(as_bytes).to_pylist()]
    return [_decode_value(value, column.type, name, "", invalid[row]) for row, value in enumerate(raw)]


def _is_string(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)


# list-like types and how to make one with another item field
_LISTS = (
    (pa.types.is_list, pa.list_),
    (pa.types.is_large_list, pa.large_list),
    (pa.types.is_fixed_size_list, lambda field, typ: pa.list_(field, typ.list_size)),
    (pa.types.is_list_view, pa.list_view),
    (pa.types.is_large_list_view, pa.large_list_view),
)


def _is_list(typ: pa.DataType) -> bool:
    return any(is_list(typ) for is_list, _ in _LISTS)


def _with_binary_strings(typ: pa.DataType) -> pa.DataType:
    """`typ` with every string type inside it replaced by the binary type of the same layout: a view
    as that type reads the bytes without validating them."""
    if _is_string(typ):
        return {pa.string(): pa.binary(), pa.large_string(): pa.large_binary(), pa.string_view(): pa.binary_view()}[typ]
    if pa.types.is_dictionary(typ):
        return pa.dictionary(typ.index_type, _with_binary_strings(typ.value_type), typ.ordered)
    if pa.types.is_map(typ):
        key, item = typ.key_field, typ.item_field
        return pa.map_(
            key.with_type(_with_binary_strings(key.type)), item.with_type(_with_binary_strings(item.type)), typ.keys_sorted
        )
    if pa.types.is_struct(typ):
        return pa.struct([f.with_type(_with_binary_strings(f.type)) for f in typ])
    for is_list, make in _LISTS:
        if is_list(typ):
            item = typ.value_field.with_type(_with_binary_strings(typ.value_type))
            return make(item, typ) if pa.types.is_fixed_size_list(typ) else make(item)
    return typ


def _decode_value(value, typ: pa.DataType, column: str, path: str, invalid: list[InvalidUtf8]):
    """`value`, read as `_with_binary_strings(typ)`, with the strings of `typ` decoded."""
    if value is None:
        return None
    if _is_string(typ):
        text, problem = decode_utf8(value, column, path)
        if problem:
            invalid.append(problem)
        return text
    if pa.types.is_dictionary(typ):
        return _decode_value(value, typ.value_type, column, path, invalid)
    if pa.types.is_map(typ):
        return [
            (
                _decode_value(k, typ.key_type, column, f"{path}[{i}].key", invalid),
                _decode_value(v, typ.item_type, column, f"{path}[{i}].value", invalid),
            )
            for i, (k, v) in enumerate(value)
        ]
    if pa.types.is_struct(typ):
        return {f.name: _decode_value(value[f.name], f.type, column, f"{path}.{f.name}", invalid) for f in typ}
    if _is_list(typ):
        return [_decode_value(v, typ.value_type, column, f"{path}[{i}]", invalid) for i, v in enumerate(value)]
    return value


class ShardWriter:
    """Writes one Parquet shard under a temporary name and renames it into place on success.

    A crash leaves only a ``.tmp-*`` file behind, never a complete-looking shard. A writer that
    received no rows still produces a valid empty shard, so readers never special-case absence.
    """

    def __init__(self, path: Path, schema: pa.Schema, compression: str = "zstd"):
        self.path = Path(path)
        self.schema = schema
        self.compression = compression
        self.rows = 0
        self.bytes = 0
        self._tmp = temporary_name(self.path)
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a text column is all distinct long strings: a dictionary of it is built and dropped
        # page by page, and its min/max prune nothing, so neither is written (~12 % of writing)
        keyed = [name for name in self.schema.names if name != "text"]
        self._writer = pq.ParquetWriter(
            self._tmp, self.schema, compression=self.compression, use_dictionary=keyed, write_statistics=keyed
        )
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


def write_table_atomic(path: Path, table: pa.Table) -> None:
    with ShardWriter(path, table.schema) as writer:
        writer.write(table)


def read_table(paths: list[Path] | Path, schema: pa.Schema) -> pa.Table:
    paths = [paths] if isinstance(paths, Path | str) else paths
    tables = [pq.read_table(p, schema=schema) for p in paths]
    return pa.concat_tables(tables) if tables else schema.empty_table()
