"""PreSelect's predictive strength and the balanced training labels derived from it.

A document is *predictive* when the models' losses on it are ordered like their benchmark scores:
the better a model is on the benchmark, the lower its loss on the document. For every pair of
models with different benchmark scores, the pair *agrees* on a document when the model with the
higher benchmark score has the strictly lower bits per character there. The strength of a document
is agreeing pairs / compared pairs; documents with strength 1.0 (every pair agrees) are the
positives the fastText scorer is trained on, and as many of the lowest-strength documents are the
negatives (PreSelect, arXiv:2503.00808).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.scoring import LABEL_NEGATIVE, LABEL_POSITIVE, LABELS, LOSSES

__all__ = [
    "IncompleteDocument",
    "LossTableError",
    "StrengthResult",
    "TooFewLabelsError",
    "assign_labels",
    "compared_pairs",
    "predictive_strength",
]

DEFAULT_MIN_POSITIVES = 100


class LossTableError(ValueError):
    """The loss table or the benchmark scores cannot give a meaningful strength."""


class TooFewLabelsError(ValueError):
    """Too few positives (or documents to balance them with) to train a classifier."""


@dataclass(frozen=True)
class IncompleteDocument:
    """A document some benchmarked models have no loss for: it gets no strength (comparing only the
    models present would measure it on fewer pairs than the others), but is reported, not lost."""

    doc_id: str
    doc_hash: str
    missing_models: tuple[str, ...]


@dataclass(frozen=True)
class StrengthResult:
    strengths: pa.Table  # LABELS schema, ``label`` still null; one row per complete document
    incomplete: tuple[IncompleteDocument, ...]
    models: tuple[str, ...]  # the benchmarked models, best benchmark score first
    pairs: tuple[tuple[str, str], ...]  # compared pairs as (better model, worse model)
    tied_pairs: tuple[tuple[str, str], ...]  # pairs left out because their benchmark scores tie


def compared_pairs(benchmark: Mapping[str, float]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """All N(N-1)/2 model pairs, split into (better, worse) pairs and pairs whose scores tie.

    A tie says nothing about which model should have the lower loss, so counting such a pair as
    agreeing or disagreeing would be arbitrary: tied pairs are left out of both the agreeing and the
    total count.
    """
    ranked = sorted(benchmark, key=lambda m: (-benchmark[m], m))
    pairs, ties = [], []
    for a, b in combinations(ranked, 2):
        (pairs if benchmark[a] > benchmark[b] else ties).append((a, b))
    return pairs, ties


def predictive_strength(losses: pa.Table, benchmark: Mapping[str, float]) -> StrengthResult:
    """Strength of every document that has a loss for every model in ``benchmark``.

    Rows of models not in ``benchmark`` are ignored (the loss cache holds other models too). A model
    in ``benchmark`` with no row at all is an error: every document would be incomplete, which is a
    wiring mistake rather than a data gap. Documents lacking some of the models are returned in
    ``incomplete`` with the models they lack.
    """
    models, pairs, ties = _check_benchmark(benchmark)
    table = _benchmarked_rows(losses, models)
    doc_ids = pc.unique(table["doc_id"])
    doc_idx = pc.index_in(table["doc_id"], doc_ids).to_numpy()
    model_idx = pc.index_in(table["model"], pa.array(models)).to_numpy()
    n_docs, n_models = len(doc_ids), len(models)

    counts = np.zeros((n_docs, n_models), dtype=np.int64)
    np.add.at(counts, (doc_idx, model_idx), 1)
    if (counts > 1).any():
        d, m = np.argwhere(counts > 1)[0]
        raise LossTableError(
            f"{int((counts > 1).sum())} (model, doc_id) pairs have more than one loss row, "
            f"e.g. model {models[m]!r}, doc_id {doc_ids[int(d)].as_py()!r}"
        )
    bpc = np.full((n_docs, n_models), np.nan)
    bpc[doc_idx, model_idx] = table["bits_per_char"].to_numpy()
    doc_hash = _one_hash_per_document(table, doc_idx, doc_ids)

    present = counts == 1
    complete = present.all(axis=1)
    agreeing = np.zeros(n_docs, dtype=np.int64)
    for better, worse in pairs:
        agreeing += bpc[:, models.index(better)] < bpc[:, models.index(worse)]

    keep = np.flatnonzero(complete)
    order = keep[np.argsort(doc_ids.take(pa.array(keep)).to_numpy(zero_copy_only=False), kind="stable")]
    strengths = pa.table(
        {
            "doc_id": doc_ids.take(pa.array(order)),
            "doc_hash": pa.array(doc_hash[order].tolist(), pa.string()),
            "strength": pa.array(agreeing[order] / len(pairs), pa.float64()),
            "agreeing_pairs": pa.array(agreeing[order], pa.int32()),
            "total_pairs": pa.array(np.full(len(order), len(pairs)), pa.int32()),
            "label": pa.nulls(len(order), pa.string()),
        },
        schema=LABELS,
    )
    incomplete = tuple(
        IncompleteDocument(
            doc_id=doc_ids[int(d)].as_py(),
            doc_hash=str(doc_hash[d]),
            missing_models=tuple(models[m] for m in np.flatnonzero(~present[d])),
        )
        for d in sorted(np.flatnonzero(~complete), key=lambda d: doc_ids[int(d)].as_py())
    )
    return StrengthResult(strengths, incomplete, tuple(models), tuple(pairs), tuple(ties))


def assign_labels(strengths: pa.Table, min_positives: int = DEFAULT_MIN_POSITIVES) -> pa.Table:
    """Label the documents of a strength table (LABELS schema) for training.

    Positives are the documents with perfect agreement (strength 1.0). Negatives are the
    lowest-strength other documents, as many as there are positives, ties broken by doc_hash (then
    doc_id), so the same table always gives the same labels. When fewer non-positive documents exist
    than positives (common with two models, where most documents may agree), the positives are cut
    to the same number, keeping those with the smallest doc_hash: a content hash, so this is an
    order-independent sample. Raises TooFewLabelsError when fewer than ``min_positives`` of each
    class remain.
    """
    strengths = strengths.select(LABELS.names).cast(LABELS)
    agreeing = strengths["agreeing_pairs"].to_numpy()
    total = strengths["total_pairs"].to_numpy()
    hashes = strengths["doc_hash"].to_pylist()
    ids = strengths["doc_id"].to_pylist()
    values = strengths["strength"].to_numpy()

    # integer comparison: strength 1.0 exactly when every compared pair agrees
    positive = [i for i in range(len(ids)) if agreeing[i] == total[i]]
    others = [i for i in range(len(ids)) if agreeing[i] != total[i]]
    n = min(len(positive), len(others))
    if n < min_positives:
        raise TooFewLabelsError(
            f"{len(positive)} documents with strength 1.0 and {len(others)} others: a balanced "
            f"training set needs at least {min_positives} of each (min_positives)"
        )
    positive = sorted(positive, key=lambda i: (hashes[i], ids[i]))[:n]
    negative = sorted(others, key=lambda i: (values[i], hashes[i], ids[i]))[:n]

    labels: list[str | None] = [None] * len(ids)
    for i in positive:
        labels[i] = LABEL_POSITIVE
    for i in negative:
        labels[i] = LABEL_NEGATIVE
    return strengths.set_column(LABELS.get_field_index("label"), LABELS.field("label"), pa.array(labels, pa.string()))


def _check_benchmark(benchmark: Mapping[str, float]) -> tuple[list[str], list, list]:
    if len(benchmark) < 2:
        raise LossTableError(f"predictive strength needs at least 2 benchmarked models, got {sorted(benchmark)}")
    bad = sorted(m for m, s in benchmark.items() if not np.isfinite(s))
    if bad:
        raise LossTableError(f"benchmark scores must be finite numbers; not so for {bad}")
    pairs, ties = compared_pairs(benchmark)
    if not pairs:
        raise LossTableError(f"all benchmark scores tie ({dict(benchmark)}): no model pair can be compared")
    models = sorted(benchmark, key=lambda m: (-benchmark[m], m))
    return models, pairs, ties


def _benchmarked_rows(losses: pa.Table, models: list[str]) -> pa.Table:
    missing_columns = [n for n in LOSSES.names if n not in losses.column_names]
    if missing_columns:
        raise LossTableError(f"loss table lacks column(s) {missing_columns}; expected the LOSSES schema")
    table = losses.select(LOSSES.names).cast(LOSSES)
    table = table.filter(pc.is_in(table["model"], value_set=pa.array(models)))
    absent = sorted(set(models) - set(pc.unique(table["model"]).to_pylist()))
    if absent:
        raise LossTableError(f"no losses at all for benchmarked model(s) {absent}")
    bpc = table["bits_per_char"].to_numpy()
    if not np.isfinite(bpc).all():
        row = int(np.flatnonzero(~np.isfinite(bpc))[0])
        raise LossTableError(
            f"{int((~np.isfinite(bpc)).sum())} loss rows have a non-finite bits_per_char, e.g. model "
            f"{table['model'][row].as_py()!r}, doc_id {table['doc_id'][row].as_py()!r}"
        )
    return table


def _one_hash_per_document(table: pa.Table, doc_idx: np.ndarray, doc_ids: pa.Array) -> np.ndarray:
    """The doc_hash of each document; losses of one doc_id measured on different texts are not
    comparable, so a document whose rows disagree on the hash is an error."""
    hashes = np.asarray(table["doc_hash"].to_pylist(), dtype=object)
    _, first_row = np.unique(doc_idx, return_index=True)  # every document index occurs, in order
    first = hashes[first_row]
    clash = np.flatnonzero(first[doc_idx] != hashes)
    if len(clash):
        d = int(doc_idx[clash[0]])
        raise LossTableError(
            f"doc_id {doc_ids[d].as_py()!r} has losses for different texts (doc_hash "
            f"{first[d]!r} and {hashes[clash[0]]!r}); recompute the losses of one text"
        )
    return first


def rank_normalize(losses: pa.Table) -> pa.Table:
    """Replace each model's bits per character by its percentile rank over the documents (0 = the
    model's best-compressed document, ties share their average rank).

    Not part of the published method, and off by default. With models of one family the raw
    losses cross often enough to label documents; with two models of very different capacity one
    of them is lower on every document, every document gets the same strength and no balanced
    label set exists. Ranking each model's losses removes its global offset, so the pair is
    compared on which documents each model compresses relatively well.
    """
    models = pc.unique(losses["model"]).to_pylist()
    parts = []
    for model in models:
        mine = losses.filter(pc.equal(losses["model"], model))
        values = np.asarray(mine["bits_per_char"].to_pylist(), dtype=float)
        order = values.argsort(kind="stable")
        ranks = np.empty(len(values))
        ranks[order] = np.arange(len(values), dtype=float)
        for value in np.unique(values):  # ties share their average rank
            tied = values == value
            ranks[tied] = ranks[tied].mean()
        denominator = max(len(values) - 1, 1)
        parts.append(
            mine.set_column(mine.schema.get_field_index("bits_per_char"), "bits_per_char", pa.array(ranks / denominator))
        )
    return pa.concat_tables(parts)
