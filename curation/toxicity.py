"""Toxicity: drops documents the word-list rule (scorers/toxicity.py) or an optional fastText
classifier flags, and records both scores on every document it keeps."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from curation.stage import Rejection, Stage, split_rows
from scorers import fasttext_scorer
from scorers.toxicity import check_wordlist_dir, classifier_scores, default_wordlist_dir, word_list_score


class Toxicity(Stage):
    name = "toxicity"
    config_section = "toxicity"

    def setup(self) -> None:
        self.lists = Path(self.config.wordlist_dir) if self.config.wordlist_dir else default_wordlist_dir()
        check_wordlist_dir(self.lists)
        self.classifier = self.config.classifier
        if self.classifier:
            fasttext_scorer.load(self.classifier.path)

    def process(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = batch.to_pylist()
        texts = [r["text"] for r in rows]
        model_scores = (
            classifier_scores(texts, self.classifier.path, self.classifier.label) if self.classifier else [None] * len(rows)
        )
        verdicts = []
        for row, model_score in zip(rows, model_scores, strict=True):
            words = word_list_score(row["text"], row["language"], self.lists, row["n_words"])
            row["toxicity_score"] = words.score
            row["toxicity_classifier_score"] = model_score
            verdicts.append(self.verdict(words, model_score))
        return split_rows(rows, verdicts, self.name)

    def verdict(self, words, model_score: float | None) -> Rejection | None:
        if words.is_toxic(self.config.min_matches, self.config.max_score):
            return Rejection("toxic_words", words.describe())
        if model_score is not None and model_score >= self.classifier.threshold:
            return Rejection("toxic_classifier", f"{self.classifier.label} p={model_score:.3f} >= {self.classifier.threshold}")
        return None
