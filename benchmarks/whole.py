"""Section 14 (`whole`): a whole curation run against datatrove's own executor doing the same
work, both on every core of the machine.

- datatrove: `LocalPipelineExecutor([ParquetReader, GopherRepetitionFilter, GopherQualityFilter,
  C4QualityFilter, FineWebQualityFilter, MinhashDedupSignature], tasks=<shards>,
  workers=<cores>)`: read, filter, sign what is kept (datatrove's stage 1 of 4 of MinHash dedup).
- ours: the curation flow (`flows.curate.run_curate_flow`) with the default task runner (a pool
  of a worker process per core), its stages configured to the same work and more:
  ingest, exact dedup, near dedup (signatures, the global plan and its apply), the same four
  filters with datatrove's alpha-words rule; language ID, toxicity, PII and the URL blocklist off
  (datatrove's side has none of them). Timed as the whole flow call: the worker processes'
  start and set-up, the stages, the report.

`ratio` = datatrove's seconds / ours. Goal: >= 3. Per stage: ours from the run's progress events
(each stage's wall time as the driver sees it), datatrove's from its stats.json (each step's
time summed over tasks, i.e. CPU-side time, not wall).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from benchmarks.children import run_child
from benchmarks.measure import chain_config
from benchmarks.probes import datatrove_reader_and_filters, timed_datatrove_run

TARGET = 3.0
CHILD_MODES = {}  # filled below


def child_datatrove_whole(spec: dict) -> dict:
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    pipeline = [
        *datatrove_reader_and_filters(spec["corpus"]),
        MinhashDedupSignature(output_folder=spec["out"], config=MinhashConfig()),
    ]
    return timed_datatrove_run(pipeline, spec["logging_dir"], tasks=spec["tasks"], workers=spec["workers"])


def _datatrove_steps(logging_dir: Path) -> dict[str, float]:
    """step name -> seconds summed over tasks, from the executor's merged stats.json."""
    path = logging_dir / "stats.json"
    if not path.exists():
        return {}
    steps = {}
    for step in json.loads(path.read_text()):
        stats = step.get("time_stats") or {}
        total = stats.get("total") if isinstance(stats, dict) else None
        if total is not None:
            steps[step.get("name", "?")] = round(float(total), 2)
    return steps


def _our_stages(result: dict) -> dict[str, float]:
    """stage -> wall seconds from the previous stage's last event to this stage's last event."""
    last: dict[str, float] = {}
    order: list[str] = []
    for t, _kind, stage in result["events"]:
        if stage not in last:
            order.append(stage)
        last[stage] = t
    walls, previous = {}, 0.0
    for stage in order:
        walls[stage] = round(last[stage] - previous, 2)
        previous = last[stage]
    return walls


def whole_run(corpus, work: Path, log=print) -> dict:
    cores = os.cpu_count() or 1
    theirs_dir = work / "whole-datatrove"
    shutil.rmtree(theirs_dir, ignore_errors=True)
    log(f"whole run: datatrove's executor, {len(corpus.files)} tasks on {cores} workers (child process)")
    theirs = run_child(
        "whole-datatrove",
        {
            "corpus": str(corpus.root),
            "out": str(theirs_dir / "signatures"),
            "logging_dir": str(theirs_dir / "logs"),
            "tasks": len(corpus.files),
            "workers": cores,
        },
        work,
        "whole-datatrove",
    )
    ours_dir = work / "whole-ours"
    shutil.rmtree(ours_dir, ignore_errors=True)
    config = chain_config(corpus.root, ours_dir, "tokens")
    config.update(exact_dedup={"enabled": True}, near_dedup={"enabled": True})
    log(f"whole run: ours, the curation flow with its default {cores} worker processes (child process)")
    ours = run_child("flow", {"config": config}, work, "whole-ours")
    return {
        "docs": corpus.docs,
        "shards": len(corpus.files),
        "cores": cores,
        "datatrove_s": round(theirs.result["seconds"], 2),
        "ours_s": round(ours.result["seconds"], 2),
        "ratio": round(theirs.result["seconds"] / ours.result["seconds"], 2),
        "target": TARGET,
        "datatrove_steps_cpu_s": _datatrove_steps(theirs_dir / "logs"),
        "ours_stages_wall_s": _our_stages(ours.result),
        "ours_kept": ours.result["summary"]["totals"]["docs_out"],
    }


CHILD_MODES["whole-datatrove"] = child_datatrove_whole
