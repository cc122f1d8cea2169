"""`curate run` killed with SIGKILL at chosen points, then rerun, ends with the same bytes and the
same warehouse as a run that was never interrupted; a killed run leaves no process behind.

Each kill is a real SIGKILL of a real `curate run` process. To land it at a known point (in the
middle of a stage, inside a global plan, between writing the summary and registering the run),
the child process wraps one of the runner's functions so that the process kills itself there;
the test then checks the kill landed where it was meant to.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import assert_same_run_outputs, warehouse_views, write_shard

from benchmarks.probes import child_pids, is_prefect_server

pytestmark = pytest.mark.slow

# Runs `curate run` in this process after arranging a SIGKILL at the point named by argv[1].
CHILD = r"""
import os, signal, sys
from curation import dedup
from curation.quality import Quality
from schemas import progress
from warehouse.warehouse import Warehouse

point, argv = sys.argv[1], sys.argv[2:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "signatures":
    real_done, seen = progress.shard_done, []
    def die_on_second_shard(stage, *args):
        real_done(stage, *args)
        seen.append(stage)
        if seen.count("near_dedup_signatures") == 2:
            die()
    progress.shard_done = die_on_second_shard
elif point == "near_plan":
    real_plan = dedup.plan_near_dedup
    def plan_then_die(*args, **kwargs):
        real_plan(*args, **kwargs)  # the decisions are on disk, the step's marker is not
        die()
    dedup.plan_near_dedup = plan_then_die
elif point == "quality":
    real_process, batches = Quality.process, [0]  # counted over the shards
    def process_then_die(self, batch):
        batches[0] += 1
        if batches[0] == 5:  # shard 2's first batch: shard 1 done, shard 2's file half written
            die()
        return real_process(self, batch)
    Quality.process = process_then_die
elif point in ("before_register", "after_register"):
    real_completed = Warehouse.job_completed
    def completed_then_die(self, *args, **kwargs):
        if point == "after_register":
            real_completed(self, *args, **kwargs)
        die()
    Warehouse.job_completed = completed_then_die

from cli.main import app
app(argv)
"""


def _config(root: Path, inputs: Path) -> Path:
    data = {
        "input": {"paths": [str(inputs / "*.parquet")], "batch_size": 4},
        "output": {"root": str(root / "out")},
        "warehouse": {"path": str(root / "warehouse.duckdb")},
        "toxicity": {"enabled": False},
    }
    path = root / "curate.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _curate(config: Path, point: str | None = None) -> subprocess.CompletedProcess:
    args = ["run", str(config), "--run-id", "k", "--local"]
    cmd = (
        [sys.executable, "-c", CHILD, point, *args] if point else [sys.executable, "-c", "from cli.main import app; app()", *args]
    )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, wiki_docs) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    for i in range(3):
        docs = wiki_docs[i * 12 : i * 12 + 12] + [wiki_docs[0], "short junk line"]
        write_shard(root / f"{i}.parquet", {"text": docs})
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory, inputs) -> Path:
    root = tmp_path_factory.mktemp("clean")
    result = _curate(_config(root, inputs))
    assert result.returncode == 0, result.stderr
    return root


# point -> a file that must exist after the kill, and one that must not (the kill landed mid-work)
KILL_POINTS = {
    "signatures": ("02_near_dedup/map/shard-00001.json", "02_near_dedup/map/shard-00002.json"),
    "near_plan": ("02_near_dedup/decisions.parquet", "02_near_dedup/decisions.json"),
    "quality": ("04_quality/stats/shard-00000.json", "04_quality/stats/shard-00001.json"),
    "before_register": ("summary.json", None),
    "after_register": ("summary.json", None),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_run_killed_anywhere_resumes_to_the_same_bytes(tmp_path, inputs, clean, point):
    config = _config(tmp_path, inputs)
    killed = _curate(config, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = tmp_path / "out/runs/k"
    present, absent = KILL_POINTS[point]
    assert (run_dir / present).exists()
    if absent:
        assert not (run_dir / absent).exists()
    if point == "quality":  # the half-written shard's temporaries were left behind by the kill
        assert list(run_dir.rglob(".*.tmp-*"))

    rerun = _curate(config)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_run_outputs(clean / "out/runs/k", run_dir)
    assert warehouse_views(tmp_path / "warehouse.duckdb", "k") == warehouse_views(clean / "warehouse.duckdb", "k")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's reaping is missing


def _alive_after(pids, seconds: float) -> list[int]:
    """Wait up to `seconds` for `pids` to end; those still alive."""
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def _alive_after_killing(proc: subprocess.Popen, pids: list[int], seconds: float) -> list[int]:
    """SIGKILL the run, then wait up to `seconds` for `pids` to end; those still alive."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return _alive_after(pids, seconds)


def _run_through_prefect(config: Path, run_id: str) -> subprocess.Popen:
    """`curate run` as a user starts it (a flow on a private Prefect server), in the background."""
    return subprocess.Popen(
        [sys.executable, "-c", "from cli.main import app; app()", "run", str(config), "--run-id", run_id],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_killed_run_leaves_no_prefect_server_behind(tmp_path, inputs):
    config = _config(tmp_path, inputs)
    proc = _run_through_prefect(config, "k")
    deadline = time.monotonic() + 120
    # the run has started (so its Prefect server is up) once the run folder has its manifest
    while not (tmp_path / "out/runs/k/run.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.1)
    children = child_pids(proc.pid)
    servers = [c for c in children if b"uvicorn" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert servers, f"no Prefect server among the run's children {children}"
    assert proc.poll() is None
    assert not _alive_after_killing(proc, servers, 15), f"Prefect server {servers} outlived its run"


def test_the_temporary_server_leaves_no_prefect_worker_pointing_at_it():
    """Prefect's log and event workers outlive a flow; left holding a stopped server's address
    they block the next drain (another flow, a test harness, exit) on retries."""
    from prefect import flow
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    from flows.server import prefect_api

    @flow
    def noisy() -> int:
        from prefect import get_run_logger

        get_run_logger().warning("a log line for the API log worker")
        return 1

    with prefect_api():
        assert noisy() == 1
        assert EventsWorker._instances or APILogWorker._instances  # the flow did start workers
    assert not EventsWorker._instances and not APILogWorker._instances


def test_a_killed_run_leaves_no_worker_process_behind(tmp_path, inputs):
    """A plain run's shard tasks run in a pool of worker processes; killing the run must not leave
    them running (writing into a run folder a rerun owns, holding memory)."""
    config = _config(tmp_path, inputs)
    proc = _run_through_prefect(config, "w")
    deadline = time.monotonic() + 180
    workers: list[int] = []
    while not workers:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its workers started"
        workers = [c for c in child_pids(proc.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        time.sleep(0.1)
    assert not _alive_after_killing(proc, workers, 30), f"worker processes {workers} outlived their run"


def test_a_run_through_prefect_reports_to_one_server_and_leaves_none(tmp_path, inputs):
    """The run's own Prefect server is the only one: a thread of the process pool once found no
    API in Prefect's global settings and started a temporary server of Prefect's own (its
    workers' events went there), which could outlive the run."""
    config = _config(tmp_path, inputs)
    proc = _run_through_prefect(config, "one")
    deadline = time.monotonic() + 300
    seen: set[int] = set()
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not finish"
        seen |= {child for child in child_pids(proc.pid) if is_prefect_server(child)}
        time.sleep(0.05)
    assert proc.returncode == 0
    assert (tmp_path / "out/runs/one/summary.json").exists()
    assert len(seen) == 1, f"the run started {len(seen)} Prefect servers: {sorted(seen)}"
    assert not _alive_after(seen, 15), "a Prefect server outlived its run"
