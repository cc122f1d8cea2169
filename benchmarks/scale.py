"""Section 11: scale-out through Prefect and Dask.

* Scaling: the whole curation flow (every stage, the stages section's config) on a local Dask
  cluster of 1 and of 2 worker processes, each in its own child process, over 4 times the
  benchmark's corpus (same shard size). Measured: the stages'
  wall time, from the first step's start to the last shard's completion, as the driver sees them
  (cluster start-up and the report left out). Ratio = 1-worker time / 2-worker time; target >= 1.7
  on 2 cores. Agreement: the two runs' curated and rejected shards compared byte for byte.
* Prefect overhead per task: ingest alone (every other stage off, so a task reads and writes a
  tiny shard) over many shards, through the flow (thread runner, one worker) and through the
  serial runner without Prefect. Overhead per task = (flow time - serial time) / tasks.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchmarks.children import run_child
from benchmarks.corpus import generate_corpus
from benchmarks.measure import _ratio, full_pipeline_config
from benchmarks.probes import EventRecorder, TreeRssSampler

SCALING_TARGET = 1.7
SCALE_CORPUS = 4
OVERHEAD_SHARDS, OVERHEAD_SHARD_DOCS = 48, 5


def child_flow(spec: dict) -> dict:
    """`run_curate_flow` on spec["config"] under a private Prefect server; the events' times and
    the peak memory of the run's processes (this one and its workers, the server apart)."""
    from datatrove.utils.text import split_into_words

    from flows.curate import run_curate_flow
    from flows.server import prefect_api
    from schemas import progress
    from schemas.config import config_from_dict

    cfg = config_from_dict(spec["config"], source="benchmark")
    split_into_words("Warm up the word tokenizer before timing anything.", "eng")
    recorder = EventRecorder()
    progress.set_reporter(recorder)
    with prefect_api(), TreeRssSampler() as rss:
        started = time.perf_counter()
        try:
            summary = run_curate_flow(cfg, run_id="bench")
        finally:
            progress.set_reporter(None)
        seconds = time.perf_counter() - started
    return {
        "summary": summary,
        "seconds": seconds,
        "events": [(t - started, kind, stage) for t, kind, stage in recorder.events],
        "peak_tree_rss_kb": rss.peak_kb,
        "server_peak_rss_kb": rss.server_peak_kb,
    }


CHILD_MODES = {"flow": child_flow}


def _stages_seconds(result: dict) -> float:
    """From the first step's start to the last shard's completion."""
    events = result["events"]
    starts = [t for t, kind, _ in events if kind == "stage_started"]
    return max(t for t, _, _ in events) - min(starts)


def _same_shards(run_a: Path, run_b: Path) -> dict:
    files = sorted(p.relative_to(run_a) for p in run_a.rglob("*.parquet") if "/curated/" in str(p) or "/rejected/" in str(p))
    other = sorted(p.relative_to(run_b) for p in run_b.rglob("*.parquet") if "/curated/" in str(p) or "/rejected/" in str(p))
    differing = [str(f) for f in files if f not in other or (run_a / f).read_bytes() != (run_b / f).read_bytes()]
    return {"shards_compared": len(files), "differing": differing, "identical": files == other and not differing}


def scaling(corpus_dir: Path, work: Path, log=print) -> dict:
    runs = {}
    for workers in (1, 2):
        name = f"scale-dask-{workers}"
        shutil.rmtree(work / name, ignore_errors=True)  # a kept work dir's completed run would be reused
        config = full_pipeline_config(corpus_dir, work / name)
        config["execution"] = {"task_runner": "dask", "max_workers": workers}
        log(f"scale: the whole flow on a local Dask cluster of {workers} worker(s) (child process)")
        child = run_child("flow", {"config": config}, work, name)
        runs[str(workers)] = {
            "stages_s": round(_stages_seconds(child.result), 3),
            "flow_s": round(child.result["seconds"], 3),
            "docs_in": child.result["summary"]["totals"]["docs_in"],
        }
    agreement = _same_shards(work / "scale-dask-1" / "runs" / "bench", work / "scale-dask-2" / "runs" / "bench")
    return {
        "workers": runs,
        "ratio": _ratio(runs["1"]["stages_s"], runs["2"]["stages_s"]),
        "target": SCALING_TARGET,
        "agreement": agreement,
    }


def prefect_overhead(work: Path, seed: int, log=print) -> dict:
    corpus = generate_corpus(work / "overhead-corpus", OVERHEAD_SHARDS * OVERHEAD_SHARD_DOCS, OVERHEAD_SHARD_DOCS, seed)
    results = {}
    for mode in ("pipeline", "flow"):
        name = f"overhead-{mode}"
        shutil.rmtree(work / name, ignore_errors=True)
        config = full_pipeline_config(corpus.root, work / name)
        config.update(
            {stage: {"enabled": False} for stage in ("exact_dedup", "near_dedup", "language", "quality", "toxicity", "pii")}
        )
        config["execution"] = {"task_runner": "thread", "max_workers": 1}
        log(f"scale: ingest alone over {len(corpus.files)} shards, {'through the flow' if mode == 'flow' else 'serial runner'}")
        child = run_child(mode, {"config": config}, work, name)
        results[mode] = round(_stages_seconds(child.result), 3)
    tasks = len(corpus.files)
    return {
        "shards": tasks,
        "serial_s": results["pipeline"],
        "flow_s": results["flow"],
        "overhead_ms_per_task": round(1000 * (results["flow"] - results["pipeline"]) / tasks, 1),
    }


def scale_benchmark(docs: int, shard_docs: int, work: Path, seed: int, log=print) -> dict:
    """Scaling on SCALE_CORPUS times the benchmark's corpus, in shards of the same size: at the
    default size a run is ~35 s on one worker, and the steps' fixed costs (a barrier after every
    step, the first task of each worker) would be much of what is measured."""
    corpus = generate_corpus(work / f"scale-corpus-{docs * SCALE_CORPUS}", docs * SCALE_CORPUS, shard_docs, seed)
    result = {"scaling": scaling(corpus.root, work, log), "prefect_overhead": prefect_overhead(work, seed, log)}
    result["scaling"]["shards"] = len(corpus.files)
    return result
