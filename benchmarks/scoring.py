"""Sections 4 and 5: model-based scoring.

4. Applying a scorer as the scoring stage does (the same preprocessing, batched prediction and
   label probability) against a bare fastText predict loop over the same texts, in the same
   process: target ratio >= 0.9. Also shown, not targeted: the whole stage (two passes over the
   shards, global threshold, annotated and rejected shards written), whose Parquet I/O a bare
   loop does not do.
5. Loss throughput (tokens/s) of the vLLM engine against transformers on the same documents with
   the bundled SmolLM2-135M, each engine's start-up excluded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq

from schemas.config import config_from_dict
from schemas.scoring import BringYourOwnClassifier, FastTextParams
from scorers import fasttext_scorer
from scorers.ensemble import score_with_classifier

APPLY_TARGET = 0.9


def _texts(files: list[Path]) -> list[str]:
    return [t for f in files for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()]


def _train_scorer(texts: list[str], work: Path) -> Path:
    """A scorer of the real layout; what it learned does not matter for throughput."""
    out = work / "bench-scorer"
    half = len(texts) // 2
    fasttext_scorer.train(
        texts[:half][:400], texts[half:][:400], FastTextParams(bucket=200_000), 0.0, 0, out_path=out / "model.bin"
    )
    (out / "scorer_card.json").write_text(json.dumps({"scorer_id": "bench", "label": fasttext_scorer.POSITIVE}))
    return out


def apply_vs_bare(corpus_dir: Path, files: list[Path], work: Path) -> dict:
    from curation.runner import run_pipeline

    texts = _texts(files)
    scorer = _train_scorer(texts, work)
    model = fasttext_scorer.load(scorer / "model.bin")
    classifier = BringYourOwnClassifier(path=str(scorer / "model.bin"), label=fasttext_scorer.POSITIVE)
    score_with_classifier(classifier, texts[:50])  # warm up: load the model once
    started = time.perf_counter()
    model.predict([fasttext_scorer.preprocess(t) for t in texts], k=-1)  # bare fastText, same preprocessing
    bare_s = time.perf_counter() - started
    started = time.perf_counter()
    score_with_classifier(classifier, texts)
    ours_s = time.perf_counter() - started

    cfg = config_from_dict(
        {
            "input": {"paths": [str(corpus_dir / "*.parquet")]},
            "output": {"root": str(work / "scoring-run")},
            "warehouse": {"path": str(work / "scoring-run" / "warehouse.duckdb")},
            "exact_dedup": {"enabled": False},
            "near_dedup": {"enabled": False},
            "language": {"enabled": False},
            "quality": {"enabled": False},
            "toxicity": {"enabled": False},
            "scoring": {"enabled": True, "preselect": {"scorer_dir": str(scorer), "rule": {"top_share": 0.5}}},
        }
    )
    summary = run_pipeline(cfg, run_id="scoring")
    stage = next(r for r in summary["funnel"] if r["stage"] == "score")
    bare_rate = len(texts) / bare_s
    stage_rate = stage["docs_in"] / stage["seconds"]
    ours_rate = len(texts) / ours_s
    return {
        "docs": len(texts),
        "bare_predict_s": round(bare_s, 3),
        "bare_docs_per_s": round(bare_rate, 1),
        "scorer_s": round(ours_s, 3),
        "scorer_docs_per_s": round(ours_rate, 1),
        "ratio": round(ours_rate / bare_rate, 3),
        "stage_s": stage["seconds"],
        "stage_docs_per_s": round(stage_rate, 1),
        "stage_ratio": round(stage_rate / bare_rate, 3),
        "target": APPLY_TARGET,
    }


def loss_throughput(files: list[Path], n_docs: int = 24) -> dict:
    from scorers.losses import document_losses, make_scorer
    from scorers.models import model_path

    try:
        path = model_path("smollm2-135m-instruct")
    except FileNotFoundError as err:
        return {"skipped": str(err)}
    texts = _texts(files)[:n_docs]
    result = {"model": "smollm2-135m-instruct", "docs": len(texts)}
    for engine in ("vllm", "transformers"):
        scorer = make_scorer(engine, path, max_len=1024)
        document_losses(scorer, texts[:2], scorer.bos_id)  # warm up
        started = time.perf_counter()
        losses = document_losses(scorer, texts, scorer.bos_id)
        seconds = time.perf_counter() - started
        tokens = sum(loss.n_tokens for loss in losses)
        result[engine] = {"tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1)}
        del scorer
    result["ratio_vllm_over_transformers"] = round(result["vllm"]["tokens_per_s"] / result["transformers"]["tokens_per_s"], 2)
    return result
