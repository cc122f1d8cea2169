"""Property: whatever the input files hold, the run does not crash, and every input file is either
recorded in input_errors or has each of its rows exactly once in documents or rejected.

CI runs a bounded, reproducible search; `HYPOTHESIS_LONG=1` searches longer (run it by hand)."""

from __future__ import annotations

import io
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import curated_rows, make_config, rejected_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation.runner import RunError, run_pipeline

CHEAP = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}
LONG = os.environ.get("HYPOTHESIS_LONG") == "1"

# the optional fields ingest maps by name, and unmapped names that go to metadata
EXTRA_NAMES = ["url", "source", "language", "metadata", "crawl_date", "x", "y"]
BINARY_OF = {pa.string(): pa.binary(), pa.large_string(): pa.large_binary()}


@dataclass
class InputFile:
    name: str
    content: bytes | pa.Table
    rows: int
    readable: bool  # whether the run must read it (False: it must be an input error)


# ---------------------------------------------------------------- values

# bytes that are often not UTF-8: a string column may hold them (pyarrow writes without validating)
raw_bytes = st.one_of(
    st.text(max_size=20).map(str.encode),
    st.binary(max_size=8),
    st.sampled_from([b"\xff", b"caf\xe9", b"\xc3", b"\xed\xa0\x80", b" \n\t", b"\x00\x07"]),
)


def strings(string_type: pa.DataType, n: int):
    """A string column of n values, some null, some not UTF-8."""
    return st.lists(st.none() | raw_bytes, min_size=n, max_size=n).map(
        lambda v: pa.array(v, BINARY_OF[string_type]).view(string_type)
    )


def nested(value_type: pa.DataType, as_strings: pa.DataType, values, n: int):
    """A nested column built with binary leaves, then viewed with string leaves (same layout)."""
    return st.lists(st.none() | values, min_size=n, max_size=n).map(lambda v: pa.array(v, value_type).view(as_strings))


def column(kind: str, n: int):
    def plain(values, typ):
        return st.lists(st.none() | values, min_size=n, max_size=n).map(lambda v: pa.array(v, typ))

    items = st.none() | raw_bytes
    return {
        "int": lambda: plain(st.integers(-(2**63), 2**63 - 1), pa.int64()),
        "float": lambda: plain(st.floats(), pa.float64()),
        "bool": lambda: plain(st.booleans(), pa.bool_()),
        "timestamp": lambda: plain(st.datetimes(timezones=st.just(UTC)), pa.timestamp("us", tz="UTC")),
        "date": lambda: plain(st.dates(), pa.date32()),
        "null": lambda: st.just(pa.nulls(n)),
        "string": lambda: strings(pa.string(), n),
        "large_string": lambda: strings(pa.large_string(), n),
        "dictionary": lambda: strings(pa.string(), n).map(lambda a: a.dictionary_encode()),
        "binary": lambda: plain(st.binary(max_size=8), pa.binary()),
        "list<string>": lambda: nested(pa.list_(pa.binary()), pa.list_(pa.string()), st.lists(items, max_size=3), n),
        "struct": lambda: nested(
            pa.struct([("a", pa.binary()), ("b", pa.int64())]),
            pa.struct([("a", pa.string()), ("b", pa.int64())]),
            st.fixed_dictionaries({"a": items, "b": st.none() | st.integers(-5, 5)}),
            n,
        ),
        "map": lambda: nested(
            pa.map_(pa.string(), pa.binary()),
            pa.map_(pa.string(), pa.string()),
            st.lists(st.tuples(st.text(max_size=5), items), max_size=3),
            n,
        ),
        "list<struct>": lambda: nested(
            pa.list_(pa.struct([("s", pa.binary())])),
            pa.list_(pa.struct([("s", pa.string())])),
            st.lists(st.fixed_dictionaries({"s": items}), max_size=2),
            n,
        ),
    }[kind]()


TEXT_KINDS = ["string", "large_string", "binary", "large_binary", "int", "missing"]
EXTRA_KINDS = [
    "int",
    "float",
    "bool",
    "timestamp",
    "date",
    "null",
    "string",
    "large_string",
    "dictionary",
    "binary",
    "list<string>",
    "struct",
    "map",
    "list<struct>",
]


@st.composite
def text_column(draw, kind: str, n: int):
    documents = st.text(max_size=60).map(str.encode) | raw_bytes
    values = draw(st.lists(st.none() | documents, min_size=n, max_size=n))
    typ = getattr(pa, kind)()
    return pa.array(values, typ) if typ in (pa.binary(), pa.large_binary()) else pa.array(values, BINARY_OF[typ]).view(typ)


