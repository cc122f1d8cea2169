"""Language identification with fastText's lid.176 model (an offline asset)."""

from __future__ import annotations

from scorers import fasttext_scorer
from scorers.assets import asset_path

MODEL_ASSET = "lid.176.ftz"


def model_path(configured: str | None = None) -> str:
    """The configured model, else the bundled lid.176."""
    return configured or str(asset_path(MODEL_ASSET))


def predict_languages(texts: list[str], path: str) -> list[tuple[str, float]]:
    """(ISO code, probability) of each text's most likely language."""
    return fasttext_scorer.top_labels(fasttext_scorer.load(path), texts)
