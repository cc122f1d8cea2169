"""Which scored documents to keep: the best share of all characters, or a fixed score threshold.

Either way the decision is "score >= threshold", so equal scores are always kept or dropped
together and the outcome never depends on document order. A share rule is turned into the
threshold it implies, and that threshold is what gets recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from schemas.scoring import SelectionRule

__all__ = ["Selection", "keep_mask", "select", "threshold_for_rule", "threshold_for_top_share"]


@dataclass(frozen=True)
class Selection:
    threshold: float  # documents with score >= threshold are kept
    keep: list[bool]
    kept_docs: int
    kept_chars: int
    total_chars: int


def threshold_for_top_share(scores: Sequence[float], n_chars: Sequence[int], share: float) -> float:
    """The score threshold that keeps the highest-scoring documents until their characters reach
    ``share`` of all characters.

    Documents are taken best first; the score of the document whose characters make the running
    total reach the target is the threshold. Documents tied with it are kept too, so slightly more
    than ``share`` can be kept. With no documents the threshold is +inf (nothing to keep).
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    s, chars = weighted_scores(scores, n_chars, "n_chars")
    if len(s) == 0:
        return math.inf
    order = np.argsort(-s, kind="stable")
    running = np.cumsum(chars[order])
    # exact arithmetic: 0.3 * 10 is 3.0000000000000004 in floats and would take one document too many
    target = math.ceil(Fraction(share) * int(running[-1]))
    reached = int(np.searchsorted(running, target, side="left"))
    return float(s[order[min(reached, len(s) - 1)]])


def threshold_for_rule(scores: Sequence[float], n_chars: Sequence[int], rule: SelectionRule) -> float:
    if rule.threshold is not None:
        return float(rule.threshold)
    return threshold_for_top_share(scores, n_chars, rule.top_share)


def keep_mask(scores: Sequence[float], threshold: float) -> list[bool]:
    return [bool(x) for x in np.asarray(scores, dtype=np.float64) >= threshold]


def select(scores: Sequence[float], n_chars: Sequence[int], rule: SelectionRule) -> Selection:
    s, chars = weighted_scores(scores, n_chars, "n_chars")
    threshold = threshold_for_rule(s, chars, rule)
    keep = s >= threshold
    return Selection(
        threshold=threshold,
        keep=[bool(x) for x in keep],
        kept_docs=int(keep.sum()),
        kept_chars=int(chars[keep].sum()),
        total_chars=int(chars.sum()),
    )


def weighted_scores(scores: Sequence[float], weights: Sequence[int], weight_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and their per-document weights (characters, tokens) as checked arrays."""
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weights, dtype=np.int64)
    if s.shape != w.shape or s.ndim != 1:
        raise ValueError(f"scores and {weight_name} must be two lists of one length, got {s.shape} and {w.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if (w < 0).any():
        raise ValueError(f"{weight_name} must not be negative")
    return s, w
