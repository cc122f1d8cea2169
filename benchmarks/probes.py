"""What a benchmark child measures about itself: /proc status fields and timestamped progress
events. Its own module so that child.py and the section modules child.py dispatches to share it."""

from __future__ import annotations

import time
from pathlib import Path


def proc_status_kb(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM); None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class EventRecorder:
    """A progress reporter (schemas.progress) that timestamps every stage start and shard end."""

    def __init__(self):
        self.events: list[tuple[float, str, str]] = []

    def stage_started(self, stage: str, total_shards: int) -> None:
        self.events.append((time.perf_counter(), "stage_started", stage))

    def shard_done(self, stage: str, shard: str, docs_in: int, docs_out: int) -> None:
        self.events.append((time.perf_counter(), "shard_done", stage))


def warm_up_tokenizer() -> None:
    from datatrove.utils.text import split_into_words

    split_into_words("Warm up the word tokenizer before timing anything.", "eng")


def timed_datatrove_run(pipeline: list, logging_dir: str, tasks: int = 1, workers: int = 1) -> dict:
    """datatrove's `LocalPipelineExecutor` over `pipeline` (one core unless told), timed after the warm-up."""
    from datatrove.executor import LocalPipelineExecutor

    executor = LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logging_dir)
    warm_up_tokenizer()
    started = time.perf_counter()
    executor.run()
    return {"seconds": time.perf_counter() - started, "vmhwm_kb": proc_status_kb("VmHWM")}


def datatrove_reader_and_filters(corpus: str) -> list:
    """datatrove's Parquet reader over `corpus` and its four heuristic filters at their default
    parameters, in the order the pipeline runs them: the reference both comparisons run."""
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import ParquetReader

    return [
        ParquetReader(corpus, glob_pattern="*.parquet"),
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(),
        FineWebQualityFilter(),
    ]
