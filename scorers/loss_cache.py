"""The loss cache: Parquet files keyed by (model, document hash).

A document's loss depends only on the model's weights and the exact text, so reruns, new
documents and extra models cost only the new work. Each model has a folder of part files; the
missing documents are computed in batches and each batch's rows are written atomically as one
part as soon as they exist, so a run killed after hours loses at most one batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import progress
from schemas.scoring import LOSSES
from scorers.losses import DocumentLoss
from warehouse.shards import write_table_atomic

DEFAULT_BATCH_SIZE = 64  # documents per computed batch and per cache part


@dataclass(frozen=True)
class CacheDocument:
    doc_id: str
    doc_hash: str
    text: str


def _model_folder(cache_dir: Path, model: str) -> Path:
    return Path(cache_dir) / model.replace("/", "_")


def cached_hashes(cache_dir: Path, model: str) -> dict[str, dict]:
    folder = _model_folder(cache_dir, model)
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        return {}
    table = pa.concat_tables([pq.read_table(p, schema=LOSSES) for p in parts])
    return {row["doc_hash"]: row for row in table.to_pylist()}


def _loss_rows(model: str, documents: list[CacheDocument], losses: list[DocumentLoss]) -> list[dict]:
    return [
        {
            "model": model,
            "doc_hash": d.doc_hash,
            "doc_id": d.doc_id,
            "n_chars": loss.n_chars,
            "n_tokens": loss.n_tokens,
            "total_nats": loss.total_nats,
            "bits_per_char": loss.bits_per_char,
        }
        for d, loss in zip(documents, losses, strict=True)
    ]


def losses_with_cache(
    cache_dir: Path,
    model: str,
    documents: Sequence[CacheDocument],
    compute: Callable[[list[str]], list[DocumentLoss]],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[pa.Table, int]:
    """Losses of `documents` under `model`, computing only what the cache lacks, `batch_size`
    documents at a time (one cache part and one progress event per batch).
    Returns the table (one row per document, in order) and how many were computed now."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    known = cached_hashes(cache_dir, model)
    missing = list({d.doc_hash: d for d in documents if d.doc_hash not in known}.values())
    batches = [missing[i : i + batch_size] for i in range(0, len(missing), batch_size)]
    stage = f"losses {model}"
    if batches:
        progress.stage_started(stage, len(batches))
    for n, batch in enumerate(batches, start=1):
        fresh = _loss_rows(model, batch, compute([d.text for d in batch]))
        part = _model_folder(cache_dir, model) / f"part-{uuid.uuid4().hex[:12]}.parquet"
        write_table_atomic(part, pa.Table.from_pylist(fresh, schema=LOSSES))
        known.update({row["doc_hash"]: row for row in fresh})
        progress.shard_done(stage, f"batch {n}/{len(batches)}", len(batch), len(batch))
    rows = [{**known[d.doc_hash], "doc_id": d.doc_id} for d in documents]
    return pa.Table.from_pylist(rows, schema=LOSSES), len(missing)
