"""Applying a trained scorer to a completed run's documents, outside a pipeline run.

Streams the run's curated documents from the warehouse in batches, scores them with the same
preprocessing as training, writes the scores as a Parquet file registered under the run (the
warehouse `scores` view), and reports the selection the rule would make.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from schemas.scoring import SCORES, SelectionRule
from scorers.ensemble import score_with_classifier
from scorers.preselect import as_classifier, load_card
from scorers.selection import select
from warehouse.shards import ShardWriter
from warehouse.warehouse import Warehouse


@dataclass(frozen=True)
class ApplyResult:
    scorer_id: str
    documents: int
    threshold: float
    kept_docs: int
    kept_chars: int
    total_chars: int
    scores_path: Path


def apply_to_run(
    scorer_dir: Path, warehouse_path: Path, run_id: str, rule: SelectionRule, batch_size: int = 10_000
) -> ApplyResult:
    scorer_id = load_card(scorer_dir).get("scorer_id", Path(scorer_dir).name)
    classifier = as_classifier(scorer_dir, name=scorer_id)
    warehouse = Warehouse(warehouse_path)
    scores_path = Path(scorer_dir) / "applied" / f"{run_id}.parquet"
    scores, n_chars = [], []
    with warehouse.connect(read_only=True) as con:
        if not con.execute("SELECT 1 FROM runs WHERE run_id = ? AND status = 'completed'", [run_id]).fetchall():
            raise ValueError(f"run {run_id!r} is not a completed run in {warehouse.path}")
        reader = con.execute(
            "SELECT doc_id, text, n_chars FROM documents WHERE run_id = ? ORDER BY doc_id", [run_id]
        ).to_arrow_reader(batch_size)
        with ShardWriter(scores_path, SCORES) as writer:
            for batch in reader:
                values = score_with_classifier(classifier, batch.column("text").to_pylist())
                scores += values
                n_chars += batch.column("n_chars").to_pylist()
                writer.write(
                    pa.table(
                        {
                            "doc_id": batch.column("doc_id"),
                            "run_id": [run_id] * batch.num_rows,
                            "scorer_id": [scorer_id] * batch.num_rows,
                            "score": values,
                            "bucket": pa.nulls(batch.num_rows, pa.int8()),
                        }
                    )
                )
    selection = select(scores, n_chars, rule)
    warehouse.add_run_files(run_id, "scores", [scores_path])
    return ApplyResult(
        scorer_id, len(scores), selection.threshold, selection.kept_docs, selection.kept_chars, selection.total_chars, scores_path
    )
