"""The warehouse's one catalogue of jobs: runs and rewrites live the same life under (kind, id),
completed jobs stay visible through reruns and failed replacements, readers never take the write
lock, and warehouses written before the catalogue are migrated in place keeping every row."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.documents import CURATED_DOCUMENT
from schemas.rewrite import GENERATION
from warehouse.warehouse import REWRITE, RUN, Warehouse

_DUMMY = {
    pa.types.is_string: "x",
    pa.types.is_boolean: True,
    pa.types.is_integer: 0,
    pa.types.is_floating: 0.0,
    pa.types.is_timestamp: datetime(2024, 1, 1, tzinfo=UTC),
}


def _parquet(path: Path, schema: pa.Schema, **values) -> Path:
    """One real row of `schema`: the given values, a placeholder in every other required column."""
    row = {}
    for field in schema:
        if field.name in values:
            row[field.name] = values[field.name]
        elif not field.nullable:
            row[field.name] = next(v for is_type, v in _DUMMY.items() if is_type(field.type))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([row], schema=schema), path)
    return path


def _doc(root: Path, run_id: str, doc_id: str) -> Path:
    return _parquet(root / f"{run_id}-{doc_id}.parquet", CURATED_DOCUMENT, doc_id=doc_id, run_id=run_id)


def _generation(root: Path, rewrite_id: str, record_id: str) -> Path:
    return _parquet(root / f"gen-{rewrite_id}-{record_id}.parquet", GENERATION, record_id=record_id, rewrite_id=rewrite_id)


def _rows(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.query(sql)[1]


# ---------------------------------------------------------------- one lifecycle, two kinds


def test_a_run_and_a_rewrite_with_one_id_are_two_jobs(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.job_started(RUN, "x", tmp_path / "run-x", {"c": 1}, ["in/0.parquet"])
    wh.job_started(REWRITE, "x", tmp_path / "rw-x", {"c": 2})
    wh.job_completed(REWRITE, "x", {"generations": [_generation(tmp_path, "x", "g1")]}, {"accepted": 1})
    assert wh.job_status(RUN, "x") == ("running", str(tmp_path / "run-x"))
    assert wh.job_status(REWRITE, "x") == ("completed", str(tmp_path / "rw-x"))

    wh.job_failed(RUN, "x", "boom")
    assert wh.job_status(REWRITE, "x")[0] == "completed" and wh.job_status(RUN, "x")[0] == "failed"
    assert _rows(wh, "SELECT run_id, status, error, docs_out FROM runs") == [("x", "failed", "boom", None)]
    assert _rows(wh, "SELECT rewrite_id, status, json_extract(summary, '$.accepted')::INT FROM rewrites") == [
        ("x", "completed", 1)
    ]
    assert _rows(wh, "SELECT count(*) FROM documents") == [(0,)]
    assert _rows(wh, "SELECT record_id FROM generations") == [("g1",)]

    with pytest.raises(ValueError, match="generations files belong to a rewrite, not a run"):
        wh.job_completed(RUN, "x", {"generations": [_generation(tmp_path, "x", "g2")]}, {})
    with pytest.raises(ValueError, match="a rewrite has no stage stats"):
        wh.job_completed(REWRITE, "x", {}, {}, input_errors=[{"run_id": "x", "input_file": "f", "error": "e"}])
    with pytest.raises(ValueError, match="unknown job kind 'export'"):
        wh.job_status("export", "x")
    assert wh.job_status(RUN, "x")[0] == "failed" and _rows(wh, "SELECT record_id FROM generations") == [("g1",)]


def test_a_job_completes_whatever_the_state_of_another_kind_s_files(tmp_path):
    """Completing a job recreates only its own kind's views: a run's shard deleted by hand breaks
    the documents view, not the next rewrite's registration (nor its view)."""
    wh = Warehouse(tmp_path / "w.duckdb")
    doc = _doc(tmp_path, "r1", "d1")
    wh.job_started(RUN, "r1", tmp_path / "run", {})
    wh.job_completed(RUN, "r1", {"documents": [doc]}, {})
    doc.unlink()
    wh.job_started(REWRITE, "w1", tmp_path / "rw", {})
    wh.job_completed(REWRITE, "w1", {"generations": [_generation(tmp_path, "w1", "g1")]}, {"accepted": 1})
    assert _rows(wh, "SELECT record_id FROM generations") == [("g1",)]
    with pytest.raises(duckdb.Error, match="r1-d1.parquet"):
        _rows(wh, "SELECT * FROM documents")


