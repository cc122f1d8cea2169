"""A scheduled deployment against a real Prefect server: `curate serve`, then a run of it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import write_shard

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"Prefect server at {url} not healthy after {seconds} s")


TRIGGER = """
import sys, time
from prefect.deployments import run_deployment
deadline = time.monotonic() + 60
while True:
    try:
        run = run_deployment("curate-from-file/nightly", timeout=240)
        break
    except Exception as err:  # the serving process has not registered the deployment yet
        if time.monotonic() > deadline:
            raise
        time.sleep(1)
print(run.state.type.value)
"""


@pytest.mark.slow
def test_served_deployment_runs_the_pipeline(tmp_path, wiki_docs):
    write_shard(tmp_path / "data/0.parquet", {"text": wiki_docs[:3] + [wiki_docs[0]]})
    config = tmp_path / "curate.yaml"
    config.write_text("input:\n  paths: [data/*.parquet]\nlanguage: {enabled: false}\n")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    server = subprocess.Popen(
        [BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    served = None
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/api/health", 90)
        served = subprocess.Popen(
            [BIN / "curate", "serve", "--config", str(config), "--name", "nightly", "--cron", "0 3 * * *"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        result = subprocess.run([sys.executable, "-c", TRIGGER], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().splitlines()[-1] == "COMPLETED"
    finally:
        for process in (served, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)

    import duckdb

    con = duckdb.connect(str(tmp_path / "warehouse/curation.duckdb"), read_only=True)
    assert con.execute("SELECT status, docs_in, docs_out FROM runs").fetchall() == [("completed", 4, 3)]
