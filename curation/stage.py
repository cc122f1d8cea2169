"""The stage contract: what every step of the curation funnel is, and the stats that add up.

A stage is a class with a `name`, the `config_section` of the run config that holds its settings
(and its `enabled` switch), a `setup` that loads its models and lists, and `process`, which turns
one batch of curated rows into (kept, rejected). The runner does everything else, once for every
stage: it streams a shard's batches through `process`, writes both outputs atomically, checks that
documents in = kept + rejected, counts reasons and bytes, and writes the stats file last as the
shard's completion marker. A stage never writes its shard outputs itself, so it cannot lose a row.

Two shapes cover every stage:
- `DocumentStage`: a subclass writes only `check(row)`, which keeps the row (possibly annotating it
  in place) or returns a `Rejection`; datatrove's `BaseFilter.filter` is the model.
- `GlobalStage`: a decision that needs the whole run (deduplication, score thresholds) comes in
  three parts: an optional per-shard `map` (keys of every document), one `plan` over every map
  output and the warehouse, and the per-shard `process` that applies the plan.

`setup` runs in the driver before any step (a missing model fails the run before a shard is
touched) and again in each worker; what it loads is cached per process by the scorers it calls.
One instance serves one shard at a time (the runner makes one per shard task), so `begin_shard` may
keep per-shard state on `self`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa

from schemas import progress
from schemas.documents import CURATED_DOCUMENT, REJECTED_DOCUMENT
from warehouse.files import write_json_atomic
from warehouse.shards import ShardWriter, iter_parquet_batches, text_bytes

if TYPE_CHECKING:
    from schemas.config import RunConfig
    from warehouse.warehouse import Warehouse


class AccountingError(RuntimeError):
    """Documents went missing or appeared from nowhere: the run must stop."""


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class ShardContext:
    """Where a stage is working: the run, the shard, and the stage's own folder in the run."""

    run_id: str
    shard_id: str
    input_path: str
    stage_dir: Path

    @property
    def map_output(self) -> Path:
        return self.stage_dir / "map" / f"{self.shard_id}.parquet"


@dataclass(frozen=True)
class PlanContext:
    """What a global stage's plan reads: the run's map outputs or the previous stage's curated
    shards (in shard order), and the warehouse of earlier runs."""

    run_id: str
    stage_dir: Path
    map_outputs: list[Path]
    previous_curated: list[Path]
    warehouse: Warehouse


@dataclass(frozen=True)
class FinishContext:
    """What a stage may add when the run is finalised: the run's final curated shards (after the
    last stage) and the stage's own folder and map outputs."""

    run_id: str
    run_dir: Path
    stage_dir: Path
    map_outputs: list[Path]
    final_curated: list[Path]
    shard_ids: list[str]


