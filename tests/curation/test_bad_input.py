"""Bad input: each case is a clear error naming the file/row/field, or a quarantined document with
a reason; the rest of the run goes on and nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import curated_rows, make_config, rejected_rows, write_shard

from curation.runner import RunError, run_pipeline
from warehouse.shards import python_rows

CHEAP = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}


def _run(tmp_path, **overrides):
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **{**CHEAP, **overrides})
    return run_pipeline(cfg, run_id="bad")


@pytest.fixture
def good_shard(tmp_path, wiki_docs):
    return write_shard(tmp_path / "in/00-good.parquet", {"id": ["g1", "g2"], "text": wiki_docs[:2]})


def _errors(summary) -> dict[str, str]:
    return {e["input_file"].rsplit("/", 1)[-1]: e["error"] for e in summary["input_errors"]}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("zero.parquet", b"", "not a readable Parquet file"),
        ("notparquet.parquet", b"id,text\n1,hello\n", "not a readable Parquet file"),
    ],
)
def test_unreadable_files_are_recorded_and_the_run_goes_on(tmp_path, good_shard, name, content, message):
    (tmp_path / "in" / name).write_bytes(content)
    summary = _run(tmp_path)
    errors = _errors(summary)
    assert message in errors[name]
    assert [e["input_file"] for e in summary["input_errors"]] == [str(tmp_path / "in" / name)]
    assert [r["doc_id"] for r in curated_rows(summary)] == ["g1", "g2"]


def test_truncated_parquet(tmp_path, good_shard, wiki_docs):
    full = write_shard(tmp_path / "full.parquet", {"text": wiki_docs[2:40]})
    data = full.read_bytes()
    (tmp_path / "in/truncated.parquet").write_bytes(data[: len(data) // 2])
    summary = _run(tmp_path)
    assert "not a readable Parquet file" in _errors(summary)["truncated.parquet"]
    assert summary["totals"]["docs_out"] == 2


def test_corrupt_page_after_good_batches_loses_the_whole_file(tmp_path, good_shard, wiki_docs):
    path = tmp_path / "in/corrupt.parquet"
    pq.write_table(pa.table({"text": wiki_docs[2:62]}), path, row_group_size=10, use_dictionary=False)
    data = bytearray(path.read_bytes())
    page = pq.ParquetFile(path).metadata.row_group(4).column(0).data_page_offset
    data[page : page + 64] = b"\xff" * 64  # the fifth row group's page header; the footer stays intact
    path.write_bytes(bytes(data))
    read = []
    with pytest.raises(OSError, match="page header"):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=5):
            read.append(batch.num_rows)
    assert read == [5] * 8  # eight good batches come before the corrupt page

    summary = _run(tmp_path, input={"batch_size": 5})
    assert "Deserializing page header failed" in _errors(summary)["corrupt.parquet"]
    # not even the good prefix: the file contributes no rows, kept or rejected
    assert {r["input_file"] for r in curated_rows(summary) + rejected_rows(summary)} == {str(good_shard)}
    assert [r["doc_id"] for r in curated_rows(summary)] == ["g1", "g2"]
    ingest = Path(summary["run_dir"]) / "00_ingest"
    assert [pq.ParquetFile(ingest / kind / "shard-00001.parquet").metadata.num_rows for kind in ("curated", "rejected")] == [0, 0]
    assert not list(ingest.rglob(".*.tmp-*"))  # the writers aborted mid-file left nothing behind


def test_missing_text_column_and_wrong_type_name_the_column(tmp_path, good_shard):
    write_shard(tmp_path / "in/notext.parquet", {"body": ["x"]})
    write_shard(tmp_path / "in/inttext.parquet", {"text": [1, 2]})
    errors = _errors(_run(tmp_path))
    assert "missing text column 'text'" in errors["notext.parquet"] and "['body']" in errors["notext.parquet"]
    assert "column 'text' has type int64, expected string or binary" in errors["inttext.parquet"]


def test_duplicate_column_names_are_an_input_error(tmp_path, good_shard, wiki_docs):
    """Two columns of one name cannot both be kept (nor one chosen) without inventing a name."""
    (tmp_path / "in").mkdir(exist_ok=True)
    for name, names in [("duptext.parquet", ["text", "text"]), ("dupextra.parquet", ["text", "x", "x"])]:
        table = pa.Table.from_arrays([pa.array(wiki_docs[5:6])] + [pa.array([i]) for i in range(len(names) - 1)], names=names)
        pq.write_table(table, tmp_path / "in" / name)
    summary = _run(tmp_path)
    errors = _errors(summary)
    assert "duplicate column names ['text']" in errors["duptext.parquet"]
    assert "duplicate column names ['x']" in errors["dupextra.parquet"]
    assert [r["doc_id"] for r in curated_rows(summary)] == ["g1", "g2"]


def test_bad_rows_are_quarantined_with_reasons(tmp_path, good_shard, wiki_docs):
    write_shard(
        tmp_path / "in/rows.parquet",
        {
            "id": ["null", "empty", "controls", "latin1", "ok-binary", "huge"],
            "text": [None, "   \n ", "\x00\x01\x02", "caf\xe9".encode("latin-1"), wiki_docs[3].encode(), "A" * 5000],
        },
        schema=pa.schema([("id", pa.string()), ("text", pa.binary())]),
    )
    summary = _run(tmp_path, ingest={"max_chars": 4000})
    rejected = {r["doc_id"]: r for r in rejected_rows(summary)}
    assert {k: v["reason"] for k, v in rejected.items()} == {
        "null": "null_text",
        "empty": "empty_text",
        "controls": "empty_text",
        "latin1": "invalid_utf8",
        "huge": "too_long",
    }
    assert rejected["latin1"]["detail"] == "column 'text', byte 3: unexpected end of data"
    assert rejected["latin1"]["input_row"] == 3 and rejected["latin1"]["text"] == "caf\ufffd"
    assert "ingest.max_chars=4000" in rejected["huge"]["detail"] and len(rejected["huge"]["text"]) == 5000
    assert "ok-binary" in {r["doc_id"] for r in curated_rows(summary)}


def _not_utf8(values: list[bytes | None], string_type: pa.DataType = pa.string()) -> pa.Array:  # noqa: B008 - a constant
    """A string column holding bytes that are not UTF-8: pyarrow writes it without validating."""
    binary = {pa.string(): pa.binary(), pa.large_string(): pa.large_binary()}[string_type]
    return pa.array(values, binary).view(string_type)


def test_invalid_utf8_in_string_columns_is_quarantined_and_the_run_goes_on(tmp_path, wiki_docs):
    write_shard(
        tmp_path / "in/0-mixed.parquet",
        {
            "id": ["good", "bad-text", "bad-note"],
            "text": _not_utf8([wiki_docs[0].encode(), b"caf\xe9 au lait", wiki_docs[1].encode()]),
            "note": _not_utf8([b"fine", b"fine", b"\xffnote"], pa.large_string()),  # unmapped: kept in metadata
        },
    )
    write_shard(tmp_path / "in/1-good.parquet", {"id": ["g1", "g2", "g3"], "text": wiki_docs[2:5]})
    summary = _run(tmp_path)
    assert [r["doc_id"] for r in curated_rows(summary)] == ["good", "g1", "g2", "g3"]
    rejected = {r["doc_id"]: r for r in rejected_rows(summary)}
    assert {k: (r["reason"], r["input_file"].rsplit("/", 1)[-1], r["input_row"], r["detail"]) for k, r in rejected.items()} == {
        "bad-text": ("invalid_utf8", "0-mixed.parquet", 1, "column 'text', byte 3: invalid continuation byte"),
        "bad-note": ("invalid_utf8", "0-mixed.parquet", 2, "column 'note', byte 0: invalid start byte"),
    }
    # the rejected rows stay readable: invalid bytes become U+FFFD, the rest is kept as it was
    assert rejected["bad-text"]["text"] == "caf\ufffd au lait"
    assert json.loads(rejected["bad-note"]["metadata"]) == {"note": "\ufffdnote"}
    assert rejected["bad-note"]["text"] == wiki_docs[1]


def test_invalid_utf8_is_found_in_every_column_ingest_reads(tmp_path, wiki_docs):
    """Row 0 is clean; row k has invalid UTF-8 in column k only, mapped, unmapped or nested."""
    names = ["id", "url", "source", "language", "metadata", "tags", "info", "attrs", "category"]
    rows = len(names) + 1

    def bad_in(name: str, good: bytes, bad: bytes) -> list[bytes]:
        return [bad if k == names.index(name) + 1 else good for k in range(rows)]

    tag_values = _not_utf8([tag for second in bad_in("tags", b"b", b"b\xff") for tag in (b"a", second)])
    info_names = _not_utf8(bad_in("info", b"ann", b"an\xc3"))
    attr_values = _not_utf8(bad_in("attrs", b"v", b"\x80"))
    category_values = _not_utf8([b"news", b"n\xffws"])
    table = pa.table(
        {
            "id": _not_utf8([b"\xfe" if k == 1 else b"id-%d" % k for k in range(rows)]),
            "text": wiki_docs[10 : 10 + rows],
            "url": _not_utf8(bad_in("url", b"https://example.org/", b"https://ex\xe4mple.org/")),
            "source": _not_utf8(bad_in("source", b"crawl", b"cr\xf0wl")),
            "language": _not_utf8(bad_in("language", b"en", b"e\xff")),
            "metadata": _not_utf8(bad_in("metadata", b'{"k": 1}', b'{"k": "\xff"}')),
            "tags": pa.ListArray.from_arrays(pa.array(range(0, 2 * rows + 1, 2), pa.int32()), tag_values),
            "info": pa.StructArray.from_arrays([info_names, pa.array(range(rows))], names=["name", "n"]),
            "attrs": pa.MapArray.from_arrays(pa.array(range(rows + 1), pa.int32()), pa.array(["key"] * rows), attr_values),
            "category": pa.DictionaryArray.from_arrays(
                pa.array([1 if k == rows - 1 else 0 for k in range(rows)], pa.int32()), category_values
            ),
        }
    )
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in/0.parquet")
    summary = _run(tmp_path)
    assert [r["input_row"] for r in curated_rows(summary)] == [0]
    details = {r["input_row"]: (r["reason"], r["detail"]) for r in rejected_rows(summary)}
    assert details == {
        1: ("invalid_utf8", "column 'id', byte 0: invalid start byte"),
        2: ("invalid_utf8", "column 'url', byte 10: invalid continuation byte"),
        3: ("invalid_utf8", "column 'source', byte 2: invalid continuation byte"),
        4: ("invalid_utf8", "column 'language', byte 1: invalid start byte"),
        5: ("invalid_utf8", "column 'metadata', byte 7: invalid start byte"),
        6: ("invalid_utf8", "column 'tags' at [1], byte 1: invalid start byte"),
        7: ("invalid_utf8", "column 'info' at .name, byte 2: unexpected end of data"),
        8: ("invalid_utf8", "column 'attrs' at [0].value, byte 0: invalid start byte"),
        9: ("invalid_utf8", "column 'category', byte 1: invalid start byte"),
    }


@pytest.mark.parametrize(
    "typ, as_bytes, value, rendering, where",
    [
        (pa.string_view(), pa.binary_view(), b"\xff", "\ufffd", "column 'c'"),
        (pa.large_list(pa.string()), pa.large_list(pa.binary()), [b"a", b"\xff"], ["a", "\ufffd"], "column 'c' at [1]"),
        (pa.list_(pa.string(), 2), pa.list_(pa.binary(), 2), [b"a", b"\xff"], ["a", "\ufffd"], "column 'c' at [1]"),
        (pa.list_view(pa.string()), pa.list_view(pa.binary()), [b"a", b"\xff"], ["a", "\ufffd"], "column 'c' at [1]"),
        (
            pa.list_(pa.struct([("s", pa.string())])),
            pa.list_(pa.struct([("s", pa.binary())])),
            [{"s": b"a"}, {"s": b"\xff"}],
            [{"s": "a"}, {"s": "\ufffd"}],
            "column 'c' at [1].s",
        ),
    ],
)
def test_python_rows_finds_invalid_utf8_in_any_string_type(tmp_path, typ, as_bytes, value, rendering, where):
    """String types the pipeline test above does not write, read back from Parquet, in two chunks."""
    pq.write_table(pa.table({"c": pa.array([None, value], as_bytes).view(typ)}), tmp_path / "t.parquet")
    table = pq.read_table(tmp_path / "t.parquet")
    rows, invalid = python_rows(pa.concat_tables([table, table]))
    assert rows == [{"c": None}, {"c": rendering}] * 2
    assert [[str(p) for p in row] for row in invalid] == [[], [f"{where}, byte 0: invalid start byte"]] * 2


def test_metadata_of_any_type_is_kept(tmp_path, wiki_docs):
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:2], "metadata": pa.array([[1, 2], None], pa.list_(pa.int64()))})
    write_shard(tmp_path / "in/1.parquet", {"text": wiki_docs[2:3], "metadata": [7]})
    assert [r["metadata"] for r in curated_rows(_run(tmp_path))] == ['{"metadata": [1, 2]}', None, '{"metadata": 7}']


def test_text_is_normalised(tmp_path):
    write_shard(tmp_path / "in/0.parquet", {"text": ["Cafe\u0301 ol\x00e\r\nsecond line\x07"]})
    rows = curated_rows(_run(tmp_path))
    assert rows[0]["text"] == "Caf\u00e9 ole\nsecond line"


def test_duplicate_ids_keep_the_first_and_quarantine_the_rest(tmp_path, wiki_docs):
    write_shard(tmp_path / "in/0.parquet", {"id": ["same", "other", "same"], "text": wiki_docs[:3]})
    write_shard(tmp_path / "in/1.parquet", {"id": ["same"], "text": [wiki_docs[3]]})
    summary = _run(tmp_path)
    assert [r["text"] for r in curated_rows(summary)] == wiki_docs[:2]
    rejected = rejected_rows(summary)
    assert [(r["reason"], r["input_row"]) for r in rejected] == [("duplicate_id", 2), ("duplicate_id", 0)]
    assert rejected[0]["detail"].endswith("0.parquet:0") and rejected[1]["text"] == wiki_docs[3]


def test_zero_row_shard_is_fine(tmp_path, good_shard):
    write_shard(tmp_path / "in/empty.parquet", {"text": pa.array([], pa.string())})
    summary = _run(tmp_path)
    assert summary["input_errors"] == [] and summary["totals"]["docs_in"] == 2


def _one_line(docs: list[str], chars: int, prefix: str = "") -> str:
    """A document of about `chars` characters on one line, made of real sentences."""
    line = " ".join(d.replace("\n", " ") for d in docs)
    return (prefix + (line + " ") * (chars // len(line) + 1))[:chars].rstrip() + "."


def test_huge_single_line_documents_are_kept_whole_or_quarantined(tmp_path, wiki_docs):
    kept, too_long = _one_line(wiki_docs[:40], 1_500_000), _one_line(wiki_docs[40:80], 2_500_000)
    write_shard(tmp_path / "in/0.parquet", {"id": ["small", "kept", "too-long"], "text": [wiki_docs[100], kept, too_long]})
    summary = _run(tmp_path, ingest={"max_chars": 2_000_000}, input={"batch_size": 1})
    curated = {r["doc_id"]: r for r in curated_rows(summary)}
    assert curated.keys() == {"small", "kept"}
    assert curated["kept"]["text"] == kept and (curated["kept"]["n_chars"], curated["kept"]["n_lines"]) == (len(kept), 1)
    [rejected] = rejected_rows(summary)
    assert (rejected["doc_id"], rejected["reason"], rejected["input_row"]) == ("too-long", "too_long", 2)
    assert rejected["detail"] == f"{len(too_long)} characters > ingest.max_chars=2000000" and rejected["text"] == too_long


# Runs in a fresh interpreter so that its peak RSS is this pipeline's alone. It reads VmHWM, the
# high-water mark of its own memory: ru_maxrss (SELF or CHILDREN) keeps the parent's peak across
# fork+exec, so under pytest it would measure pytest. A warm-up run on a tiny shard first: imports,
# DuckDB and the warehouse set-up are then in the baseline, not in the growth.
_PEAK_RSS_SCRIPT = """
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
from curation.runner import run_pipeline
from schemas.config import config_from_dict

