"""Model-based scoring inside a run: a PreSelect scorer and bring-your-own fastText quality classifiers.

Three steps like deduplication, because both outputs need the whole run: per shard, every scorer
scores every document (and, when there are classifiers, the configured tokenizer counts its tokens);
globally, each classifier's bucket edges (percentiles of equal token mass, Nemotron-CC) and the
PreSelect threshold (top share of characters, or a fixed threshold) are fixed; per shard, documents
get `preselect_score` and `quality_bucket` and those below the PreSelect threshold are rejected with
their score. The threshold actually used is in the stats.

`quality_bucket` is the highest bucket any quality classifier gives the document: Nemotron-CC's
ensemble is over quality classifiers only. PreSelect is a selection rule, not one of them; folding
its bucket in would lift every document it keeps (its top 10% by default) into the top buckets and
leave nothing for a low-quality route. With no classifier, `quality_bucket` stays null.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.stage import FinishContext, GlobalStage, PlanContext, ShardContext
from schemas.config import ScoringConfig
from schemas.documents import REJECTED_DOCUMENT
from schemas.scoring import RAW_SCORES, SCORES, BringYourOwnClassifier
from scorers import fasttext_scorer
from scorers.ensemble import bucket_edges, score_with_classifier, to_buckets
from scorers.preselect import as_classifier
from scorers.selection import threshold_for_rule
from scorers.tokens import TrainerTokenizer, load_tokenizer
from warehouse.shards import write_table_atomic

PRESELECT_ID = "preselect"

# The map output: every raw score, with each document's token count, which weights the bucket edges
# (null when the run has no classifier to bucket).


def scorers_of(cfg: ScoringConfig) -> dict[str, BringYourOwnClassifier]:
    """Every scorer of the run by id; the PreSelect scorer is a fastText classifier like the others."""
    found: dict[str, BringYourOwnClassifier] = {}
    if cfg.preselect:
        found[PRESELECT_ID] = as_classifier(cfg.preselect.scorer_dir, name=PRESELECT_ID)
    for classifier in cfg.classifiers:
        if classifier.scorer_id in found:
            raise ValueError(f"two scorers named {classifier.scorer_id!r}: give classifiers distinct names")
        found[classifier.scorer_id] = classifier
    for classifier in found.values():
        fasttext_scorer.load(classifier.path)  # a missing or broken model fails before any output (cached per process)
    return found


def bucket_tokenizer(cfg: ScoringConfig) -> TrainerTokenizer | None:
    """The tokenizer whose counts weight the buckets; None when there is no classifier to bucket.
    Loaded once per process: the map calls this for every batch."""
    return _load_bucket_tokenizer(cfg.tokenizer) if cfg.classifiers else None


@functools.lru_cache(maxsize=4)
def _load_bucket_tokenizer(name: str) -> TrainerTokenizer:
    return load_tokenizer(name, append_eos=False)


def shard_scores(table: pa.Table, cfg: ScoringConfig) -> pa.Table:
    texts = table.column("text").to_pylist()
    tokenizer = bucket_tokenizer(cfg)
    n_tokens = pa.array(tokenizer.count_batch(texts) if tokenizer else [None] * len(texts), pa.int64())
    keys = table.select(["input_file", "input_row", "doc_id", "n_chars", "n_words"])
    parts = []
    for scorer_id, classifier in scorers_of(cfg).items():
        scores = pa.array(score_with_classifier(classifier, texts), pa.float64())
        parts.append(
            keys.append_column("scorer_id", pa.array([scorer_id] * len(texts), pa.string()))
            .append_column("score", scores)
            .append_column("n_tokens", n_tokens)
        )
    return pa.concat_tables(parts).cast(RAW_SCORES) if parts else RAW_SCORES.empty_table()


def plan_scoring(raw: list[Path], cfg: ScoringConfig) -> dict:
    """Per scorer: bucket edges for the quality classifiers (PreSelect's bucket is null: it is not one
    of them), and the PreSelect threshold."""
    table = pa.concat_tables([pq.read_table(p, schema=RAW_SCORES) for p in raw])
    plan: dict = {"scorers": {}}
    for scorer_id in sorted(set(table.column("scorer_id").to_pylist())):
        mine = table.filter(pc.equal(table.column("scorer_id"), scorer_id))
        scores = mine.column("score").to_pylist()
        entry: dict = {"documents": len(scores)}
        if scorer_id == PRESELECT_ID:
            entry["rule"] = cfg.preselect.rule.model_dump()
            entry["threshold"] = threshold_for_rule(scores, mine.column("n_chars").to_pylist(), cfg.preselect.rule)
        else:
            entry["edges"] = bucket_edges(scores, mine.column("n_tokens").to_pylist(), cfg.buckets)
        plan["scorers"][scorer_id] = entry
    return plan


class ShardScores:
    """One shard's scores, per scorer, aligned by input row, with the quality classifiers' buckets."""

    def __init__(self, raw_path: Path, plan: dict):
        raw = pq.read_table(raw_path, schema=RAW_SCORES)
        self.scores: dict[str, dict[int, float]] = {}
        self.buckets: dict[str, dict[int, int]] = {}  # quality classifiers only
        self.doc_ids: dict[int, str] = {}
        for scorer_id, entry in plan["scorers"].items():
            mine = raw.filter(pc.equal(raw.column("scorer_id"), scorer_id))
            rows = mine.column("input_row").to_pylist()
            values = mine.column("score").to_pylist()
            self.scores[scorer_id] = dict(zip(rows, values))
            if "edges" in entry:
                self.buckets[scorer_id] = dict(zip(rows, to_buckets(values, entry["edges"])))
            self.doc_ids.update(zip(rows, mine.column("doc_id").to_pylist()))

    def quality_buckets(self, rows: list[int]) -> list[int | None]:
        """Nemotron-CC's ensemble bucket of each row: the max over the quality classifiers; null without one."""
        if not self.buckets:
            return [None] * len(rows)
        return [max(buckets[r] for buckets in self.buckets.values()) for r in rows]

    def warehouse_rows(self, run_id: str) -> pa.Table:
        """The shard's rows of the warehouse `scores` view."""
        rows = [
            {
                "doc_id": self.doc_ids[row],
                "run_id": run_id,
                "scorer_id": sid,
                "score": score,
                "bucket": self.buckets.get(sid, {}).get(row),
            }
            for sid, by_row in sorted(self.scores.items())
            for row, score in by_row.items()
        ]
        return pa.Table.from_pylist(rows, schema=SCORES)


