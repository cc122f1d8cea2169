"""What every per-shard stage shares: verdicts, the kept/rejected split, accounting and stats.

A stage is a function from a batch of curated rows to (kept, rejected); `process_shard` streams a
shard through it, writes both outputs atomically, checks that documents in = kept + rejected, and
writes the stats file last, which is also the marker that the shard is done.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from curation import progress
from curation.shards import ShardWriter, text_bytes, write_json_atomic
from schemas.documents import CURATED_DOCUMENT, REJECTED_DOCUMENT


# spaCy's tokenizer (behind datatrove's word splitting) is shared per process and not thread-safe:
# concurrent calls corrupt its string store. Threads only overlap I/O here anyway (the GIL); use
# Dask workers, which are processes, to spread text processing over cores.
SPACY_LOCK = threading.Lock()


class AccountingError(RuntimeError):
    """Documents went missing or appeared from nowhere: the run must stop."""


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str | None = None
    duplicate_of: str | None = None


# A per-document check: returns None to keep the document (possibly after annotating the row in
# place) or a Rejection.
DocumentCheck = Callable[[dict], Rejection | None]
BatchProcessor = Callable[[pa.Table], tuple[pa.Table, pa.Table]]


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


def per_document(stage: str, check: DocumentCheck) -> BatchProcessor:
    def process(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = batch.to_pylist()
        return split_rows(rows, [check(row) for row in rows], stage)

    return process


def process_shard(
    *,
    stage: str,
    shard: str,
    run_id: str,
    batches: Iterable[pa.Table],
    process: BatchProcessor,
    paths: StagePaths,
    extra: dict | None = None,
    extra_seconds: float = 0.0,
) -> dict:
    """Stream a shard through `process`. `extra_seconds` is this shard's share of work the stage
    did outside this call (signatures, global planning), so that stats show the stage's real cost."""
    started = time.perf_counter()
    docs_in = bytes_in = 0
    reasons: Counter[str] = Counter()
    with ShardWriter(paths.curated, CURATED_DOCUMENT) as kept_out, ShardWriter(paths.rejected, REJECTED_DOCUMENT) as rejected_out:
        for batch in batches:
            kept, rejected = process(batch)
            if kept.num_rows + rejected.num_rows != batch.num_rows:
                raise AccountingError(
                    f"stage {stage}, shard {shard}: {batch.num_rows} documents in, "
                    f"{kept.num_rows} kept + {rejected.num_rows} rejected"
                )
            docs_in += batch.num_rows
            bytes_in += text_bytes(batch)
            kept_out.write(kept)
            rejected_out.write(rejected)
            reasons.update(rejected.column("reason").to_pylist())
    stats = {
        "run_id": run_id,
        "stage": stage,
        "shard": shard,
        "docs_in": docs_in,
        "docs_out": kept_out.rows,
        "docs_rejected": rejected_out.rows,
        "bytes_in": bytes_in,
        "bytes_out": kept_out.bytes,
        "bytes_rejected": rejected_out.bytes,
        "seconds": round(time.perf_counter() - started + extra_seconds, 4),
        "reasons": json.dumps(dict(sorted(reasons.items()))),
        "extra": json.dumps(extra or {}, sort_keys=True),
    }
    write_json_atomic(paths.stats, stats)
    progress.shard_done(stage, shard, docs_in, kept_out.rows)
    return stats
