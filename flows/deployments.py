"""The deployments in `prefect.yaml`, applied the Prefect way, and a worker to run them.

`serve_all` is what `make serve` and `curate serve --all` run: a Prefect server on 127.0.0.1
(started here unless PREFECT_API_URL names one, and stopped when this returns), the process work
pool, `prefect deploy --all` from the project folder (so the worker loads the flows from there),
then a worker in the foreground. Each step is Prefect's own command line, so the same steps work
by hand against any server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.server import wait_healthy

POOL = "cpt-curate"
DEFAULT_PORT = 4200


class DeploymentError(RuntimeError):
    """A step of applying the deployments failed; the message holds Prefect's own output."""


def prefect_command(args: list[str], env: dict, cwd: Path | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise DeploymentError(
            f"`prefect {' '.join(args)}` failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
        )
    return result.stdout


def apply_deployments(project_root: Path, env: dict) -> str:
    """Create (or update) the process work pool and apply every deployment in prefect.yaml."""
    if not (project_root / "prefect.yaml").is_file():
        raise DeploymentError(f"no prefect.yaml in {project_root}")
    prefect_command(["work-pool", "create", POOL, "--type", "process", "--overwrite"], env)
    return prefect_command(["deploy", "--all"], env, cwd=project_root)


@contextmanager
def local_server(env: dict, port: int = DEFAULT_PORT, timeout_s: float = 120) -> Iterator[dict]:
    """Yield the environment children use: PREFECT_API_URL as given, or that of a Prefect server
    (UI included) started here on 127.0.0.1 and stopped on exit."""
    if env.get("PREFECT_API_URL"):
        yield env
        return
    url = f"http://127.0.0.1:{port}/api"
    served = {**env, "PREFECT_API_URL": url}
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=served
    )
    try:
        wait_healthy(server, url, timeout_s)
        yield served
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def serve_all(project_root: Path, *, worker: bool = True, port: int = DEFAULT_PORT, log=print) -> None:
    env = dict(os.environ)
    with local_server(env, port) as served:
        log(f"Prefect API: {served['PREFECT_API_URL']}")
        apply_deployments(project_root, served)
        log(f"deployments from {project_root / 'prefect.yaml'} applied to work pool {POOL}")
        if worker:
            log(f"starting a worker of {POOL} (Ctrl-C stops it{' and the server' if not env.get('PREFECT_API_URL') else ''})")
            subprocess.run([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL], env=served, cwd=project_root)