@pytest.mark.parametrize("kind", [RUN, REWRITE])
def test_a_completed_job_stays_visible_until_its_replacement_completes(tmp_path, kind):
    wh = Warehouse(tmp_path / "w.duckdb")
    view, key, write = ("documents", "doc_id", _doc) if kind == RUN else ("generations", "record_id", _generation)
    status_of = f"SELECT status, error FROM {kind}s WHERE {kind}_id = 'j'"
    first = {view: [write(tmp_path, "j", "first")]}
    assert wh.job_started(kind, "j", tmp_path / "j", {"v": 1}) is True
    wh.job_completed(kind, "j", first, {"docs_in": 1, "docs_out": 1, "docs_rejected": 0, "input_errors": 0})

    # a rerun never sets it back to running, and says that a completed version exists
    assert wh.job_started(kind, "j", tmp_path / "j@1", {"v": 2}) is False
    assert wh.job_status(kind, "j") == ("completed", str(tmp_path / "j"))
    assert _rows(wh, f"SELECT {key} FROM {view}") == [("first",)]

    wh.job_failed(kind, "j", "disk full")
    assert _rows(wh, status_of) == [("completed", "replacement failed: disk full")]
    assert _rows(wh, f"SELECT {key} FROM {view}") == [("first",)]

    wh.job_started(kind, "j", tmp_path / "j@2", {"v": 3})
    wh.job_completed(
        kind,
        "j",
        {view: [write(tmp_path, "j", "second")]},
        {"docs_in": 2, "docs_out": 1, "docs_rejected": 1, "input_errors": 0},
        output_dir=tmp_path / "j@2",
        config={"v": 3},
    )
    assert _rows(wh, status_of) == [("completed", None)]
    assert wh.job_status(kind, "j") == ("completed", str(tmp_path / "j@2"))
    assert _rows(wh, f"SELECT {key} FROM {view}") == [("second",)]
    assert wh.completed_files(view) == [str(tmp_path / "j-second.parquet" if kind == RUN else tmp_path / "gen-j-second.parquet")]
    assert json.loads(_rows(wh, f"SELECT config FROM {kind}s")[0][0]) == {"v": 3}  # what the visible version ran with


def test_a_run_records_its_totals_stats_and_input_errors(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.job_started(RUN, "r", tmp_path / "r", {}, ["a.parquet", "b.parquet"])
    errors = [{"run_id": "r", "input_file": "b.parquet", "error": "not Parquet"}]
    stats = [
        {
            "run_id": "r",
            "stage": "ingest",
            "shard": "s0",
            "docs_in": 3,
            "docs_out": 2,
            "docs_rejected": 1,
            "bytes_in": 30,
            "bytes_out": 20,
            "bytes_rejected": 10,
            "seconds": 0.5,
            "reasons": "{}",
        }
    ]
    totals = {"docs_in": 3, "docs_out": 2, "docs_rejected": 1, "input_errors": 1}
    wh.job_completed(RUN, "r", {"documents": [_doc(tmp_path, "r", "d")]}, totals, stats=stats, input_errors=errors)
    cols, rows = wh.query("SELECT * FROM runs")
    assert cols == [
        "run_id",
        "status",
        "started_at",
        "finished_at",
        "output_dir",
        "input_paths",
        "config",
        "docs_in",
        "docs_out",
        "docs_rejected",
        "input_errors",
        "error",
    ]
    record = dict(zip(cols, rows[0]))
    assert (record["docs_in"], record["docs_out"], record["docs_rejected"], record["input_errors"]) == (3, 2, 1, 1)
    assert json.loads(record["input_paths"]) == ["a.parquet", "b.parquet"]
    assert _rows(wh, "SELECT input_file, error FROM input_errors") == [("b.parquet", "not Parquet")]
    assert _rows(wh, "SELECT stage, docs_in FROM stage_stats") == [("ingest", 3)]
    assert wh.query("SELECT * FROM rewrites")[0] == [
        "rewrite_id",
        "status",
        "started_at",
        "finished_at",
        "output_dir",
        "config",
        "summary",
        "error",
    ]


def test_nothing_secret_reaches_the_catalogue(tmp_path):
    secret = "https://user:hunter2pass@example.org/data?sig=t0psecretsig"
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.job_started(RUN, "r", tmp_path / "r", {"url": secret}, [secret])
    wh.job_failed(RUN, "r", f"cannot read {secret}")
    wh.job_started(REWRITE, "w", tmp_path / "w", {"engine": {"base_url": secret}})
    wh.job_completed(REWRITE, "w", {}, {"endpoint": secret}, config={"engine": {"base_url": secret}})
    for table in ("_jobs", "_job_files"):
        rows = repr(_rows(wh, f"SELECT * FROM {table}"))
        assert "hunter2pass" not in rows and "t0psecretsig" not in rows, table
    assert "example.org/data" in repr(_rows(wh, "SELECT * FROM _jobs"))


# ---------------------------------------------------------------- readers


def test_the_status_of_a_job_in_a_missing_warehouse_is_unknown(tmp_path):
    wh = Warehouse(tmp_path / "none" / "w.duckdb")
    assert wh.job_status(RUN, "r") is None and wh.completed_files("documents") == []
    assert not (tmp_path / "none").exists()  # asking created nothing


def test_job_status_reads_without_taking_the_write_lock(tmp_path):
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    wh.job_started(RUN, "r", tmp_path / "r", {})
    before = path.read_bytes()
    # another process reading: a write connection would now wait for it, a read-only one need not
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}, read_only=True); print('held', flush=True); time.sleep(20)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(path)).close()  # the fault is real: writing is blocked
        assert wh.job_status(RUN, "r") == ("running", str(tmp_path / "r"))
        assert wh.completed_files("documents") == []
        assert reader.poll() is None, "the reader ended first: the test proved nothing"
    finally:
        reader.kill()
        reader.wait()
    assert path.read_bytes() == before


