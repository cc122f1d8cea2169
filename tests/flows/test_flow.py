"""The Prefect flow under prefect_test_harness: same steps, same outputs as the serial runner."""

from __future__ import annotations

import pytest
from conftest import artifacts_of, assert_same_run_outputs, curated_rows, make_config, rejected_rows, warehouse_views, write_shard
from prefect.testing.utilities import prefect_test_harness

from curation.runner import run_pipeline
from flows.curate import curate_flow, run_curate_flow, task_runner_for


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=60):
        yield


def test_flow_matches_the_serial_runner(tmp_path, wiki_docs, harness):
    for i in range(2):
        write_shard(tmp_path / f"in/{i}.parquet", {"text": wiki_docs[i * 6 : i * 6 + 6] + [wiki_docs[1]]})
    inputs = [str(tmp_path / "in/*.parquet")]
    serial = run_pipeline(make_config(tmp_path / "serial", inputs), run_id="x")
    flowed = run_curate_flow(make_config(tmp_path / "flow", inputs, execution={"max_workers": 2}), run_id="x")
    assert flowed["totals"] == serial["totals"]
    assert [r["text"] for r in curated_rows(flowed)] == [r["text"] for r in curated_rows(serial)]
    assert [r["reason"] for r in rejected_rows(flowed)] == [r["reason"] for r in rejected_rows(serial)]


def test_flow_run_publishes_funnel_reasons_and_a_report_link(tmp_path, wiki_docs, harness):
    import json

    from flows.artifacts import funnel_table, reasons_table

    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:5] + [wiki_docs[0], "tiny"]})
    state = curate_flow(config=make_config(tmp_path, [str(tmp_path / "in/*.parquet")]), run_id="shown", return_state=True)
    summary = state.result()
    artifacts = artifacts_of(state)
    assert set(artifacts) == {"curate-funnel", "curate-reasons", "report"}
    funnel = json.loads(artifacts["curate-funnel"].data)
    assert funnel == funnel_table(summary) and funnel[0]["docs in"] == 7
    reasons = json.loads(artifacts["curate-reasons"].data)
    assert reasons == reasons_table(summary)
    assert {"stage": "exact_dedup", "reason": "exact_duplicate", "documents": 1} in reasons
    assert artifacts["report"].data == f"[report.html]({(tmp_path / 'out/runs/shown/report.html').as_uri()})"
    assert (tmp_path / "out/runs/shown/report.html").stat().st_size > 100_000


def test_flow_records_a_failed_run(tmp_path, wiki_docs, harness):
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:2]})
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")], language={"model_path": str(tmp_path / "missing.ftz")})
    with pytest.raises(Exception, match="missing.ftz"):
        curate_flow(config=cfg, run_id="broken")
    from warehouse.warehouse import Warehouse

    _, rows = Warehouse(cfg.warehouse.path).query("SELECT status, error FROM runs")
    assert rows[0][0] == "failed" and "missing.ftz" in rows[0][1]


@pytest.mark.slow
def test_flow_on_a_local_dask_cluster(tmp_path, wiki_docs, harness):
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:5]})
    write_shard(tmp_path / "in/1.parquet", {"text": wiki_docs[5:9] + [wiki_docs[0]]})
    inputs = [str(tmp_path / "in/*.parquet")]
    serial = run_pipeline(make_config(tmp_path / "serial", inputs), run_id="same")
    cfg = make_config(tmp_path / "dask", inputs, execution={"task_runner": "dask", "max_workers": 2})
    summary = run_curate_flow(cfg, run_id="same")
    assert summary["totals"] == serial["totals"] and summary["totals"]["docs_in"] == 10
    assert_same_run_outputs(tmp_path / "serial/out/runs/same", tmp_path / "dask/out/runs/same", reports=False)
    assert warehouse_views(tmp_path / "dask/warehouse.duckdb", "same") == warehouse_views(
        tmp_path / "serial/warehouse.duckdb", "same"
    )


def _task_log_messages(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs if log.task_run_id is not None]


def test_by_default_shard_tasks_run_in_a_pool_of_worker_processes(tmp_path, wiki_docs, harness, monkeypatch):
    """A plain run uses every core: one worker process per core, none of them the flow's own."""
    import os
    import re

    from flows.curate import task_runner_for

    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "INFO")  # the workers' shard logs name their process

    for i in range(4):
        write_shard(tmp_path / f"in/{i}.parquet", {"text": wiki_docs[i * 3 : i * 3 + 3]})
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")])
    assert cfg.execution.task_runner == "process" and cfg.execution.workers == os.cpu_count()
    state = curate_flow.with_options(task_runner=task_runner_for(cfg))(config=cfg, run_id="procs", return_state=True)
    assert state.result()["totals"]["docs_in"] == 12
    messages = _task_log_messages(state.state_details.flow_run_id)
    quality = [m for m in messages if m.startswith("quality ")]
    assert len(quality) == 4, messages
    pids = {int(re.search(r"\(process (\d+)\)", m).group(1)) for m in messages if "(process " in m}
    assert pids and os.getpid() not in pids and len(pids) <= cfg.execution.workers


def test_a_shards_consecutive_steps_run_as_one_task(tmp_path, wiki_docs, harness):
    """Between two global steps a shard's steps are one task: an orchestrated task costs more
    than most steps do. The flow still reports every step of every shard and equals the serial run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from curation.runner import ShardChain, prepare_run, run_steps, scheduled_steps
    from schemas import progress

    for i in range(2):
        write_shard(tmp_path / f"in/{i}.parquet", {"text": wiki_docs[i * 4 : i * 4 + 4] + [wiki_docs[0]]})
    inputs = [str(tmp_path / "in/*.parquet")]
    serial = run_pipeline(make_config(tmp_path / "serial", inputs), run_id="c")
    cfg = make_config(tmp_path / "flow", inputs, execution={"task_runner": "thread"})
    done: list[tuple[str, str]] = []

    class Events:
        def stage_started(self, stage, shards):
            pass

        def shard_done(self, stage, shard, docs_in, docs_out):
            done.append((stage, shard))

    progress.set_reporter(Events())
    try:
        state = curate_flow.with_options(task_runner=task_runner_for(cfg))(config=cfg, run_id="c", return_state=True)
    finally:
        progress.set_reporter(None)
    assert state.result()["totals"] == serial["totals"]
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    plan = prepare_run(make_config(tmp_path / "steps", inputs), "steps")
    scheduled = scheduled_steps(plan)
    chains = [s for s in scheduled if isinstance(s, ShardChain)]
    expected = sorted(
        [f"{chain.name}-{shard.id}" for chain in chains for shard in plan.shards]
        + [s.name for s in scheduled if not isinstance(s, ShardChain)]
    )
    assert sorted(run.name for run in task_runs) == expected
    steps = run_steps(plan)
    assert any(len(chain.steps) > 1 for chain in chains)
    assert [step for chain in chains for step in chain.steps] == [step for step in steps if step.per_shard]
    assert sorted(done) == sorted((step.name, shard.id) for step in steps if step.per_shard for shard in plan.shards)
