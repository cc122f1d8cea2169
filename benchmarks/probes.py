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
