"""Combining several classifiers, Nemotron-CC style.

Raw scores of different classifiers are not on one scale (one model's 0.6 may be another's 0.95),
so each classifier's scores become integer buckets of equal token mass: bucket k of n holds about
1/n of the tokens, ranked by that classifier. A document's ensemble bucket is the highest bucket any
classifier gives it, so a document that one classifier rates highly is not averaged away by
classifiers that look for something else.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence

import numpy as np

from schemas.scoring import BringYourOwnClassifier
from scorers import fasttext_scorer
from scorers.selection import weighted_scores

__all__ = ["BringYourOwnClassifier", "bucket_edges", "ensemble_buckets", "score_with_classifier", "to_buckets"]


def bucket_edges(scores: Sequence[float], token_counts: Sequence[int], n_buckets: int = 20) -> list[float]:
    """The n_buckets - 1 inner edges of token-weighted percentile buckets.

    Documents are ranked by score, lowest first. ``edges[k-1]`` is the score of the document at
    which the running token count reaches k/n of all tokens; that document is the last of bucket
    k-1, so ``to_buckets`` puts a score equal to an edge in the bucket below it. Documents with
    equal scores cannot be split, so heavy ties make some buckets hold more tokens and others none.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be at least 1, got {n_buckets}")
    s, tokens = weighted_scores(scores, token_counts, "token_counts")
    total = int(tokens.sum())
    if total == 0:
        raise ValueError("bucket edges need documents with at least one token")
    order = np.argsort(s, kind="stable")
    running = np.cumsum(tokens[order])
    # running >= k/n * total, compared in integers: running * n >= k * total
    reach = [int(np.searchsorted(running * n_buckets, k * total, side="left")) for k in range(1, n_buckets)]
    return [float(s[order[i]]) for i in reach]


def to_buckets(scores: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Bucket of each score, 0 .. len(edges): the number of edges strictly below it, so a higher
    score never gets a lower bucket and scores outside the fitted range land in the end buckets."""
    edges = list(edges)
    if any(a > b for a, b in zip(edges, edges[1:])):
        raise ValueError("bucket edges must be sorted ascending")
    return [bisect_left(edges, float(x)) for x in scores]


def ensemble_buckets(per_classifier_buckets: Mapping[str, Sequence[int]] | Sequence[Sequence[int]]) -> list[int]:
    """Per document, the highest bucket any classifier gives it (Nemotron-CC's ensemble rule)."""
    columns = (
        list(per_classifier_buckets.values()) if isinstance(per_classifier_buckets, Mapping) else list(per_classifier_buckets)
    )
    if not columns:
        raise ValueError("no classifier buckets to combine")
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ValueError(f"every classifier must bucket the same documents; got lengths {sorted(lengths)}")
    return [int(m) for m in np.max(np.asarray(columns, dtype=np.int64).reshape(len(columns), -1), axis=0)]


def score_with_classifier(classifier: BringYourOwnClassifier, texts: Sequence[str]) -> list[float]:
    """Probability of the classifier's label for each text, with the scorer's preprocessing: the
    one way every scorer (PreSelect's included) is applied, in a run or to a finished run."""
    return fasttext_scorer.score(fasttext_scorer.load(classifier.path), texts, label=classifier.label)
