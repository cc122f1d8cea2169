"""Model-based scoring inside a run: a PreSelect scorer and bring-your-own fastText classifiers.

Three steps like deduplication, because both outputs need the whole run: per shard, every scorer
scores every document; globally, each scorer's bucket edges (token-weighted percentiles, Nemotron-CC)
and the PreSelect threshold (top share of characters, or a fixed threshold) are fixed; per shard,
documents get `preselect_score` and `quality_bucket` (max bucket over scorers) and those below the
PreSelect threshold are rejected with their score. The threshold actually used is in the stats.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.stage import Rejection
from schemas.config import ScoringConfig
from schemas.scoring import SCORES, BringYourOwnClassifier
from scorers import fasttext_scorer
from scorers.ensemble import bucket_edges, score_with_classifier, to_buckets
from scorers.preselect import MODEL_FILE, load_card
from scorers.selection import threshold_for_rule

STAGE = "score"
PRESELECT_ID = "preselect"

RAW_SCORES = pa.schema(
    [
        pa.field("input_file", pa.string()),
        pa.field("input_row", pa.int64()),
        pa.field("doc_id", pa.string()),
        pa.field("n_chars", pa.int64()),
        pa.field("n_words", pa.int64()),
        pa.field("scorer_id", pa.string()),
        pa.field("score", pa.float64()),
    ]
)


def scorers_of(cfg: ScoringConfig) -> dict[str, BringYourOwnClassifier]:
    """Every scorer of the run by id; the PreSelect scorer is a fastText classifier like the others."""
    found: dict[str, BringYourOwnClassifier] = {}
    if cfg.preselect:
        card = load_card(cfg.preselect.scorer_dir)
        path = Path(cfg.preselect.scorer_dir) / MODEL_FILE
        found[PRESELECT_ID] = BringYourOwnClassifier(path=str(path), label=card.get("label", fasttext_scorer.POSITIVE), name=PRESELECT_ID)
    for classifier in cfg.classifiers:
        if classifier.scorer_id in found:
            raise ValueError(f"two scorers named {classifier.scorer_id!r}: give classifiers distinct names")
        fasttext_scorer.load(classifier.path)  # a missing or broken model fails before any output
        found[classifier.scorer_id] = classifier
    return found


def shard_scores(table: pa.Table, cfg: ScoringConfig) -> pa.Table:
    texts = table.column("text").to_pylist()
    keys = table.select(["input_file", "input_row", "doc_id", "n_chars", "n_words"]).to_pylist()
    rows = []
    for scorer_id, classifier in scorers_of(cfg).items():
        for key, value in zip(keys, score_with_classifier(classifier, texts)):
            rows.append({**key, "scorer_id": scorer_id, "score": value})
    return pa.Table.from_pylist(rows, schema=RAW_SCORES)


def plan_scoring(raw: list[Path], cfg: ScoringConfig) -> dict:
    table = pa.concat_tables([pq.read_table(p, schema=RAW_SCORES) for p in raw])
    plan: dict = {"scorers": {}}
    for scorer_id in sorted(set(table.column("scorer_id").to_pylist())):
        mine = table.filter(pc.equal(table.column("scorer_id"), scorer_id))
        scores = mine.column("score").to_pylist()
        entry = {"edges": bucket_edges(scores, mine.column("n_words").to_pylist(), cfg.buckets), "documents": len(scores)}
        if scorer_id == PRESELECT_ID:
            entry["rule"] = cfg.preselect.rule.model_dump()
            entry["threshold"] = threshold_for_rule(scores, mine.column("n_chars").to_pylist(), cfg.preselect.rule)
        plan["scorers"][scorer_id] = entry
    return plan


def _bucketed(raw_path: Path, plan: dict) -> dict[int, dict[str, tuple[str, float, int]]]:
    """input_row -> scorer_id -> (doc_id, score, bucket) for one shard."""
    edges = {sid: entry["edges"] for sid, entry in plan["scorers"].items()}
    out: dict[int, dict[str, tuple[str, float, int]]] = {}
    for row in pq.read_table(raw_path, schema=RAW_SCORES).to_pylist():
        bucket = to_buckets([row["score"]], edges[row["scorer_id"]])[0]
        out.setdefault(row["input_row"], {})[row["scorer_id"]] = (row["doc_id"], row["score"], bucket)
    return out


def shard_score_rows(raw_path: Path, plan: dict, run_id: str) -> pa.Table:
    """The shard's rows of the warehouse `scores` view."""
    rows = [
        {"doc_id": doc_id, "run_id": run_id, "scorer_id": sid, "score": score, "bucket": bucket}
        for _, per_scorer in sorted(_bucketed(raw_path, plan).items())
        for sid, (doc_id, score, bucket) in sorted(per_scorer.items())
    ]
    return pa.Table.from_pylist(rows, schema=SCORES)


def scoring_check(raw_path: Path, plan: dict):
    """Per-document annotation and selection from the shard's raw scores and the run's plan."""
    by_row = _bucketed(raw_path, plan)
    preselect = plan["scorers"].get(PRESELECT_ID)

    def check(row: dict) -> Rejection | None:
        scored = by_row[row["input_row"]]
        row["quality_bucket"] = max(bucket for _, _, bucket in scored.values())
        if preselect is None:
            return None
        row["preselect_score"] = scored[PRESELECT_ID][1]
        if row["preselect_score"] < preselect["threshold"]:
            return Rejection("preselect_below_threshold", f"score {row['preselect_score']:.4f} < threshold {preselect['threshold']:.4f}")
        return None

    return check
