"""The fastText scorer: train on positive/negative texts, evaluate, load, score, explain.

Training and inference see the same text through ``preprocess``. fastText reads one example per
line, so newlines become spaces (as in the PreSelect and DCLM training scripts). datatrove's
FastTextClassifierFilter deletes newlines instead, gluing the last word of a line to the first of
the next; a model trained here must not be applied through it.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from schemas.scoring import LABEL_NEGATIVE, LABEL_POSITIVE, FastTextParams
from warehouse.files import atomic_path

__all__ = [
    "NEGATIVE",
    "POSITIVE",
    "TrainResult",
    "load",
    "preprocess",
    "roc_auc",
    "score",
    "top_features",
    "train",
]

LABEL_PREFIX = "__label__"  # fastText's default; a token starting with it is read as a label
POSITIVE = LABEL_PREFIX + LABEL_POSITIVE
NEGATIVE = LABEL_PREFIX + LABEL_NEGATIVE
EOS = "</s>"  # fastText's end-of-line token: in every example's vocabulary, not a word of the text

_M_PERTURB = -6  # glibc's mallopt parameter number (malloc.h)

_NEWLINES = re.compile(r"\r\n|\r|\n")
# A whitespace-delimited token starting with the label prefix, by fastText's own whitespace set. At
# prediction time fastText takes such tokens as labels and ignores them; in a training line they
# would add a label to the example. Dropping them from training lines keeps the two the same.
_LABEL_TOKEN = re.compile(r"(?<![^ \t\v\f\r\0])" + LABEL_PREFIX + r"[^ \t\v\f\r\0]*")


def preprocess(text: str) -> str:
    """The text fastText sees, at training and at inference alike: newlines become spaces."""
    return _NEWLINES.sub(" ", text)


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    train_path: Path  # the fastText training file, one labelled example per line
    holdout_path: Path | None  # held-out examples in the same format; None without a holdout
    params: FastTextParams
    seed: int
    n_train: dict[str, int]  # {"positive": n, "negative": n}
    n_holdout: dict[str, int]
    accuracy: float | None  # on the held-out split; None without a holdout
    roc_auc: float | None


def train(
    positives: Sequence[str],
    negatives: Sequence[str],
    params: FastTextParams | None = None,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    *,
    out_path: str | Path,
) -> TrainResult:
    """Train a binary fastText classifier and save it to ``out_path`` (.bin).

    ``holdout_fraction`` of each class (stratified, so both classes are always evaluated) is held
    out; the training files are written next to the model (``<stem>.train.txt``,
    ``<stem>.holdout.txt``) so the card can hash what the model learned from. The example order is
    shuffled with ``seed`` and fastText runs on one thread with the same seed: the same inputs give
    the same model.
    """
    import fasttext

    params = params or FastTextParams()
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    rng = random.Random(seed)
    pos_train, pos_hold = _split(list(positives), holdout_fraction, rng, "positives")
    neg_train, neg_hold = _split(list(negatives), holdout_fraction, rng, "negatives")
    if not pos_train or not neg_train:
        raise ValueError(f"need training texts of both classes, got {len(pos_train)} positive and {len(neg_train)} negative")

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    train_path = out_path.with_name(out_path.stem + ".train.txt")
    examples = [(POSITIVE, t) for t in pos_train] + [(NEGATIVE, t) for t in neg_train]
    # fastText's SGD visits lines in file order: all positives then all negatives would bias it
    rng.shuffle(examples)
    _write_examples(train_path, examples)

    try:
        with _zero_filled_allocations():
            model = fasttext.train_supervised(input=str(train_path), **params.model_dump(), seed=seed, thread=1, verbose=0)
    except RuntimeError as err:
        raise RuntimeError(f"fastText training on {train_path} failed: {err}") from None
    with atomic_path(out_path) as tmp:  # a model file that exists is complete
        model.save_model(str(tmp))

    holdout_path, accuracy, auc = None, None, None
    if pos_hold or neg_hold:
        holdout_path = out_path.with_name(out_path.stem + ".holdout.txt")
        _write_examples(holdout_path, [(POSITIVE, t) for t in pos_hold] + [(NEGATIVE, t) for t in neg_hold])
        probs = score(model, pos_hold + neg_hold)
        truth = [True] * len(pos_hold) + [False] * len(neg_hold)
        # p(positive) >= 0.5 is the arg-max label of a two-label softmax
        accuracy = float(np.mean([(p >= 0.5) == t for p, t in zip(probs, truth)]))
        auc = roc_auc(probs, truth)
    return TrainResult(
        model_path=out_path,
        train_path=train_path,
        holdout_path=holdout_path,
        params=params,
        seed=seed,
        n_train={LABEL_POSITIVE: len(pos_train), LABEL_NEGATIVE: len(neg_train)},
        n_holdout={LABEL_POSITIVE: len(pos_hold), LABEL_NEGATIVE: len(neg_hold)},
        accuracy=accuracy,
        roc_auc=auc,
    )


def load(path: str | Path):
    """A fastText model from a .bin (or quantized .ftz) file, with the path in any error. Loaded
    once per process and file version: a large model takes seconds to read, and a model written
    again under the same path (a retrained scorer) is read again."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no fastText model at {path}")
    stat = Path(path).stat()
    return _load(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int, _size: int):
    import fasttext

    try:
        return fasttext.load_model(path)
    except ValueError as err:
        raise ValueError(f"cannot load fastText model {path}: {err}") from None


