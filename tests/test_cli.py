"""The `curate` command line: init, run, status, sql (table/csv/json), and the demo."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import write_shard
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture
def configured(tmp_path, wiki_docs):
    write_shard(tmp_path / "data/0.parquet", {"text": wiki_docs[:4] + [wiki_docs[0], None]})
    assert _invoke("init", tmp_path / "curate.yaml").exit_code == 0
    return tmp_path / "curate.yaml"


def test_init_refuses_to_overwrite(configured):
    result = _invoke("init", configured)
    assert result.exit_code == 1 and "exists" in result.output


def test_run_then_query_in_every_format(configured, tmp_path):
    result = _invoke("run", configured, "--run-id", "cli", "--local")
    assert result.exit_code == 0, result.output
    assert "Funnel of run cli" in result.output and "exact_duplicate" in result.output and "null_text" in result.output

    query = "SELECT stage, reason, count(*) AS n FROM rejected GROUP BY ALL ORDER BY stage"
    as_json = json.loads(_invoke("sql", "--config", configured, "--format", "json", query).stdout)
    assert as_json == [{"stage": "exact_dedup", "reason": "exact_duplicate", "n": 1}, {"stage": "ingest", "reason": "null_text", "n": 1}]
    as_csv = list(csv.reader(io.StringIO(_invoke("sql", "--config", configured, "--format", "csv", query).stdout)))
    assert as_csv == [["stage", "reason", "n"], ["exact_dedup", "exact_duplicate", "1"], ["ingest", "null_text", "1"]]
    assert "exact_duplicate" in _invoke("sql", "--config", configured, query).stdout

    status = json.loads(_invoke("status", "--config", configured, "--format", "json").stdout)
    assert [(r["run_id"], r["status"], r["docs_in"], r["docs_out"]) for r in status] == [("cli", "completed", 6, 4)]

    # plain duckdb sees the same views
    con = duckdb.connect(str(tmp_path / "warehouse/curation.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM documents").fetchall() == [(4,)]
    assert {r[0] for r in con.execute("SELECT stage FROM stage_stats").fetchall()} >= {"ingest", "quality"}


def test_sql_is_read_only_and_errors_are_clear(configured):
    assert _invoke("run", configured, "--run-id", "ro", "--local").exit_code == 0
    result = _invoke("sql", "--config", configured, "DELETE FROM _runs")
    assert result.exit_code == 1 and "read-only" in result.output.lower()
    result = _invoke("sql", "--config", configured, "SELECT nope FROM documents")
    assert result.exit_code == 1 and "nope" in result.output


def test_bad_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input:\n  paths: [x]\n  txt_column: body\n")
    result = _invoke("run", bad)
    assert result.exit_code == 2 and "input.txt_column: unknown key" in result.output


def test_status_without_a_warehouse(tmp_path):
    result = _invoke("status", "--warehouse", tmp_path / "none.duckdb")
    assert result.exit_code == 1 and "does not exist yet" in result.output


@pytest.mark.slow
def test_demo_end_to_end_through_prefect(tmp_path):
    result = _invoke("demo", "--workdir", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(tmp_path / "demo/warehouse.duckdb"), read_only=True)
    removed = dict(con.execute("SELECT stage, count(*) FROM rejected GROUP BY ALL").fetchall())
    # every removing stage removed something, and both crawls completed
    assert set(removed) == {"ingest", "exact_dedup", "near_dedup", "language", "quality", "toxicity", "score"}
    assert all(n > 0 for n in removed.values())
    reasons = {r[0] for r in con.execute("SELECT reason FROM rejected").fetchall()}
    assert {"exact_duplicate_of_curated", "near_duplicate_of_curated", "duplicate_id", "url_blocklist:domain"} <= reasons
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'completed'").fetchall() == [(2,)]
    assert con.execute("SELECT sum(pii_redactions) > 0 FROM documents").fetchall() == [(True,)]
    # the PreSelect scorer trained on crawl1 selected crawl2: scores for every scored document
    assert con.execute("SELECT scorer_id FROM scorers").fetchall() == [("demo-preselect",)]
    scored = con.execute("SELECT count(*) FROM scores WHERE run_id = 'demo-crawl2'").fetchall()[0][0]
    kept = con.execute("SELECT count(*) FROM documents WHERE run_id = 'demo-crawl2'").fetchall()[0][0]
    dropped = con.execute("SELECT count(*) FROM rejected WHERE run_id = 'demo-crawl2' AND stage = 'score'").fetchall()[0][0]
    assert scored == kept + dropped and dropped > 0
    assert "Scorer card" in result.output
    # each run's totals are what its readable input files hold and what the views show
    for run_id, inputs, docs_in, docs_out, docs_rejected in con.execute(
        "SELECT run_id, input_paths, docs_in, docs_out, docs_rejected FROM runs"
    ).fetchall():
        unreadable = {r[0] for r in con.execute("SELECT input_file FROM input_errors WHERE run_id = ?", [run_id]).fetchall()}
        readable = [f for f in json.loads(inputs) if f not in unreadable]
        assert docs_in == sum(pq.ParquetFile(f).metadata.num_rows for f in readable) > 0
        assert docs_out == con.execute("SELECT count(*) FROM documents WHERE run_id = ?", [run_id]).fetchall()[0][0]
        assert docs_rejected == con.execute("SELECT count(*) FROM rejected WHERE run_id = ?", [run_id]).fetchall()[0][0]
    # the rewrite of a crawl2 sample: records in both WRAP styles, with provenance, gate verdicts shown
    styles = dict(con.execute("SELECT style, count(*) FROM generations GROUP BY ALL").fetchall())
    assert set(styles) == {"wrap_wikipedia", "wrap_qa"}
    assert con.execute(
        "SELECT count(*) FROM generations g JOIN documents d USING (doc_id) WHERE d.run_id = 'demo-crawl2' "
        "AND g.model_name = 'smollm2-135m-instruct' AND g.model_hash IS NOT NULL AND g.tokens_out > 0"
    ).fetchall() == [(sum(styles.values()),)]
    assert con.execute("SELECT status FROM rewrites").fetchall() == [("completed",)]
    assert "Output gates" in result.output and "Records per style" in result.output


def test_warehouse_waits_for_another_process_holding_the_lock(tmp_path):
    import subprocess
    import sys
    import time

    from warehouse.warehouse import Warehouse

    path = tmp_path / "w.duckdb"
    with Warehouse(path).connect():
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(2)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    columns, rows = Warehouse(path).query("SELECT count(*) FROM runs")
    holder.wait()
    assert rows == [(0,)] and time.monotonic() - started > 0.5
