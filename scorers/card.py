"""The scorer card: what a trained scorer was made from and how well it held out, as JSON (for
machines) and Markdown (for people).

A card is a plain dict that callers fill; ``card_from_training`` assembles the usual one from the
pieces a PreSelect training produces, and ``write_card`` checks the required keys, adds the pair
counts derived from the models, and writes both files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas.scoring import LABEL_NEGATIVE, LABEL_POSITIVE, FastTextParams
from scorers.fasttext_scorer import TrainResult
from scorers.labels import compared_pairs
from warehouse.files import sha256_file, write_text_atomic

__all__ = ["REQUIRED_KEYS", "card_from_training", "pair_summary", "render_markdown", "write_card"]

CARD_JSON = "scorer_card.json"
CARD_MD = "scorer_card.md"
REQUIRED_KEYS = ("models", "labels", "fasttext_params", "holdout", "sha256", "top_features")
# optional per-model keys: where the score comes from and, when measured, how precise it is
MODEL_NOISE_KEYS = ("score_source", "questions", "standard_error")


def pair_summary(models: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How many model pairs a strength is computed over, and what that means for its values."""
    benchmark = {m["name"]: float(m["benchmark_score"]) for m in models}
    pairs, ties = compared_pairs(benchmark)
    n = len(benchmark)
    notes = []
    if n == 2:
        notes.append("2 models give a single pair, so each document's strength is 0 or 1.")
    elif len(pairs) == 1:
        notes.append("Only one pair has distinct benchmark scores, so each document's strength is 0 or 1.")
    if ties:
        notes.append(f"{len(ties)} pair(s) with tied benchmark scores are left out of the count.")
    return {
        "n_models": n,
        "n_pairs": n * (n - 1) // 2,
        "n_compared_pairs": len(pairs),
        "n_tied_pairs": len(ties),
        "pairs_note": " ".join(notes),
    }


def card_from_training(
    *,
    models: Sequence[Mapping[str, Any]],
    labels: pa.Table,
    result: TrainResult,
    top_features: Mapping[str, Sequence[tuple[str, float]]],
    incomplete_documents: int = 0,
) -> dict[str, Any]:
    """The card of a PreSelect scorer. ``models``: [{"name", "path", "benchmark_score"}];
    ``labels``: the LABELS table it was trained from; ``result``: what ``fasttext_scorer.train``
    returned. Callers may add keys before writing."""
    counts = pc.value_counts(labels["label"]).to_pylist() if len(labels) else []
    by_label = {c["values"]: c["counts"] for c in counts}
    return {
        "scorer": "preselect-fasttext",
        "models": [_model_entry(m) for m in models],
        "labels": {
            "documents": len(labels),
            "positive": by_label.get(LABEL_POSITIVE, 0),
            "negative": by_label.get(LABEL_NEGATIVE, 0),
            "unlabelled": by_label.get(None, 0),
            "incomplete_documents": incomplete_documents,  # lacked a loss of some model
        },
        "fasttext_params": FastTextParams.model_validate(result.params).model_dump(),
        "seed": result.seed,
        "training": {"train": dict(result.n_train), "holdout": dict(result.n_holdout)},
        "holdout": {"accuracy": result.accuracy, "roc_auc": result.roc_auc},
        "sha256": {
            "model": sha256_file(result.model_path),
            "training_data": sha256_file(result.train_path),
            "holdout_data": sha256_file(result.holdout_path) if result.holdout_path else None,
        },
        "model_path": str(result.model_path),
        "top_features": {label: [[w, round(float(x), 6)] for w, x in feats] for label, feats in top_features.items()},
    }


def _model_entry(model: Mapping[str, Any]) -> dict[str, Any]:
    entry = {"name": model["name"], "path": model.get("path"), "benchmark_score": model["benchmark_score"]}
    entry.update({k: model[k] for k in MODEL_NOISE_KEYS if k in model})
    return entry


