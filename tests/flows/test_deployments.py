"""The deployments of prefect.yaml on a real Prefect server, run by a real process worker:
`curate serve --all --no-worker` applies them with their schedules; a triggered continual-curation
run curates new shards and rebuilds the mixture, shows its artifacts, and a second run with
nothing new skips everything downstream."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_shard

from flows.deployments import local_server

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _project(tmp_path: Path, wiki_docs) -> Path:
    write_shard(tmp_path / "incoming/0.parquet", {"text": wiki_docs[:8]})
    write_shard(tmp_path / "incoming/1.parquet", {"text": wiki_docs[8:16] + [wiki_docs[0]]})
    (tmp_path / "curate.yaml").write_text(
        yaml.safe_dump(
            {
                "input": {"paths": ["incoming/*.parquet"], "skip_curated": True},
                "output": {"root": "out"},
                "warehouse": {"path": "warehouse.duckdb"},
            }
        )
    )
    (tmp_path / "mixture.yaml").write_text(
        yaml.safe_dump(
            {
                "mixture_id": "continual",
                "warehouse": "warehouse.duckdb",
                "output_root": "out",
                "target_tokens": 6000,
                "decontamination": {"enabled": False},
                "sources": [{"name": "curated", "kind": "documents", "weight": 1.0}],
            }
        )
    )
    (tmp_path / "project.yaml").write_text(yaml.safe_dump({"curate": "curate.yaml", "mix": "mixture.yaml"}))
    return tmp_path / "project.yaml"


TRIGGER = """
import sys
from prefect.deployments import run_deployment
run = run_deployment("pipeline/continual-curation", parameters={"project_path": sys.argv[1]}, timeout=0)
print(run.id)
"""


def _flow_run(env: dict, run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _wait_final(env: dict, run_id: str, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = _flow_run(env, run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(2)
    raise TimeoutError(f"flow run {run_id} not finished after {seconds} s")


def _latest_artifacts(env: dict) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        return {a.key: a for a in client.read_latest_artifacts()}


@pytest.mark.slow
def test_prefect_yaml_deployments_run_on_a_worker(tmp_path, wiki_docs):
    project = _project(tmp_path / "project", wiki_docs)
    env = {
        **{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    with local_server(env, _free_port()) as served:
        applied = subprocess.run(
            [BIN / "curate", "serve", "--all", "--no-worker"], env=served, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]

        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: served["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
            nightly = client.read_deployment_by_name("pipeline/continual-curation")
            weekly = client.read_deployment_by_name("mix/mixture-refresh")
        assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]
        assert [s.schedule.cron for s in weekly.schedules] == ["0 4 * * 0"]
        assert nightly.work_pool_name == weekly.work_pool_name == "cpt-curate"

        worker = subprocess.Popen(
            [BIN / "prefect", "worker", "start", "--pool", "cpt-curate"],
            env=served,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            runs = []
            for _ in range(2):  # the second finds nothing new
                trigger = subprocess.run(
                    [sys.executable, "-c", TRIGGER, str(project)], env=served, capture_output=True, text=True, timeout=120
                )
                assert trigger.returncode == 0, trigger.stderr[-2000:]
                runs.append(_wait_final(served, trigger.stdout.strip().splitlines()[-1], 400))
            artifacts = _latest_artifacts(served)
        finally:
            worker.terminate()
            worker.wait(timeout=30)

    assert [r.state.type.value for r in runs] == ["COMPLETED", "COMPLETED"]
    import duckdb

    con = duckdb.connect(str(project.parent / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT status, docs_in FROM runs").fetchall() == [("completed", 17)]
    assert con.execute("SELECT count(*) FROM input_files").fetchall() == [(2,)]
    assert con.execute("SELECT mixture_id, status FROM mixtures").fetchall() == [("continual", "completed")]
    assert (project.parent / "out/mixtures/continual/manifest.json").is_file()
    assert {"pipeline-steps", "curate-funnel", "curate-reasons", "mixture-shares", "report"} <= set(artifacts)
    # the latest pipeline run is the second one: nothing new, the mixture skipped
    assert "nothing new (2 files curated before)" in artifacts["pipeline-steps"].data
    assert "| mix | skipped: no new input |" in artifacts["pipeline-steps"].data
