"""Starting a benchmark child process and reading back its result and its own peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


class ChildFailed(RuntimeError):
    pass


@dataclass
class ChildResult:
    result: dict
    maxrss_kb: int  # the child's peak resident set size, from wait4's rusage for that child alone
    wall_seconds: float  # interpreter start to exit, imports included


def run_child(mode: str, spec: dict, work: Path, name: str, timeout: float = 1800) -> ChildResult:
    """Run `python -m benchmarks.child MODE` in a fresh interpreter and wait for it with wait4.

    wait4 returns the rusage of that one child (and its own children), so each measurement gets
    its own peak RSS, unlike getrusage(RUSAGE_CHILDREN), which keeps the maximum over every child
    the benchmark ever waited for.
    """
    work.mkdir(parents=True, exist_ok=True)
    spec_path, result_path, log_path = work / f"{name}.spec.json", work / f"{name}.result.json", work / f"{name}.log"
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", mode, str(spec_path), str(result_path)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-4000:]
        raise ChildFailed(f"benchmark child {name} ({mode}) exited with {proc.returncode}; log {log_path}:\n{tail}")
    return ChildResult(result=json.loads(result_path.read_text()), maxrss_kb=usage.ru_maxrss, wall_seconds=wall)
