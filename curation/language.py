"""Language identification: keeps documents in the allowed languages, identified confidently
enough, and records every document's language for the stages after it."""

from __future__ import annotations

import pyarrow as pa

from curation.stage import Rejection, Stage, split_rows
from scorers import fasttext_scorer
from scorers.language_id import model_path, predict_languages


class LanguageId(Stage):
    name = "language"
    config_section = "language"

    def setup(self) -> None:
        self.model = model_path(self.config.model_path)
        fasttext_scorer.load(self.model)  # a missing or broken model fails before any shard is written
        self.allowed = set(self.config.allowed)

    def process(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = batch.to_pylist()
        verdicts = []
        for row, (lang, score) in zip(rows, predict_languages([r["text"] for r in rows], self.model), strict=True):
            row["language"], row["language_score"] = lang, round(score, 4)
            verdicts.append(self.verdict(lang, score))
        return split_rows(rows, verdicts, self.name)

    def verdict(self, lang: str, score: float) -> Rejection | None:
        if self.allowed and lang not in self.allowed:
            return Rejection("language_not_allowed", f"{lang} ({score:.2f}); allowed: {sorted(self.allowed)}")
        if score < self.config.min_score:
            return Rejection("language_low_confidence", f"{lang} {score:.2f} < {self.config.min_score}")
        return None
