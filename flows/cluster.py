"""What every machine of a Dask cluster must see, checked before the first task.

Shard tasks run on the workers and read and write files by absolute path: the run's input shards,
its output folder (every stage's shards), the warehouse's folder (the MinHash index and scores
the run deduplicates against are read through it), the offline assets (language ID, word lists)
and the prepared models. On one machine that holds by construction; across machines they must be
on a shared filesystem mounted at the same paths. A worker that cannot see one would fail its
first task with a bare FileNotFoundError; this names the worker, the path and what it is.
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


def check_cluster_sees(plan, address: str) -> None:
    from distributed import Client

    paths = required_paths(plan)
    with Client(address, timeout=30) as client:
        missing = {worker: found for worker, found in client.run(unseen, paths).items() if found}
    if missing:
        lines = [f"  {worker}: {path} ({paths[path]})" for worker, found in sorted(missing.items()) for path in found]
        raise ClusterError(
            "Dask workers at "
            + address
            + " cannot see paths this run needs:\n"
            + "\n".join(lines)
            + "\nevery worker must see the inputs, output.root, the warehouse folder, assets and models at the same "
            "paths (a shared filesystem); see docs/scale.md"
        )
