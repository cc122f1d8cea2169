"""Toxicity: a word-list score from LDNOOBW, plus an optional fastText classifier.

The word-list score is flagged words per word. A document is dropped when it has at least
`min_matches` flagged words and its score exceeds `max_score`: a single bad word in a long
article (a medical text, a quote) is not enough on its own, unlike C4's any-match rule.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

from curation.assets import asset_path
from curation.language import load_fasttext
from curation.stage import BatchProcessor, Rejection, split_rows
from schemas.config import ToxicityConfig

STAGE = "toxicity"
FALLBACK_LANGUAGE = "en"


def wordlist_dir(cfg: ToxicityConfig) -> Path:
    return Path(cfg.wordlist_dir) if cfg.wordlist_dir else asset_path("ldnoobw")


@lru_cache(maxsize=64)
def word_pattern(path: str) -> re.Pattern | None:
    words = [
        line.strip().lower()
        for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    if not words:
        return None
    # longest first so that phrases win over their first word; \b only where the term has a word edge
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def flagged_words(text: str, language: str | None, lists: Path) -> list[str]:
    path = lists / f"{language}.txt"
    if not language or not path.exists():
        path = lists / f"{FALLBACK_LANGUAGE}.txt"
    pattern = word_pattern(str(path))
    return pattern.findall(text.lower()) if pattern else []


def toxicity_processor(cfg: ToxicityConfig) -> BatchProcessor:
    lists = wordlist_dir(cfg)
    if not (lists / f"{FALLBACK_LANGUAGE}.txt").exists():
        raise FileNotFoundError(f"toxicity.wordlist_dir {lists} has no {FALLBACK_LANGUAGE}.txt word list")
    classifier = cfg.classifier
    if classifier:
        load_fasttext(classifier.path)

    def process(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = batch.to_pylist()
        classifier_scores = _classifier_scores([r["text"] for r in rows], classifier) if classifier else [None] * len(rows)
        verdicts: list[Rejection | None] = []
        for row, model_score in zip(rows, classifier_scores):
            hits = flagged_words(row["text"], row["language"], lists)
            words = max(row["n_words"] or len(row["text"].split()), 1)
            row["toxicity_score"] = round(len(hits) / words, 6)
            row["toxicity_classifier_score"] = model_score
            if len(hits) >= cfg.min_matches and row["toxicity_score"] > cfg.max_score:
                shown = ", ".join(sorted(set(hits))[:5])
                verdicts.append(Rejection("toxic_words", f"{len(hits)} flagged of {words} words ({shown})"))
            elif model_score is not None and model_score >= classifier.threshold:
                verdicts.append(Rejection("toxic_classifier", f"{classifier.label} p={model_score:.3f} >= {classifier.threshold}"))
            else:
                verdicts.append(None)
        return split_rows(rows, verdicts, STAGE)

    return process


def _classifier_scores(texts: list[str], classifier) -> list[float]:
    model = load_fasttext(classifier.path)
    labels, probs = model.predict([t.replace("\n", " ") for t in texts], k=-1)
    return [round(float(dict(zip(ls, ps)).get(classifier.label, 0.0)), 6) for ls, ps in zip(labels, probs)]
