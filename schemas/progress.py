"""Progress reporting hook: the CLI installs a reporter, stages call `report` as they work.

Stages run in worker threads under Prefect's thread runner, so the reporter must be thread-safe.
Where none is installed (tests, Dask workers in other processes) reporting is a no-op.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    # called again for a stage whose total grows as its inputs arrive: the latest total holds
    def stage_started(self, stage: str, total_shards: int) -> None: ...

    def shard_done(self, stage: str, shard: str, docs_in: int, docs_out: int) -> None: ...


_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter


def stage_started(stage: str, total_shards: int) -> None:
    if _reporter is not None:
        _reporter.stage_started(stage, total_shards)


def shard_done(stage: str, shard: str, docs_in: int, docs_out: int) -> None:
    if _reporter is not None:
        _reporter.shard_done(stage, shard, docs_in, docs_out)