class Stage:
    name: ClassVar[str]
    config_section: ClassVar[str | None] = None  # RunConfig field with the settings; None: always on
    reads_input: ClassVar[bool] = False  # the first stage reads the input file, not a previous stage

    def __init__(self, run_config: RunConfig):
        self.run_config = run_config

    @property
    def config(self):
        return getattr(self.run_config, self.config_section) if self.config_section else None

    @classmethod
    def enabled(cls, run_config: RunConfig) -> bool:
        section = getattr(run_config, cls.config_section) if cls.config_section else None
        return getattr(section, "enabled", True)

    def setup(self) -> None:
        """Load models and lists; raise if one is missing or broken."""

    def begin_shard(self, ctx: ShardContext) -> None:
        """Read what this shard needs before its first batch (a global stage's decisions)."""

    def batches(self, previous_curated: Path | None) -> Iterator[pa.Table]:
        """The shard's rows: by default the previous stage's curated output, streamed."""
        return iter_parquet_batches(previous_curated, self.run_config.input.batch_size)

    def process(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        raise NotImplementedError

    def shard_extra(self) -> dict:
        """Stage-specific numbers for this shard's stats (a threshold used, rows declared)."""
        return {}

    def run_files(self, ctx: FinishContext) -> dict[str, list[str]]:
        """Files this stage registers with the run in the warehouse, by kind (a view's name)."""
        return {}

    def run_summary(self, ctx: FinishContext) -> dict:
        """What this stage adds to the run's summary."""
        return {}


class DocumentStage(Stage):
    """A stage that judges one document at a time."""

    def check(self, row: dict) -> Rejection | None:
        raise NotImplementedError

    def process(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = batch.to_pylist()
        return split_rows(rows, [self.check(row) for row in rows], self.name)


class GlobalStage(Stage):
    """A stage whose decision needs the whole run: map (optional), plan, then per-shard apply."""

    map_schema: ClassVar[pa.Schema | None] = None  # None: the plan reads the previous stage's output
    map_step: ClassVar[str | None] = None  # the map step's name, if not "<name>_map"

    def map(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError

    def plan(self, ctx: PlanContext) -> dict:
        """Decide for the whole run; write any decision files into `ctx.stage_dir` and return a
        JSON-able summary (kept as `decisions.json` with the time it took)."""
        raise NotImplementedError


def split_rows(rows: list[dict], verdicts: Iterable[Rejection | None], stage: str) -> tuple[pa.Table, pa.Table]:
    kept, rejected = [], []
    for row, verdict in zip(rows, verdicts, strict=True):
        if verdict is None:
            kept.append(row)
        else:
            rejected.append(
                {**row, "stage": stage, "reason": verdict.reason, "detail": verdict.detail, "duplicate_of": verdict.duplicate_of}
            )
    return (
        pa.Table.from_pylist(kept, schema=CURATED_DOCUMENT),
        pa.Table.from_pylist(rejected, schema=REJECTED_DOCUMENT),
    )


# ---------------------------------------------------------------- stats


@dataclass
class StageStats:
    """Counts of one stage over some shards; stats of shards add up to the stage's, and the
    stages' to the run's funnel."""

    docs_in: int = 0
    docs_out: int = 0
    docs_rejected: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    bytes_rejected: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    extra: dict = field(default_factory=dict)  # per shard; not summed

    COUNTS: ClassVar[tuple[str, ...]] = ("docs_in", "docs_out", "docs_rejected", "bytes_in", "bytes_out", "bytes_rejected")

    def __post_init__(self) -> None:
        self.reasons = Counter(self.reasons)

    def __add__(self, other: StageStats) -> StageStats:
        return StageStats(
            **{k: getattr(self, k) + getattr(other, k) for k in self.COUNTS},
            seconds=self.seconds + other.seconds,
            reasons=self.reasons + other.reasons,
        )

    def balances(self) -> bool:
        return self.docs_in == self.docs_out + self.docs_rejected

    def record(self, run_id: str, stage: str, shard: str) -> dict:
        """The stats file of one (stage, shard), and its row of the warehouse `stage_stats`."""
        return {
            "run_id": run_id,
            "stage": stage,
            "shard": shard,
            **{k: getattr(self, k) for k in self.COUNTS},
            "seconds": round(self.seconds, 4),
            "reasons": json.dumps(dict(sorted(self.reasons.items()))),
            "extra": json.dumps(self.extra, sort_keys=True),
        }

    @classmethod
    def from_record(cls, record: dict) -> StageStats:
        return cls(
            **{k: record[k] for k in cls.COUNTS},
            seconds=record["seconds"],
            reasons=Counter(json.loads(record["reasons"])),
            extra=json.loads(record["extra"]),
        )

    def funnel_row(self, stage: str) -> dict:
        return {
            "stage": stage,
            **{k: getattr(self, k) for k in self.COUNTS},
            "seconds": round(self.seconds, 3),
            "reasons": dict(self.reasons.most_common()),
        }


# ---------------------------------------------------------------- running a stage over a shard


@dataclass(frozen=True)
class StagePaths:
    curated: Path
    rejected: Path
    stats: Path

    @classmethod
    def for_shard(cls, stage_dir: Path, shard: str) -> StagePaths:
        return cls(
            curated=stage_dir / "curated" / f"{shard}.parquet",
            rejected=stage_dir / "rejected" / f"{shard}.parquet",
            stats=stage_dir / "stats" / f"{shard}.json",
        )

    def done(self) -> bool:
        return self.stats.exists()


def process_shard(
    *,
    stage: str,
    shard: str,
    run_id: str,
    batches: Iterable[pa.Table],
    process,
    paths: StagePaths,
    extra: dict | None = None,
    extra_seconds: float = 0.0,
) -> dict:
    """Stream a shard through `process` (a batch -> (kept, rejected) function). `extra_seconds` is
    this shard's share of work the stage did outside this call (signatures, global planning), so
    that stats show the stage's real cost. `extra` may be a callable, asked once the shard is done."""
    started = time.perf_counter()
    stats = StageStats()
    with ShardWriter(paths.curated, CURATED_DOCUMENT) as kept_out, ShardWriter(paths.rejected, REJECTED_DOCUMENT) as rejected_out:
        for batch in batches:
            kept, rejected = process(batch)
            if kept.num_rows + rejected.num_rows != batch.num_rows:
                raise AccountingError(
                    f"stage {stage}, shard {shard}: {batch.num_rows} documents in, "
                    f"{kept.num_rows} kept + {rejected.num_rows} rejected"
                )
            stats.docs_in += batch.num_rows
            stats.bytes_in += text_bytes(batch)
            kept_out.write(kept)
            rejected_out.write(rejected)
            stats.reasons.update(rejected.column("reason").to_pylist())
    stats.docs_out, stats.docs_rejected = kept_out.rows, rejected_out.rows
    stats.bytes_out, stats.bytes_rejected = kept_out.bytes, rejected_out.bytes
    stats.extra = (extra() if callable(extra) else extra) or {}
    stats.seconds = time.perf_counter() - started + extra_seconds
    record = stats.record(run_id, stage, shard)
    write_json_atomic(paths.stats, record)
    progress.shard_done(stage, shard, stats.docs_in, stats.docs_out)
    return record
