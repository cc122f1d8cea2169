"""What a benchmark child measures about itself: /proc status fields and timestamped progress
events. Its own module so that child.py and the section modules child.py dispatches to share it."""

from __future__ import annotations

import contextlib
import os
import threading
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


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that still run; none once it has ended. A thread that ends
    while its children are read is passed over."""
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def is_prefect_server(pid: int) -> bool:
    try:
        return b"prefect.server.api.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class TreeRssSampler:
    """Peak of the summed RSS of this process and its descendants (a run's driver and its worker
    processes), sampled every `interval` seconds by a thread; a Prefect server among them is
    kept apart (its own peak). Sampling can miss a spike shorter than the interval; each
    process's VmHWM is not enough, as the workers' peaks need not coincide."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_kb = 0
        self.server_peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total, pending = 0, [os.getpid()]
            while pending:
                pid = pending.pop()
                pending += child_pids(pid)
                if is_prefect_server(pid):
                    self.server_peak_kb = max(self.server_peak_kb, _rss_kb(pid))
                else:
                    total += _rss_kb(pid)
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


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
