"""Bad input: each case is a clear error naming the file/row/field, or a quarantined document with
a reason; the rest of the run goes on and nothing is lost."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import curated_rows, make_config, rejected_rows, write_shard

from curation.runner import RunError, run_pipeline

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


def test_corrupt_data_pages_lose_nothing_half_written(tmp_path, good_shard, wiki_docs):
    path = write_shard(tmp_path / "in/corrupt.parquet", {"text": wiki_docs[2:60]})
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 400] = b"\xff" * 400  # footer intact, pages garbage
    path.write_bytes(bytes(data))
    summary = _run(tmp_path)
    assert "corrupt.parquet" in _errors(summary)
    # the corrupt file contributes no rows at all rather than a prefix of them
    assert {r["input_file"].rsplit("/", 1)[-1] for r in curated_rows(summary)} == {"00-good.parquet"}
    assert summary["totals"]["docs_in"] == summary["totals"]["docs_out"] + summary["totals"]["docs_rejected"]


def test_missing_text_column_and_wrong_type_name_the_column(tmp_path, good_shard):
    write_shard(tmp_path / "in/notext.parquet", {"body": ["x"]})
    write_shard(tmp_path / "in/inttext.parquet", {"text": [1, 2]})
    errors = _errors(_run(tmp_path))
    assert "missing text column 'text'" in errors["notext.parquet"] and "['body']" in errors["notext.parquet"]
    assert "column 'text' has type int64, expected string or binary" in errors["inttext.parquet"]


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
    assert rejected["latin1"]["detail"].startswith("byte 3") and rejected["latin1"]["input_row"] == 3
    assert "ingest.max_chars=4000" in rejected["huge"]["detail"] and len(rejected["huge"]["text"]) == 5000
    assert "ok-binary" in {r["doc_id"] for r in curated_rows(summary)}


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


def test_huge_single_line_document_is_streamed_through(tmp_path, wiki_docs):
    huge = (wiki_docs[5].replace("\n", " ") + " ") * 400  # ~1 MB on one line
    write_shard(tmp_path / "in/0.parquet", {"text": [huge, wiki_docs[6]]})
    summary = _run(tmp_path, ingest={"max_chars": 2_000_000})
    assert summary["totals"]["docs_in"] == 2 and len(huge) > 500_000


def test_unreadable_paths(tmp_path, good_shard):
    (tmp_path / "in/dir.parquet").mkdir()
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet"), str(tmp_path / "missing/*.parquet"), str(tmp_path / "gone.parquet")], **CHEAP)
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
    with pytest.raises(ValueError, match="nope.ftz"):
        run_pipeline(cfg, run_id="nomodel")
    assert not list((tmp_path / "out/runs/nomodel").glob("*language*/curated/*.parquet"))
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