def write_card(out_dir: str | Path, card: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``scorer_card.json`` and ``scorer_card.md`` into ``out_dir``; return both paths."""
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise KeyError(f"scorer card lacks {missing}; required: {list(REQUIRED_KEYS)}")
    card = {**card, **{k: v for k, v in pair_summary(card["models"]).items() if k not in card}}
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / CARD_JSON, out_dir / CARD_MD
    write_text_atomic(json_path, json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n")
    write_text_atomic(md_path, render_markdown(card))
    return json_path, md_path


def render_markdown(card: Mapping[str, Any]) -> str:
    lines = [f"# Scorer card: {card.get('scorer', 'scorer')}", "", "## Models", ""]
    lines += ["| model | path | benchmark score | questions | standard error |", "|---|---|---|---|---|"]
    lines += [
        f"| {m['name']} | {m.get('path') or ''} | {m['benchmark_score']} | {_questions_cell(m)} | {_error_cell(m)} |"
        for m in card["models"]
    ]
    lines += [
        "",
        f"{card['n_models']} models, {_count(card['n_pairs'], 'pair')}, {card['n_compared_pairs']} "
        f"compared (pairs with tied benchmark scores are not counted). {card['pairs_note']}".rstrip(),
        "",
        "## Labels",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in card["labels"].items()]
    lines += _noise_lines(card.get("benchmark_noise"))
    lines += ["", "## fastText parameters", ""]
    lines += [f"- {k}: {v}" for k, v in card["fasttext_params"].items()]
    lines += ["", "## Held-out evaluation", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in card["holdout"].items()]
    method = {
        k: card[k]
        for k in (
            "scorer_id",
            "engine",
            "loss_normalization",
            "benchmark",
            "skipped_empty_documents",
            "skipped_invalid_utf8_documents",
        )
        if k in card
    }
    if method:
        lines += ["", "## Method", ""]
        lines += [f"- {k}: {v}" for k, v in method.items()]
    if card.get("method_notes"):
        lines += ["", "## Method notes: deliberate differences from PreSelect", ""]
        lines += [f"- {note}" for note in card["method_notes"]]
    lines += ["", "## SHA-256", ""]
    lines += [f"- {k}: `{v}`" for k, v in card["sha256"].items()]
    lines += ["", "## Top features", ""]
    for label, feats in card["top_features"].items():
        lines += [f"### {label}", "", "| word | weight |", "|---|---|"]
        lines += [f"| {_md_cell(w)} | {_fmt(x)} |" for w, x in feats]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("`", "\\`")


def _questions_cell(model: Mapping[str, Any]) -> str:
    if model.get("questions") is not None:
        return str(model["questions"])
    return "none (score given)" if model.get("score_source") == "given" else ""


def _error_cell(model: Mapping[str, Any]) -> str:
    if model.get("standard_error") is not None:
        return f"{model['standard_error']:.4f}"
    return "none (score given, no n)" if model.get("score_source") == "given" else ""


def _noise_lines(noise: Mapping[str, Any] | None) -> list[str]:
    """The benchmark-noise section: the rule, each compared pair's verdict, and the warning."""
    if not noise:
        return []
    lines = ["", "## Benchmark noise", "", f"Rule: {noise['rule']}", ""]
    if noise.get("warning"):
        lines += [f"**Warning:** {noise['warning']}", ""]
    lines += ["| better | worse | difference | combined se | z | order |", "|---|---|---|---|---|---|"]
    for p in noise["pairs"]:
        verdict = {True: "within noise", False: "separated", None: p.get("note") or "not assessed"}[p["within_noise"]]
        combined = "" if p["combined_se"] is None else f"{p['combined_se']:.4f}"
        z = "" if p["z"] is None else f"{p['z']:.2f}"
        lines.append(f"| {p['better']} | {p['worse']} | {p['difference']:.4f} | {combined} | {z} | {verdict} |")
    notes = [f"- {m['name']}: {m['note']}" for m in noise.get("models", []) if m.get("note")]
    return lines + ([""] + notes if notes else [])
