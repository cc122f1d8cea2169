"""A temporary Prefect API server whose life is tied to this process.

With no `PREFECT_API_URL`, Prefect starts a temporary server of its own in a child process and
stops it at exit; a process killed with SIGKILL never reaches that, and the server (~300 MB and a
port) is orphaned. We start the same server (Prefect's ASGI app under uvicorn, UI off) ourselves,
with the kernel's parent-death signal set in the child, so it dies with the process whatever
kills it. With `PREFECT_API_URL` set (a real server, deployments, `curate serve`) nothing is
started.

The parent-death signal fires when the thread that started the child exits: start it from the
thread that outlives the work (the CLI's main thread).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

# Runs in the child before it becomes the server: ask the kernel for SIGKILL when the parent dies,
# then make sure the parent did not die before the request was in place.
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float) -> None:
    """Wait for the Prefect server `proc` to answer on `url`; an error if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Prefect server at {url} exited with code {proc.returncode} before it was ready")
            try:
                if client.get(f"{url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"the Prefect server at {url} was not ready within {timeout_s:.0f} s")


def _drain_prefect_workers(timeout_s: float = 15.0) -> None:
    """Send the logs and events Prefect's background workers still hold while their server is up:
    a worker left pointing at a stopped server blocks the next drain (another flow, a test
    harness, interpreter exit) on retries."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout_s)
    EventsWorker.drain_all(timeout=timeout_s)


def _point_process_at(url: str | None) -> None:
    """Make `url` the API of every thread of this process and of the processes it starts (`None`:
    no API). A settings context covers only the thread that entered it; Prefect's own threads
    (the process pool's forwarder of its workers' logs and events, say) read the global
    settings, made from the environment when Prefect was imported, and a thread that found no
    API there would start a temporary server of Prefect's own, send it the workers' events,
    and could leave it running after the process exits."""
    from prefect.context import refresh_global_settings_context

    if url is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()


def configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


@contextmanager
def prefect_api(timeout_s: float = 60.0) -> Iterator[str]:
    """Yield the API URL flows in this process (and Dask workers it starts) report to."""
    configured = configured_api_url()
    if configured:
        yield configured
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    server = [
        "-m",
        "uvicorn",
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *server], env=env)
    previous = os.environ.get("PREFECT_API_URL")
    try:
        wait_healthy(proc, url, timeout_s)
        _point_process_at(url)
        # Heartbeats let a lasting server mark a flow whose process died as crashed; this one
        # dies with the flow's process. Prefect's heartbeat thread sleeps in whole seconds, and
        # a flow's end waits for it: up to a second of every run for nothing.
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield url
    finally:
        _drain_prefect_workers()
        _point_process_at(previous)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