root, batch_size = sys.argv[1], int(sys.argv[2])
off = {"enabled": False}

def peak_rss_kb():
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["VmHWM"].split()[0])

def config(paths):
    return config_from_dict({
        "input": {"paths": paths, "batch_size": batch_size},
        "output": {"root": root + "/out"}, "warehouse": {"path": root + "/warehouse.duckdb"},
        "ingest": {"max_chars": 3_000_000},
        "exact_dedup": off, "near_dedup": off, "quality": off, "language": off, "toxicity": off,
    })

pq.write_table(pa.table({"text": ["a small document"]}), root + "/warm-up.parquet")
run_pipeline(config([root + "/warm-up.parquet"]), run_id="warm-up")
baseline = peak_rss_kb()
summary = run_pipeline(config([root + "/in/*.parquet"]), run_id="huge")
growth_mb = (peak_rss_kb() - baseline) / 1024
print(json.dumps({"growth_mb": growth_mb, "totals": summary["totals"]}))
"""


def _peak_rss_growth_mb(root, batch_size: int) -> tuple[float, dict]:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_SCRIPT, str(root), str(batch_size)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return measured["growth_mb"], measured["totals"]


@pytest.mark.slow
def test_memory_stays_bounded_by_the_batch_not_the_shard(tmp_path, wiki_docs):
    """24 one-line documents of 2.5 MB (60 MB of text, row groups of 4 documents), read 2 at a time.
    Measured here: ~140-150 MB of growth with batch_size 2, ~540 MB with batch_size 1000 (the whole
    shard as one batch), which is what a regression to whole-file reading would cost."""
    docs = [_one_line(wiki_docs[:200], 2_500_000, prefix=f"Document {i}. ") for i in range(24)]
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"text": docs}), tmp_path / "in/huge.parquet", row_group_size=4)
    del docs
    growth_mb, totals = _peak_rss_growth_mb(tmp_path, batch_size=2)
    assert totals == {"docs_in": 24, "docs_out": 24, "docs_rejected": 0, "input_errors": 0}
    assert growth_mb < 250, f"peak RSS grew by {growth_mb:.0f} MB for 2.5 MB documents read 2 at a time"


def test_unreadable_paths(tmp_path, good_shard):
    (tmp_path / "in/dir.parquet").mkdir()
    cfg = make_config(
        tmp_path, [str(tmp_path / "in/*.parquet"), str(tmp_path / "missing/*.parquet"), str(tmp_path / "gone.parquet")], **CHEAP
    )
    summary = run_pipeline(cfg, run_id="paths")
    errors = {e["input_file"]: e["error"] for e in summary["input_errors"]}
    assert errors[str(tmp_path / "missing/*.parquet")] == "no file matches this pattern"
    assert errors[str(tmp_path / "gone.parquet")] == "no such file"
    assert "is a directory" in errors[str(tmp_path / "in/dir.parquet")]
    assert summary["totals"]["docs_out"] == 2


def test_no_readable_input_at_all_fails_loudly(tmp_path):
    cfg = make_config(tmp_path, [str(tmp_path / "nothing/*.parquet")], **CHEAP)
    with pytest.raises(RunError, match="no input shards found.*no file matches"):
        run_pipeline(cfg, run_id="none")


def test_missing_language_model_fails_before_writing_output(tmp_path, good_shard):
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")], language={"model_path": str(tmp_path / "nope.ftz")})
    with pytest.raises(FileNotFoundError, match="nope.ftz"):
        run_pipeline(cfg, run_id="nomodel")
    # every stage is set up before the first step: not even ingest touched a shard
    assert not list((tmp_path / "out/runs/nomodel").rglob("*.parquet"))
    from warehouse.warehouse import Warehouse

    _, rows = Warehouse(tmp_path / "warehouse.duckdb").query("SELECT status FROM runs WHERE run_id = 'nomodel'")
    assert rows == [("failed",)]


def test_dates_are_parsed_and_unreadable_dates_kept_in_metadata(tmp_path, wiki_docs):
    table = pa.table({"text": pa.array(wiki_docs[:2], pa.large_string()), "crawl_date": ["2024-05-01", "not a date"]})
    pq.write_table(table, tmp_path / "x.parquet")
    (tmp_path / "in").mkdir()
    (tmp_path / "x.parquet").rename(tmp_path / "in/x.parquet")
    rows = curated_rows(_run(tmp_path))
    assert rows[0]["crawl_date"].year == 2024 and rows[1]["crawl_date"] is None
    assert json.loads(rows[1]["metadata"]) == {"crawl_date_unparsed": "not a date"}


def test_fsspec_urls_are_read(tmp_path, wiki_docs):
    import fsspec

    fs = fsspec.filesystem("memory")
    with fs.open("/crawl/part-0.parquet", "wb") as handle:
        pq.write_table(pa.table({"text": wiki_docs[:3]}), handle)
    cfg = make_config(tmp_path, ["memory://crawl/*.parquet", "memory://crawl/missing.parquet"], **CHEAP)
    summary = run_pipeline(cfg, run_id="urls")
    assert summary["totals"]["docs_out"] == 3
    assert [r["input_file"] for r in curated_rows(summary)] == ["memory:///crawl/part-0.parquet"] * 3
    assert summary["input_errors"][0]["input_file"] == "memory://crawl/missing.parquet"