# ---------------------------------------------------------------- migration of the old layout

# the DDL of the layouts before the job catalogue, as the warehouse wrote it
_OLD_RUNS = """CREATE TABLE _runs (
    run_id VARCHAR PRIMARY KEY, status VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    output_dir VARCHAR, input_paths VARCHAR, config VARCHAR,
    docs_in BIGINT, docs_out BIGINT, docs_rejected BIGINT, input_errors BIGINT, error VARCHAR)"""
_OLD_REWRITES = """CREATE TABLE _rewrites (
    rewrite_id VARCHAR PRIMARY KEY, status VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    output_dir VARCHAR, config VARCHAR, summary VARCHAR, error VARCHAR)"""
_OLD_RUN_FILES = {
    "with_job_kind": "CREATE TABLE _run_files (run_id VARCHAR, kind VARCHAR, path VARCHAR, job_kind VARCHAR)",
    "without_job_kind": "CREATE TABLE _run_files (run_id VARCHAR, kind VARCHAR, path VARCHAR)",
}
_OLD_INPUT_ERRORS = "CREATE TABLE _input_errors (run_id VARCHAR NOT NULL, input_file VARCHAR NOT NULL, error VARCHAR NOT NULL)"


def _old_warehouse(path: Path, files_root: Path, layout: str) -> dict[str, Path]:
    """A warehouse as an earlier version left it: completed, failed and running runs, a rewrite
    named like a run (when the layout has rewrites), the files of each."""
    files = {
        "crawl1": _doc(files_root, "crawl1", "kept"),
        "broken": _doc(files_root, "broken", "half"),
        "rw-crawl1": _generation(files_root, "crawl1", "g1"),
        "rw-failed": _generation(files_root, "failed", "g2"),
    }
    has_rewrites = layout != "before_rewrites"
    con = duckdb.connect(str(path))
    con.execute(_OLD_RUNS)
    con.execute(_OLD_RUN_FILES["with_job_kind" if layout == "with_job_kind" else "without_job_kind"])
    con.execute("CREATE VIEW runs AS SELECT * FROM _runs")
    con.execute(_OLD_INPUT_ERRORS)
    con.execute("INSERT INTO _input_errors VALUES ('crawl1', 'gone.parquet', 'not Parquet')")
    con.execute(
        """INSERT INTO _runs VALUES
        ('crawl1', 'completed', '2024-01-01 10:00:00+00', '2024-01-01 10:05:00+00', '/out/runs/crawl1',
         '["in/0.parquet", "gone.parquet"]', '{"input": {}}', 6, 5, 1, 1, NULL),
        ('broken', 'failed', '2024-01-02 10:00:00+00', '2024-01-02 10:01:00+00', '/out/runs/broken',
         '["in/1.parquet"]', '{"input": {}}', NULL, NULL, NULL, NULL, 'ValueError: bad model'),
        ('going', 'running', '2024-01-03 10:00:00+00', NULL, '/out/runs/going', '[]', '{}', NULL, NULL, NULL, NULL, NULL),
        ('replaced', 'completed', '2024-01-04 10:00:00+00', '2024-01-04 10:05:00+00', '/out/runs/replaced',
         '[]', '{}', 0, 0, 0, 0, 'replacement failed: RunError: no input')"""
    )
    file_rows = [("crawl1", "documents", files["crawl1"], "run"), ("broken", "documents", files["broken"], "run")]
    if has_rewrites:
        con.execute(_OLD_REWRITES)
        con.execute("CREATE VIEW rewrites AS SELECT * FROM _rewrites")
        con.execute(
            """INSERT INTO _rewrites VALUES
            ('crawl1', 'completed', '2024-01-05 10:00:00+00', '2024-01-05 10:09:00+00', '/out/rewrites/crawl1',
             '{"routes": []}', '{"accepted": 1}', NULL),
            ('failed', 'failed', '2024-01-06 10:00:00+00', '2024-01-06 10:01:00+00', '/out/rewrites/failed',
             '{"routes": []}', NULL, 'EngineLoadError: no weights')"""
        )
        file_rows += [
            ("crawl1", "generations", files["rw-crawl1"], "rewrite"),
            ("failed", "generations", files["rw-failed"], "rewrite"),
        ]
    for run_id, kind, file, job_kind in file_rows:
        values = [run_id, kind, str(file)] + ([job_kind] if layout == "with_job_kind" else [])
        con.execute(f"INSERT INTO _run_files VALUES ({', '.join('?' * len(values))})", values)
    con.close()
    return files