def _scores_file(stage_dir: Path, shard_id: str) -> Path:
    """A shard's rows of the warehouse `scores` view."""
    return stage_dir / "scores" / f"{shard_id}.parquet"


class Score(GlobalStage):
    """Map: every scorer scores every document. Plan: bucket edges per quality classifier and the
    PreSelect threshold. Apply: annotate `preselect_score` and `quality_bucket`, drop what is below
    the threshold (column-wise: this must cost little next to the classifiers), and keep every score
    for the warehouse `scores` view."""

    name = "score"
    config_section = "scoring"
    map_schema = RAW_SCORES

    def setup(self) -> None:
        scorers_of(self.config)
        bucket_tokenizer(self.config)  # a missing tokenizer fails before any output too

    def map(self, batch: pa.Table) -> pa.Table:
        return shard_scores(batch, self.config)

    def plan(self, ctx: PlanContext) -> dict:
        return plan_scoring(ctx.map_outputs, self.config)

    def begin_shard(self, ctx: ShardContext) -> None:
        plan = json.loads((ctx.stage_dir / "decisions.json").read_text())
        self.scores = ShardScores(ctx.map_output, plan)
        self.preselect = plan["scorers"].get(PRESELECT_ID)
        write_table_atomic(_scores_file(ctx.stage_dir, ctx.shard_id), self.scores.warehouse_rows(ctx.run_id))

    def shard_extra(self) -> dict:
        preselect = self.preselect or {}
        return {k: preselect[k] for k in ("threshold", "rule") if k in preselect}

    def run_files(self, ctx: FinishContext) -> dict[str, list[str]]:
        return {"scores": [str(_scores_file(ctx.stage_dir, shard)) for shard in ctx.shard_ids]}

    def process(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = batch.column("input_row").to_pylist()
        best = self.scores.quality_buckets(rows)
        batch = batch.set_column(batch.schema.get_field_index("quality_bucket"), "quality_bucket", pa.array(best, pa.int8()))
        preselect = self.preselect
        if preselect is None:
            return batch, REJECTED_DOCUMENT.empty_table()
        values = [self.scores.scores[PRESELECT_ID][r] for r in rows]
        batch = batch.set_column(
            batch.schema.get_field_index("preselect_score"), "preselect_score", pa.array(values, pa.float64())
        )
        keep = pc.greater_equal(batch.column("preselect_score"), preselect["threshold"])
        dropped = batch.filter(pc.invert(keep))
        n = dropped.num_rows
        details = [
            f"score {v:.4f} < threshold {preselect['threshold']:.4f}" for v in dropped.column("preselect_score").to_pylist()
        ]
        rejected = (
            dropped.append_column("stage", pa.array([self.name] * n, pa.string()))
            .append_column("reason", pa.array(["preselect_below_threshold"] * n, pa.string()))
            .append_column("detail", pa.array(details, pa.string()))
            .append_column("duplicate_of", pa.nulls(n, pa.string()))
        )
        return batch.filter(keep), rejected.cast(REJECTED_DOCUMENT)