def top_labels(model, texts: Sequence[str]) -> list[tuple[str, float]]:
    """Each text's most likely label (without fastText's prefix) and its probability."""
    labels, probs = model.predict([preprocess(t) for t in texts], k=1)
    return [(label[0].removeprefix(LABEL_PREFIX), min(float(prob[0]), 1.0)) for label, prob in zip(labels, probs)]


def score(model, texts: Sequence[str], label: str = POSITIVE, batch_size: int = 10_000) -> list[float]:
    """Probability of ``label`` for each text (0.0 where fastText assigns it none), in [0, 1]."""
    labels = model.get_labels()
    if label not in labels:
        raise ValueError(f"label {label!r} is not one of the model's labels {labels}")
    out: list[float] = []
    for start in range(0, len(texts), batch_size):
        batch = [preprocess(t) for t in texts[start : start + batch_size]]
        # k=-1: every label with its probability, so the wanted one is there even when it is not top
        predicted, probs = model.predict(batch, k=-1)
        for names, ps in zip(predicted, probs):
            p = dict(zip(names, ps)).get(label, 0.0)
            out.append(min(max(float(p), 0.0), 1.0))  # fastText can return 1.00001
    return out


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, a tie counting one half (Mann-Whitney U with average ranks for tied scores)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be two lists of one length, got {s.shape} and {y.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC-AUC needs both classes, got {n_pos} positive and {n_neg} negative")
    _, group, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of the last member of each group of equal scores
    ranks = (ends - (counts - 1) / 2.0)[group]  # each member gets the group's average rank
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def top_features(model, k: int = 20) -> dict[str, list[tuple[str, float]]]:
    """The ``k`` vocabulary words that push a prediction most towards each label.

    fastText's logits are ``output_matrix @ h`` with ``h`` the mean of the input vectors of the
    text's words and word n-grams. A word's own push is therefore ``output_matrix @ v`` (scaled by
    1/length, which does not change the ranking); towards label L it is L's logit minus the mean
    logit of the other labels (for two labels, the log-odds). Word n-grams live in hashed buckets
    with no recoverable text, so only single words are ranked. Input vectors are read one word at a
    time: the full input matrix includes millions of bucket rows. Needs a non-quantized model.
    """
    labels = model.get_labels()
    output = np.asarray(model.get_output_matrix(), dtype=np.float64)
    if output.shape[0] != len(labels):
        raise ValueError(
            f"output matrix has {output.shape[0]} rows for {len(labels)} labels: only softmax or "
            "one-vs-all models have one output row per label"
        )
    words = [w for w in model.get_words(on_unicode_error="replace") if w != EOS]
    if not words:
        return {label: [] for label in labels}
    vectors = np.stack([model.get_input_vector(model.get_word_id(w)) for w in words]).astype(np.float64)
    logits = vectors @ output.T  # (words, labels)
    result: dict[str, list[tuple[str, float]]] = {}
    for j, label in enumerate(labels):
        others = np.delete(logits, j, axis=1)
        push = logits[:, j] - (others.mean(axis=1) if others.shape[1] else 0.0)
        order = sorted(range(len(words)), key=lambda i: (-push[i], words[i]))[:k]
        result[label] = [(words[i], float(push[i])) for i in order]
    return result


@contextmanager
def _zero_filled_allocations():
    """Make malloc return zeroed memory while fastText trains (glibc only; a no-op elsewhere).

    fastText initialises its input matrix in ten blocks, one per thread, and with fewer than ten
    threads leaves the other rows as allocated; upstream allocates them zeroed, but the
    fasttext-numpy2-wheel build does not. With thread=1, 90% of the rows (every word n-gram
    bucket) then hold whatever the allocator hands out: zero pages in a fresh process, freed
    memory in a busy one. Measured: the same file and seed gave different models, and
    "Encountered NaN" on every other call. glibc's M_PERTURB makes each allocation start as
    bytes of 0 (the complement of 255), which restores upstream's zeroed rows.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        yield
        return
    mallopt(_M_PERTURB, 255)
    try:
        yield
    finally:
        mallopt(_M_PERTURB, int(os.environ.get("MALLOC_PERTURB_", "0") or 0))


def _split(texts: list[str], fraction: float, rng: random.Random, what: str) -> tuple[list[str], list[str]]:
    """(train, holdout) for one class; the holdout gets round(n * fraction) texts, at least one
    when a holdout is asked for, so held-out metrics always see both classes."""
    if fraction == 0.0:
        return texts, []
    n_hold = max(1, round(len(texts) * fraction))
    if n_hold >= len(texts):
        raise ValueError(f"{len(texts)} {what} cannot be split into training and held-out texts")
    order = list(range(len(texts)))
    rng.shuffle(order)
    hold = set(order[:n_hold])
    return [t for i, t in enumerate(texts) if i not in hold], [t for i, t in enumerate(texts) if i in hold]


def _write_examples(path: Path, examples: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for label, text in examples:
            f.write(f"{label} {_LABEL_TOKEN.sub('', preprocess(text))}\n")
