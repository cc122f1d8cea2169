"""`curate preselect`: the PreSelect scorer's losses, benchmark scores, training and application.

Each command takes the training config as its positional CONFIG, except `apply`, which needs only
a trained scorer and a warehouse (`--config` optional, as in `curate status`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import reported
from cli.execute import quiet_prefect, train_scorer
from cli.options import FormatOpt, LocalOpt, TrainingConfigArg, VerboseOpt, WarehouseConfigOpt, WarehouseOpt, warehouse_path
from cli.render import (
    OutputFormat,
    out,
    print_applied_scorer,
    print_benchmark,
    print_losses,
    print_trained_scorer,
    progress_bars,
    show,
)
from schemas.config import load_training_config

app = typer.Typer(no_args_is_help=True, help="PreSelect scorer: losses, benchmark scores, training, applying.")


@app.command("losses")
def losses(config: TrainingConfigArg, fmt: FormatOpt = OutputFormat.table) -> None:
    """Compute (or reuse from the cache) every model's loss on the training documents."""
    from scorers.preselect import model_losses, training_documents

    with reported():
        cfg = load_training_config(config)
        sample = training_documents(cfg)
        models = []
        for model in cfg.models:
            with progress_bars("documents"):
                result = model_losses(cfg, model, sample.documents)
            bits_per_char = result.table.column("bits_per_char").to_pylist()
            models.append(
                {
                    "model": result.model,
                    "computed_now": result.computed,
                    "from_cache": len(bits_per_char) - result.computed,
                    "mean_bits_per_char": sum(bits_per_char) / max(len(bits_per_char), 1),
                }
            )
    report = {
        "documents": len(sample.documents),
        "skipped_empty": sample.skipped_empty,
        "cache_dir": cfg.cache_dir,
        "models": models,
    }
    show(report, fmt, print_losses)


@app.command("benchmark")
def benchmark(config: TrainingConfigArg, fmt: FormatOpt = OutputFormat.table) -> None:
    """Measure each model's benchmark accuracy (models with a typed-in score keep it), with its
    standard error; warns when noise could flip the order of some pair."""
    from scorers.preselect import benchmark_score, warn_if_order_within_noise

    with reported():
        cfg = load_training_config(config)
        scores = {model.name: benchmark_score(cfg, model) for model in cfg.models}
        noise = warn_if_order_within_noise(cfg, scores)
    rows = [_benchmark_row(entry) for entry in noise["models"]]
    show(rows, fmt, print_benchmark)


def _benchmark_row(entry: dict) -> dict:
    if entry["score_source"] == "given":
        return {"model": entry["name"], "score": entry["score"], "source": "given"}
    error = "no standard error" if entry["standard_error"] is None else f"standard error {entry['standard_error']:.4f}"
    return {
        "model": entry["name"],
        "score": entry["score"],
        "source": f"measured, {entry['questions']} questions, {error}",
        "questions": entry["questions"],
        "standard_error": entry["standard_error"],
    }


@app.command("train")
def train(config: TrainingConfigArg, local: LocalOpt = False, verbose: VerboseOpt = False) -> None:
    """Losses, benchmark scores, labels, fastText training and the scorer card, in one go."""
    quiet_prefect(verbose)
    with reported():
        scorer_dir = train_scorer(config, load_training_config(config), local)
    print_trained_scorer(scorer_dir)
    out.print(f"scorer folder: {scorer_dir}")
    out.print(f"use it in a run config: scoring: {{enabled: true, preselect: {{scorer_dir: {scorer_dir}}}}}")


@app.command("apply")
def apply(
    scorer_dir: Annotated[Path, typer.Argument(help="a trained scorer folder")],
    run_id: Annotated[str, typer.Option("--run-id", help="a completed run whose documents to score")],
    config: WarehouseConfigOpt = None,
    warehouse: WarehouseOpt = None,
    top_share: Annotated[float | None, typer.Option("--top-share", help="keep this share of characters (default 0.1)")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="or keep scores at or above this")] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Score a completed run's curated documents: scores go to the warehouse `scores` view and the
    selection the rule would make is reported (the run's documents are not changed; to select
    while curating, enable `scoring` in the run config)."""
    from schemas.scoring import SelectionRule
    from scorers.apply import apply_to_run

    with reported():
        rule = SelectionRule(top_share=top_share, threshold=threshold)
        result = apply_to_run(scorer_dir, warehouse_path(config, warehouse), run_id, rule)
    report = {
        "run_id": run_id,
        "scorer_id": result.scorer_id,
        "scorer_dir": str(scorer_dir),
        "documents": result.documents,
        "threshold": result.threshold,
        "kept_docs": result.kept_docs,
        "kept_chars": result.kept_chars,
        "total_chars": result.total_chars,
        "scores_path": str(result.scores_path),
    }
    show(report, fmt, print_applied_scorer)
