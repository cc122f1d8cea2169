"""Resume: an interrupted run id continues where it stopped and ends with the same outputs."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import curated_rows, make_config, rejected_rows, write_shard

from curation.runner import RunError, prepare_run, run_pipeline, run_steps
from warehouse.warehouse import Warehouse


@pytest.fixture
def inputs(tmp_path, wiki_docs):
    for i in range(3):
        docs = wiki_docs[i * 8 : i * 8 + 8] + [wiki_docs[0], "tiny"]
        write_shard(tmp_path / f"in/{i}.parquet", {"text": docs})
    return [str(tmp_path / "in/*.parquet")]


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("run_id",)} for r in rows]


def test_interrupted_run_resumes_to_the_same_outputs(tmp_path, inputs):
    reference = run_pipeline(make_config(tmp_path / "ref", inputs), run_id="r")

    cfg = make_config(tmp_path / "resumed", inputs)
    plan = prepare_run(cfg, "r")
    steps = run_steps(plan)
    quality_at = next(i for i, s in enumerate(steps) if s.name == "quality")
    for step in steps[:quality_at]:
        for shard in plan.shards if step.per_shard else [None]:
            step.fn(plan, shard)
    steps[quality_at].fn(plan, plan.shards[0])  # "killed" after one shard of the quality stage
    # a crash mid-write leaves only a temporary file, which must not matter
    stray = plan.paths("quality", plan.shards[1]).curated.with_name(".shard-00001.parquet.tmp-dead")
    stray.write_bytes(b"partial")
    done_before = plan.paths("quality", plan.shards[0]).stats.stat().st_mtime_ns

    _, rows = Warehouse(cfg.warehouse.path).query("SELECT count(*) FROM documents")
    assert rows == [(0,)]  # nothing of an unfinished run is visible

    resumed = run_pipeline(cfg, run_id="r")
    assert plan.paths("quality", plan.shards[0]).stats.stat().st_mtime_ns == done_before  # not redone
    assert resumed["totals"] == reference["totals"]
    assert _comparable(curated_rows(resumed)) == _comparable(curated_rows(reference))
    assert [(r["stage"], r["reason"]) for r in rejected_rows(resumed)] == [
        (r["stage"], r["reason"]) for r in rejected_rows(reference)
    ]


def test_rerunning_a_finished_run_changes_nothing_and_force_recomputes(tmp_path, inputs):
    cfg = make_config(tmp_path, inputs)
    first = run_pipeline(cfg, run_id="r")
    marker = tmp_path / "out/runs/r/00_ingest/stats/shard-00000.json"
    stamp = marker.stat().st_mtime_ns
    again = run_pipeline(cfg, run_id="r")
    assert again["totals"] == first["totals"] and marker.stat().st_mtime_ns == stamp
    forced = run_pipeline(cfg, run_id="r", force=True)
    # recomputed in a fresh folder that replaced the old one once it completed
    assert forced["totals"] == first["totals"] and forced["run_dir"] != first["run_dir"]
    assert not marker.exists() and (Path(forced["run_dir"]) / "00_ingest/stats/shard-00000.json").exists()
    # the run is registered once, not twice
    _, rows = Warehouse(cfg.warehouse.path).query("SELECT count(*) FROM documents")
    assert rows == [(first["totals"]["docs_out"],)]


def test_resuming_with_a_different_config_is_refused(tmp_path, inputs):
    run_pipeline(make_config(tmp_path, inputs), run_id="r")
    changed = make_config(tmp_path, inputs, language={"min_score": 0.9})
    with pytest.raises(RunError, match="different config"):
        run_pipeline(changed, run_id="r")


def test_outputs_are_deterministic(tmp_path, inputs):
    a = run_pipeline(make_config(tmp_path / "a", inputs), run_id="same")
    b = run_pipeline(make_config(tmp_path / "b", inputs), run_id="same")
    files_a = sorted((tmp_path / "a/out/runs/same").glob("*/curated/*.parquet"))
    files_b = sorted((tmp_path / "b/out/runs/same").glob("*/curated/*.parquet"))
    assert len(files_a) == len(files_b) > 0
    for fa, fb in zip(files_a, files_b):
        assert pq.read_table(fa).equals(pq.read_table(fb)), fa.name
    assert a["totals"] == b["totals"]
