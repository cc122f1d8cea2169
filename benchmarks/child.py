"""What the benchmark runs in child processes, one measurement per fresh interpreter.

`python -m benchmarks.child MODE SPEC.json RESULT.json`, MODE being

* ``pipeline``: our runner's `run_pipeline` on `spec["config"]` (a dict for `config_from_dict`);
  the result holds the run summary, the time of every progress event and the process's memory;
* ``datatrove``: datatrove's own LocalPipelineExecutor over `spec["corpus"]` with the four
  heuristic filters at their default parameters, writing the kept documents to `spec["out"]`;
* ``mix-tokenize``, ``mix``, ``mix-export``: the mixture section's bare tokenizer, one `mix(spec)`
  and the trainer exports (benchmarks/mixture.py);
* ``flow``: the curation flow through Prefect (benchmarks/scale.py);
* ``minhash-datatrove``, ``minhash-ours``, ``near-plan``: MinHash signatures on each side and the
  near-dedup plan (benchmarks/near_dedup.py);
* ``whole-datatrove``: datatrove's executor on every core for the whole-run comparison
  (benchmarks/whole.py).

Each child warms up the spaCy word tokenizer (datatrove loads it lazily on the first split) before
the timed part, so neither side is charged for that one-off load. A fresh interpreter per
measurement keeps one measurement's caches and memory out of the next.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks.probes import EventRecorder, datatrove_reader_and_filters, proc_status_kb, timed_datatrove_run, warm_up_tokenizer


def run_ours(spec: dict) -> dict:
    from curation.runner import run_pipeline
    from schemas import progress
    from schemas.config import config_from_dict

    cfg = config_from_dict(spec["config"], source="benchmark")
    warm_up_tokenizer()
    rss_before = proc_status_kb("VmRSS")
    recorder = EventRecorder()
    progress.set_reporter(recorder)
    started = time.perf_counter()
    try:
        summary = run_pipeline(cfg, run_id=spec.get("run_id", "bench"))
    finally:
        progress.set_reporter(None)
    ended = time.perf_counter()
    return {
        "summary": summary,
        "seconds": ended - started,
        "events": [(t - started, kind, stage) for t, kind, stage in recorder.events],
        "rss_before_run_kb": rss_before,
        "vmhwm_kb": proc_status_kb("VmHWM"),
    }


def run_datatrove(spec: dict) -> dict:
    import pyarrow as pa
    from datatrove.pipeline.writers import ParquetWriter

    # what datatrove's default writer adapter produces for these shards (text, id, metadata)
    schema = pa.schema(
        [
            pa.field("text", pa.string()),
            pa.field("id", pa.string()),
            pa.field("metadata", pa.struct([pa.field("url", pa.string()), pa.field("file_path", pa.string())])),
        ]
    )
    pipeline = [*datatrove_reader_and_filters(spec["corpus"]), ParquetWriter(spec["out"], schema=schema)]
    return timed_datatrove_run(pipeline, spec["logging_dir"])


def main(argv: list[str]) -> int:
    mode, spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text())
    if mode.startswith("mix"):
        from benchmarks.mixture import CHILD_MODES

        run = CHILD_MODES[mode]
    elif mode == "whole-datatrove":
        from benchmarks.whole import CHILD_MODES

        run = CHILD_MODES[mode]
    elif mode in ("minhash-datatrove", "minhash-ours", "near-plan"):
        from benchmarks.near_dedup import CHILD_MODES

        run = CHILD_MODES[mode]
    elif mode == "flow":
        from benchmarks.scale import CHILD_MODES

        run = CHILD_MODES[mode]
    else:
        run = {"pipeline": run_ours, "datatrove": run_datatrove}[mode]
    result = run(spec)
    Path(result_path).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
