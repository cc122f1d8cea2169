"""What every machine of a Dask cluster must see, checked before the first task.

Shard tasks run on the workers and read and write files by absolute path: the run's input shards,
its output folder (every stage's shards), the warehouse's folder (the MinHash index and scores
the run deduplicates against are read through it), the offline assets (language ID, word lists)
and the prepared models. On one machine that holds by construction; across machines they must be
on a shared filesystem mounted at the same paths. A worker that cannot see one would fail its
first task with a bare FileNotFoundError; this names the worker, the path and what it is.
Then every worker sets up the run's stages, as the driver does before the first step.
"""

from __future__ import annotations

import os
from pathlib import Path


class ClusterError(RuntimeError):
    """A Dask worker cannot see a path the run needs."""


def required_paths(plan) -> dict[str, str]:
    """Path -> what it is, for everything a shard task may read or write."""
    from scorers.assets import assets_dir
    from scorers.models import models_dir

    paths = {str(Path(plan.config.output.root).resolve()): "output.root", str(plan.run_dir.parent): "the runs folder"}
    paths[str(Path(plan.config.warehouse.path).resolve().parent)] = "the warehouse folder"
    for shard in plan.shards:
        if "://" not in shard.input_path:
            paths[shard.input_path] = f"input shard {shard.id}"
    paths[str(assets_dir())] = "the offline assets (make assets)"
    if models_dir().exists():
        paths[str(models_dir())] = "the prepared models (make models)"
    return paths


def unseen(paths: dict[str, str]) -> list[str]:
    """Run on a worker: the paths it cannot see (missing, or not readable)."""
    return [path for path in paths if not os.access(path, os.R_OK)]


def prepare_workers(client, plan) -> None:
    """Before the first shard task: every worker of the cluster must see the run's paths, then
    sets up the run's stages (models, word lists, the URL blocklist), which each process caches. A
    worker without a path, or where a model does not load, fails the run before any shard is
    touched, naming the worker; and no stage's first task on a worker pays for its set-up."""
    paths = required_paths(plan)
    missing = {worker: found for worker, found in client.run(unseen, paths).items() if found}
    if missing:
        lines = [f"  {worker}: {path} ({paths[path]})" for worker, found in sorted(missing.items()) for path in found]
        raise ClusterError(
            f"Dask workers at {client.scheduler_info()['address']} cannot see paths this run needs:\n"
            + "\n".join(lines)
            + "\nevery worker must see the inputs, output.root, the warehouse folder, assets and models at the same "
            "paths (a shared filesystem); see docs/scale.md"
        )
    client.run(set_up_stages, plan)


def set_up_stages(plan) -> None:
    """Run on a worker: set up every stage of the run once, as the driver's `setup_stages` does,
    and ready the worker's Prefect task engine (its imports and API client), which its first task
    would otherwise start while the other workers wait for that step to end."""
    from prefect.client.orchestration import get_client
    from prefect.task_engine import run_task_sync  # noqa: F401 - imported for its import time

    for name in plan.stages:
        plan.stage(name)
    with get_client(sync_client=True) as client:
        client.api_healthcheck()
