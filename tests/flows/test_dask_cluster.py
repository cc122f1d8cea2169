"""The curation flow on a real Dask cluster (`dask scheduler` and two `dask worker` processes
started here, on 127.0.0.1): the same bytes as the serial runner, progress reported from the
driver, a worker killed while it works is survived without duplicated or missing outputs, and a
worker that cannot see the run's paths is a clear error before any shard task."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import assert_same_run_outputs, make_config, warehouse_views, write_shard
from prefect.testing.utilities import prefect_test_harness

from curation.runner import run_pipeline
from flows.curate import run_curate_flow

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=60):
        yield


class Cluster:
    def __init__(self, root: Path, workers: int, hide: Path | None = None):
        from prefect.settings import PREFECT_API_URL

        self.address = f"tcp://127.0.0.1:{_free_port()}"
        # tasks on the workers report to the same Prefect API as the flow
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "DO_NOT_TRACK": "1"}
        port = self.address.rsplit(":", 1)[1]
        self.scheduler = subprocess.Popen(
            [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", port, "--dashboard-address", ":0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # a worker in its own mount namespace with an empty tmpfs over `hide`: like a machine
        # without the shared filesystem, it cannot see what is there
        prefix = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs none "{hide}" && exec "$0" "$@"'] if hide else []
        local = root / "dask-local"
        local.mkdir(parents=True, exist_ok=True)
        local.chmod(0o777)
        self.workers = [
            subprocess.Popen(
                [
                    *prefix,
                    BIN / "dask",
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--dashboard-address",
                    ":0",
                    "--local-directory",
                    str(local),
                ],
                env={**env, "HOME": str(local)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        self.client = self._connect(workers)

    def _connect(self, workers: int):
        from distributed import Client

        client = Client(self.address, timeout=60)
        client.wait_for_workers(workers, timeout=90)
        return client

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def close(self):
        self.client.close()
        for process in [*self.workers, self.scheduler]:
            process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _inputs(tmp_path: Path, wiki_docs, shards: int, per_shard: int) -> list[str]:
    for i in range(shards):
        docs = wiki_docs[i * per_shard : (i + 1) * per_shard] + [wiki_docs[0]]
        write_shard(tmp_path / f"in/{i}.parquet", {"text": docs})
    return [str(tmp_path / "in/*.parquet")]


class Events:
    def __init__(self):
        self.done: list[tuple[str, str]] = []

    def stage_started(self, stage, total_shards):
        pass

    def shard_done(self, stage, shard, docs_in, docs_out):
        self.done.append((stage, shard))


@pytest.mark.slow
def test_flow_on_a_running_cluster_equals_the_serial_run_and_reports_progress(tmp_path, wiki_docs, harness):
    from curation.runner import prepare_run, run_steps
    from schemas import progress

    inputs = _inputs(tmp_path, wiki_docs, shards=3, per_shard=6)
    serial = run_pipeline(make_config(tmp_path / "serial", inputs), run_id="c")
    cluster = Cluster(tmp_path, workers=2)
    events = Events()
    progress.set_reporter(events)
    try:
        cfg = make_config(tmp_path / "dask", inputs, execution={"task_runner": "dask", "dask_address": cluster.address})
        summary = run_curate_flow(cfg, run_id="c")
        # both workers took shard tasks: the work was distributed, not run by one
        ran_on = {w for w, tasks in cluster.client.run(lambda dask_worker: dask_worker.state.executed_count).items() if tasks}
    finally:
        progress.set_reporter(None)
        cluster.close()
    assert summary["totals"] == serial["totals"]
    assert_same_run_outputs(tmp_path / "serial/out/runs/c", tmp_path / "dask/out/runs/c", reports=False)
    assert warehouse_views(tmp_path / "dask/warehouse.duckdb", "c") == warehouse_views(tmp_path / "serial/warehouse.duckdb", "c")
    assert len(ran_on) == 2
    # the driver reported every shard of every per-shard step (the workers' own reports go nowhere)
    plan = prepare_run(make_config(tmp_path / "steps", inputs), "steps")  # the steps and shards of such a run
    expected = sorted((step.name, shard.id) for step in run_steps(plan) if step.per_shard for shard in plan.shards)
    assert sorted(events.done) == expected


@pytest.mark.slow
def test_a_worker_killed_while_it_works_is_survived_with_the_same_outputs(tmp_path, wiki_docs, harness):
    inputs = _inputs(tmp_path, wiki_docs, shards=6, per_shard=12)
    serial = run_pipeline(make_config(tmp_path / "serial", inputs), run_id="k")
    cluster = Cluster(tmp_path, workers=2)
    outcome: dict = {}

    def run():
        try:
            cfg = make_config(tmp_path / "dask", inputs, execution={"task_runner": "dask", "dask_address": cluster.address})
            outcome["summary"] = run_curate_flow(cfg, run_id="k")
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = err

    flow = threading.Thread(target=run)
    try:
        flow.start()
        killed = None
        deadline = time.monotonic() + 120
        quality_done = tmp_path / "dask/out/runs/k"
        while killed is None and time.monotonic() < deadline and flow.is_alive():
            # mid-way through the quality stage (the slowest): some of its shards done, not all,
            # and a worker holding a task
            done = len(list(quality_done.glob("*_quality/stats/*.json")))
            busy = {w: keys for w, keys in cluster.client.processing().items() if keys}
            if 1 <= done < 6 and busy:
                address = sorted(busy)[0]
                os.kill(cluster.worker_pids()[address], signal.SIGKILL)
                killed = (address, done)
            time.sleep(0.02)
        flow.join(timeout=400)
        workers_after = set(cluster.client.scheduler_info()["workers"])
    finally:
        cluster.close()
    assert killed is not None, "no worker was caught working on a quality task"
    assert "error" not in outcome, outcome.get("error")
    assert (tmp_path / "dask/out/runs/k/summary.json").is_file()
    # the killed worker is gone (its nanny started a fresh one, at another address)
    assert killed[0] not in workers_after
    assert outcome["summary"]["totals"] == serial["totals"]
    # every output once, byte for byte what the serial run wrote; no partial file left behind
    assert_same_run_outputs(tmp_path / "serial/out/runs/k", tmp_path / "dask/out/runs/k", reports=False)


def _can_hide_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_hide_mounts(), reason="needs unshare -m and mount (root) to hide a folder from one process")
def test_a_worker_that_cannot_see_the_run_s_paths_fails_the_run_naming_them(tmp_path, wiki_docs, harness):
    """A worker that does not see the test's folder (an empty tmpfs over it, in the worker's own
    mount namespace), as a worker on a machine without the shared filesystem would not."""
    inputs = _inputs(tmp_path, wiki_docs, shards=2, per_shard=3)
    cluster = Cluster(tmp_path.parent / f"{tmp_path.name}-worker", workers=1, hide=tmp_path)
    try:
        cfg = make_config(tmp_path / "dask", inputs, execution={"task_runner": "dask", "dask_address": cluster.address})
        with pytest.raises(Exception, match="cannot see paths this run needs") as raised:
            run_curate_flow(cfg, run_id="blind")
    finally:
        cluster.close()
    message = str(raised.value)
    assert "input shard shard-00000" in message and "output.root" in message and str(tmp_path / "in/0.parquet") in message
    from warehouse.warehouse import Warehouse

    _, rows = Warehouse(cfg.warehouse.path).query("SELECT status, error FROM runs")
    assert rows[0][0] == "failed" and "cannot see paths" in rows[0][1]
    # no shard task ran: no stage wrote anything
    assert not list((tmp_path / "dask/out/runs/blind").glob("0*_*/curated/*.parquet"))
