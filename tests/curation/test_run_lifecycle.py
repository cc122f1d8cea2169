"""A run's life in the warehouse: ids that never collide, completed runs that stay visible, runs
with no readable input that fail, and the same run id refused while it is running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import make_config, write_shard

from curation.rewrite.runner import run_rewrite
from curation.runner import RunError, new_run_id, run_pipeline
from schemas import progress
from schemas.rewrite import RewriteConfig
from warehouse.warehouse import Warehouse

NO_FILTERS = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}
CURATE = [sys.executable, "-c", "from cli.main import app; app()"]


def _count(warehouse: Path, sql: str) -> int:
    return Warehouse(warehouse).query(sql)[1][0][0]


def _status(warehouse: Path, run_id: str) -> tuple:
    return Warehouse(warehouse).query(f"SELECT status, error FROM runs WHERE run_id = '{run_id}'")[1][0]


@pytest.fixture
def crawl(tmp_path, wiki_docs):
    write_shard(tmp_path / "in/0.parquet", {"id": [f"d{i}" for i in range(6)], "text": wiki_docs[:5] + [wiki_docs[0]]})
    return make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **NO_FILTERS)


def test_a_rewrite_named_like_a_run_leaves_that_run_alone(tmp_path, crawl, wiki_docs):
    run_pipeline(crawl, run_id="crawl1")
    wh = tmp_path / "warehouse.duckdb"
    before = {
        v: _count(wh, f"SELECT count(*) FROM {v} WHERE run_id = 'crawl1'") for v in ("documents", "rejected", "minhash_index")
    }
    assert before["documents"] == 5 and before["rejected"] == 1 and before["minhash_index"] > 0

    cfg = RewriteConfig.model_validate(
        {
            "rewrite_id": "crawl1",
            "warehouse": str(wh),
            "output_root": str(tmp_path / "out"),
            "routes": [{"styles": [{"style": "sentence_shuffle"}]}],
        }
    )
    run_rewrite(cfg)
    after = {v: _count(wh, f"SELECT count(*) FROM {v} WHERE run_id = 'crawl1'") for v in before}
    assert after == before
    assert _count(wh, "SELECT count(*) FROM generations WHERE rewrite_id = 'crawl1'") > 0

    # and a later crawl is still deduplicated against it
    write_shard(tmp_path / "in2/0.parquet", {"id": ["copy"], "text": [wiki_docs[1]]})
    second = run_pipeline(make_config(tmp_path, [str(tmp_path / "in2/*.parquet")], **NO_FILTERS), run_id="crawl2")
    assert second["totals"]["docs_out"] == 0


class _WarehouseProbe:
    """A progress reporter that looks at the warehouse while the run is in the middle of its work."""

    def __init__(self, warehouse: Path, run_id: str):
        self.warehouse, self.run_id, self.seen = warehouse, run_id, []

    def stage_started(self, stage: str, total_shards: int) -> None:
        self.seen.append(
            (
                stage,
                _status(self.warehouse, self.run_id)[0],
                _count(self.warehouse, f"SELECT count(*) FROM documents WHERE run_id = '{self.run_id}'"),
            )
        )

    def shard_done(self, *args) -> None:
        pass


def test_a_completed_run_stays_visible_while_it_is_rerun_or_replaced(tmp_path, crawl):
    first = run_pipeline(crawl, run_id="r")
    wh = tmp_path / "warehouse.duckdb"

    again = run_pipeline(crawl, run_id="r")  # not recomputed: the recorded summary
    assert again == first and _status(wh, "r") == ("completed", None)

    probe = _WarehouseProbe(wh, "r")
    progress.set_reporter(probe)
    try:
        forced = run_pipeline(crawl, run_id="r", force=True)
    finally:
        progress.set_reporter(None)
    assert len(probe.seen) > 3 and all(status == "completed" and docs == 5 for _, status, docs in probe.seen), probe.seen
    assert forced["totals"] == first["totals"] and _count(wh, "SELECT count(*) FROM documents") == 5
    assert not Path(first["run_dir"]).exists()  # the replaced folder is gone once nothing points at it


def test_a_failed_replacement_keeps_the_completed_run(tmp_path, crawl):
    run_pipeline(crawl, run_id="r")
    wh = tmp_path / "warehouse.duckdb"
    (tmp_path / "in/0.parquet").write_bytes(b"PAR1 truncated")  # the recompute can read nothing
    with pytest.raises(RunError, match="no input file could be read"):
        run_pipeline(crawl, run_id="r", force=True)
    status, error = _status(wh, "r")
    assert status == "completed" and error.startswith("replacement failed")
    assert _count(wh, "SELECT count(*) FROM documents WHERE run_id = 'r'") == 5


@pytest.mark.parametrize("content", [b"", b"PAR1\x00\x00", b"id,text\n1,hello\n"])
def test_a_run_with_no_readable_file_fails(tmp_path, content):
    for name in ("a.parquet", "b.parquet"):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_bytes(content)
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **NO_FILTERS)
    with pytest.raises(RunError, match=r"no input file could be read:\n  .*a.parquet"):
        run_pipeline(cfg, run_id="nothing")
    assert _status(tmp_path / "warehouse.duckdb", "nothing")[0] == "failed"


def test_run_ids_made_in_the_same_second_differ():
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50


def _config_file(root: Path, docs: list[str], shards: int = 4, **sections) -> Path:
    for i in range(shards):
        write_shard(root / f"in/{i}.parquet", {"text": docs[i::shards]})
    data = {
        "input": {"paths": [str(root / "in/*.parquet")]},
        "output": {"root": str(root / "out")},
        "warehouse": {"path": str(root.parent / "warehouse.duckdb")},
        **sections,
    }
    path = root / "curate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _curate(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CURATE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}
    )


def test_the_same_run_id_started_twice_at_once_is_refused(tmp_path, wiki_docs):
    # quality filters on a few hundred documents keep the first process busy for a while
    config = _config_file(tmp_path / "a", wiki_docs[:1500])
    first = _curate("run", str(config), "--run-id", "same", "--local")
    lock_taken = tmp_path / "a/out/runs/same/run.json"  # written after the run id is held
    deadline = time.monotonic() + 60
    while not lock_taken.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = _curate("run", str(config), "--run-id", "same", "--local")
    _, err = second.communicate(timeout=120)
    overlapped = first.poll() is None
    out, first_err = first.communicate(timeout=600)
    assert overlapped, "the first run ended before the second started: the test proved nothing"
    assert second.returncode == 1 and "run same is already running" in err, err
    assert first.returncode == 0, first_err
    wh = tmp_path / "warehouse.duckdb"
    assert _status(wh, "same") == ("completed", None)
    assert _count(wh, "SELECT count(*) FROM runs") == 1


def test_two_runs_on_one_warehouse_at_once_both_complete(tmp_path, wiki_docs):
    cheap = {"quality": {"enabled": False}, "toxicity": {"enabled": False}}
    a = _curate("run", str(_config_file(tmp_path / "a", wiki_docs[:300], **cheap)), "--run-id", "a", "--local")
    b = _curate("run", str(_config_file(tmp_path / "b", wiki_docs[300:600], **cheap)), "--run-id", "b", "--local")
    for proc in (a, b):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    wh = tmp_path / "warehouse.duckdb"
    assert _status(wh, "a") == ("completed", None) and _status(wh, "b") == ("completed", None)
    per_run = dict(Warehouse(wh).query("SELECT run_id, count(*) FROM documents GROUP BY ALL")[1])
    runs = dict(Warehouse(wh).query("SELECT run_id, docs_out FROM runs")[1])
    assert per_run == runs and per_run["a"] > 0 and per_run["b"] > 0


def test_credentials_in_input_urls_are_never_stored(tmp_path, crawl):
    secret_url = "https://reader:hunter2pass@127.0.0.1:9/crawl/part-0.parquet?X-Amz-Signature=t0psecretsig"
    cfg = crawl.model_copy(update={"input": crawl.input.model_copy(update={"paths": [*crawl.input.paths, secret_url]})})
    summary = run_pipeline(cfg, run_id="r")
    assert summary["totals"]["docs_out"] == 5
    assert [e["input_file"] for e in summary["input_errors"]] == ["https://127.0.0.1:9/crawl/part-0.parquet"]
    stored = [p for p in tmp_path.rglob("*") if p.is_file() and "in" not in p.relative_to(tmp_path).parts[:1]]
    assert any(p.name == "warehouse.duckdb" for p in stored) and any(p.name == "run.json" for p in stored)
    for path in stored:
        data = path.read_bytes()
        assert b"hunter2pass" not in data and b"t0psecretsig" not in data, path
    # DuckDB may compress what it stores: ask it too
    for table in ("_jobs", "_input_errors", "_job_files"):
        cols, rows = Warehouse(tmp_path / "warehouse.duckdb").query(f"SELECT * FROM {table}")
        assert "hunter2pass" not in repr(rows) and "t0psecretsig" not in repr(rows), table


def test_finalizing_removes_the_temporaries_of_a_worker_killed_mid_write(tmp_path, wiki_docs):
    """A worker killed while writing leaves `.name.tmp-*` beside the output its rerun task then
    wrote; the finished run holds exactly what an uninterrupted one holds."""
    from curation.runner import finalize_run, prepare_run, run_steps, setup_stages

    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:4]})
    plan = prepare_run(make_config(tmp_path, [str(tmp_path / "in/*.parquet")]), "tmp")
    setup_stages(plan)
    for step in run_steps(plan):
        for shard in plan.shards if step.per_shard else [None]:
            step.fn(plan, shard)
    leftover = plan.paths(plan.stages[-1], plan.shards[0]).curated.parent / ".shard-00000.parquet.tmp-dead"
    leftover.write_bytes(b"half a parquet file")
    finalize_run(plan)
    assert not leftover.exists()
    assert not list(plan.run_dir.rglob(".*.tmp-*"))
