"""Language identification with fastText's lid.176 model, fully offline.

Text is passed with newlines turned into spaces: fastText predicts one line at a time.
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa

from curation.assets import asset_path
from curation.stage import BatchProcessor, Rejection, split_rows
from schemas.config import LanguageConfig

STAGE = "language"


@lru_cache(maxsize=4)
def load_fasttext(path: str):
    import fasttext

    try:
        return fasttext.load_model(path)
    except ValueError as err:
        raise ValueError(f"cannot load fastText model {path}: {err}") from None


def model_path(cfg: LanguageConfig) -> str:
    return cfg.model_path or str(asset_path("lid.176.ftz"))


def predict_languages(texts: list[str], path: str) -> list[tuple[str, float]]:
    model = load_fasttext(path)
    labels, probs = model.predict([t.replace("\n", " ") for t in texts], k=1)
    return [(label[0].removeprefix("__label__"), float(min(prob[0], 1.0))) for label, prob in zip(labels, probs)]


def language_processor(cfg: LanguageConfig) -> BatchProcessor:
    path = model_path(cfg)
    load_fasttext(path)  # fail before any shard is written if the model is missing or broken
    allowed = set(cfg.allowed)

    def process(batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = batch.to_pylist()
        verdicts: list[Rejection | None] = []
        for row, (lang, score) in zip(rows, predict_languages([r["text"] for r in rows], path)):
            row["language"], row["language_score"] = lang, round(score, 4)
            if allowed and lang not in allowed:
                verdicts.append(Rejection("language_not_allowed", f"{lang} ({score:.2f}); allowed: {sorted(allowed)}"))
            elif score < cfg.min_score:
                verdicts.append(Rejection("language_low_confidence", f"{lang} {score:.2f} < {cfg.min_score}"))
            else:
                verdicts.append(None)
        return split_rows(rows, verdicts, STAGE)

    return process