def _snapshot(path: Path, sql: str) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cursor = con.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("layout", ["with_job_kind", "without_job_kind", "before_rewrites"])
def test_an_old_warehouse_is_migrated_in_place_keeping_every_row(tmp_path, layout):
    path = tmp_path / "w.duckdb"
    files = _old_warehouse(path, tmp_path / "files", layout)
    has_rewrites = layout != "before_rewrites"
    runs_before = _snapshot(path, "SELECT * FROM runs ORDER BY run_id")
    rewrites_before = _snapshot(path, "SELECT * FROM rewrites ORDER BY rewrite_id") if has_rewrites else None

    wh = Warehouse(path)
    # the first open, even a reader's, migrates
    assert wh.job_status(RUN, "crawl1") == ("completed", "/out/runs/crawl1")
    tables = {r[0] for r in _snapshot(path, "SELECT table_name FROM information_schema.tables")[1]}
    assert not tables & {"_runs", "_rewrites", "_run_files"} and {"_jobs", "_job_files"} <= tables
    assert _snapshot(path, "SELECT * FROM runs ORDER BY run_id") == runs_before
    if has_rewrites:
        assert _snapshot(path, "SELECT * FROM rewrites ORDER BY rewrite_id") == rewrites_before
    assert _rows(wh, "SELECT count(*) FROM _jobs") == [(6 if has_rewrites else 4,)]
    assert _rows(wh, "SELECT run_id, input_file FROM input_errors") == [("crawl1", "gone.parquet")]

    # the files keep their jobs: only completed jobs' files count, a rewrite named like a run is its own job
    assert wh.completed_files("documents") == [str(files["crawl1"])]
    assert wh.completed_files("generations") == ([str(files["rw-crawl1"])] if has_rewrites else [])
    assert wh.job_status(REWRITE, "crawl1") == (("completed", "/out/rewrites/crawl1") if has_rewrites else None)
    assert wh.job_status(RUN, "failed") is None

    # the lifecycle goes on over the migrated rows
    wh.job_started(RUN, "crawl1", tmp_path / "again", {})
    assert wh.job_status(RUN, "crawl1")[0] == "completed"
    wh.job_started(REWRITE, "later", tmp_path / "later", {})
    wh.job_completed(REWRITE, "later", {"generations": [_generation(tmp_path / "files", "later", "g3")]}, {"accepted": 1})
    assert _rows(wh, "SELECT doc_id, run_id FROM documents") == [("kept", "crawl1")]
    expected = [("g1", "crawl1"), ("g3", "later")] if has_rewrites else [("g3", "later")]
    assert _rows(wh, "SELECT record_id, rewrite_id FROM generations ORDER BY record_id") == expected
    assert _rows(wh, "SELECT count(*) FROM _job_files") == [(5 if has_rewrites else 3,)]

    # a second open finds nothing left to migrate
    Warehouse(path).job_started(RUN, "next", tmp_path / "next", {})
    assert _snapshot(path, "SELECT * FROM runs WHERE run_id <> 'next' ORDER BY run_id") == runs_before