@st.composite
def id_column(draw, n: int):
    kind = draw(st.sampled_from(["int", "string", "null"]))
    if kind == "null":
        return pa.nulls(n, pa.string())
    pool = st.integers(0, 3) if kind == "int" else st.sampled_from([b"a", b"b", b"\xff", b"a\xe9"])  # small pools: duplicates
    values = draw(st.lists(st.none() | pool, min_size=n, max_size=n))
    return pa.array(values, pa.int64()) if kind == "int" else pa.array(values, pa.binary()).view(pa.string())


# ---------------------------------------------------------------- files


def must_be_read(schema: pa.Schema) -> bool:
    """The file-level rules: one column of each name, and a text column of a string or binary type."""
    text_types = {pa.string(), pa.large_string(), pa.binary(), pa.large_binary()}
    return len(set(schema.names)) == len(schema.names) and "text" in schema.names and schema.field("text").type in text_types


@st.composite
def parquet_file(draw, name: str) -> InputFile:
    n = draw(st.integers(0, 8))
    text_kind = draw(st.sampled_from(TEXT_KINDS))
    columns = []
    if text_kind != "missing":
        columns.append(("text", draw(column("int", n)) if text_kind == "int" else draw(text_column(text_kind, n))))
    if draw(st.booleans()):
        columns.append(("id", draw(id_column(n))))
    for extra in draw(st.lists(st.sampled_from(EXTRA_NAMES), unique=True, max_size=3)):
        columns.append((extra, draw(column(draw(st.sampled_from(EXTRA_KINDS)), n))))
    if columns and draw(st.integers(0, 7)) == 0:  # now and then, a second column of a name already used
        columns.append((draw(st.sampled_from([c for c, _ in columns])), draw(column(draw(st.sampled_from(EXTRA_KINDS)), n))))
    columns = draw(st.permutations(columns)) if columns else [("x", pa.nulls(n))]
    table = pa.Table.from_arrays([array for _, array in columns], names=[c for c, _ in columns])
    return InputFile(name, table, n, readable=must_be_read(table.schema))


@st.composite
def input_file(draw, name: str) -> InputFile:
    kind = draw(st.sampled_from(["parquet", "parquet", "parquet", "parquet", "empty", "not_parquet", "truncated"]))
    if kind == "parquet":
        return draw(parquet_file(name))
    if kind == "empty":
        return InputFile(name, b"", 0, readable=False)
    if kind == "not_parquet":
        return InputFile(name, draw(st.binary(min_size=1, max_size=64)), 0, readable=False)
    buffer = io.BytesIO()  # a real Parquet file cut in the middle: no footer
    pq.write_table(pa.table({"text": [f"document {i}" for i in range(draw(st.integers(1, 20)))]}), buffer)
    return InputFile(name, buffer.getvalue()[: len(buffer.getvalue()) // 2], 0, readable=False)


def write(file: InputFile, folder: Path, row_group_size: int) -> None:
    path = folder / file.name
    if isinstance(file.content, bytes):
        path.write_bytes(file.content)
    else:
        pq.write_table(file.content, path, row_group_size=row_group_size)


inputs = st.integers(1, 3).flatmap(lambda k: st.tuples(*[input_file(f"{i}.parquet") for i in range(k)]))


# ---------------------------------------------------------------- the property


@settings(
    max_examples=300 if LONG else 25,
    deadline=None,
    derandomize=not LONG,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=inputs, batch_size=st.integers(1, 5), row_group_size=st.integers(1, 4), max_chars=st.integers(1, 40))
def test_every_row_of_every_readable_file_is_accounted_for(files, batch_size, row_group_size, max_chars):
    with tempfile.TemporaryDirectory(prefix="prop-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        for file in files:
            write(file, root / "in", row_group_size)
        cfg = make_config(
            root, [str(root / "in/*.parquet")], **CHEAP, input={"batch_size": batch_size}, ingest={"max_chars": max_chars}
        )
        if not any(f.readable for f in files):
            with pytest.raises(RunError, match="no input file could be read"):
                run_pipeline(cfg, run_id="prop")
            return
        summary = run_pipeline(cfg, run_id="prop")
        errors = {Path(e["input_file"]).name for e in summary["input_errors"]}
        assert errors == {f.name for f in files if not f.readable}, summary["input_errors"]
        rejected = rejected_rows(summary)
        assert all(r["reason"] for r in rejected)
        seen = Counter((Path(r["input_file"]).name, r["input_row"]) for r in curated_rows(summary) + rejected)
        expected = Counter((f.name, i) for f in files if f.readable for i in range(f.rows))
        assert seen == expected
