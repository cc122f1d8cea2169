"""PreSelect training as a Prefect flow: one benchmark task per model, a warning when noise could
flip the benchmark order, then one loss task per model, then labelling and training, then
registration in the warehouse.

Models run one after another: each holds a language-model engine, and on a small machine two
at once only compete for the same cores.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import publish_scorer_card
from schemas.config import load_training_config
from schemas.scoring import PreSelectModel, PreSelectTrainingConfig
from scorers.card import CARD_MD
from scorers.loss_cache import CacheDocument
from scorers.preselect import (
    ModelLosses,
    TrainingSample,
    benchmark_noise,
    benchmark_score,
    load_card,
    model_losses,
    train_scorer,
    training_documents,
)
from warehouse.warehouse import Warehouse


@task(cache_policy=NO_CACHE, task_run_name="benchmark-{model.name}")
def benchmark_task(cfg: PreSelectTrainingConfig, model: PreSelectModel) -> float:
    return benchmark_score(cfg, model)


@task(cache_policy=NO_CACHE, task_run_name="losses-{model.name}")
def losses_task(cfg: PreSelectTrainingConfig, model: PreSelectModel, documents: list[CacheDocument]) -> ModelLosses:
    return model_losses(cfg, model, documents)


@task(cache_policy=NO_CACHE)
def train_task(cfg: PreSelectTrainingConfig, losses: list[ModelLosses], scores: dict[str, float], sample: TrainingSample) -> str:
    return str(train_scorer(cfg, losses, scores, sample))


def register(cfg: PreSelectTrainingConfig, scorer_dir: Path) -> None:
    if cfg.warehouse:
        Warehouse(cfg.warehouse).register_scorer(cfg.scorer_id, scorer_dir, load_card(scorer_dir))


@flow(name="preselect-train")
def preselect_flow(config_path: str) -> str:
    logger = get_run_logger()
    cfg = load_training_config(config_path)
    sample = training_documents(cfg)
    logger.info(
        "%d training documents (%d empty and %d not UTF-8 skipped), %d models",
        len(sample.documents),
        sample.skipped_empty,
        sample.skipped_invalid_utf8,
        len(cfg.models),
    )
    # benchmark first: the losses are the long step, and an order noise could flip is worth a warning before it
    scores = {model.name: benchmark_task(cfg, model) for model in cfg.models}
    noise = benchmark_noise(cfg, scores)
    if noise["warning"]:
        logger.warning("%s", noise["warning"])
    losses = [losses_task(cfg, model, sample.documents) for model in cfg.models]
    for model, result in zip(cfg.models, losses):
        logger.info("%s: %d losses computed now, benchmark score %.3f", model.name, result.computed, scores[model.name])
    scorer_dir = Path(train_task(cfg, losses, scores, sample))
    register(cfg, scorer_dir)
    publish_scorer_card(scorer_dir / CARD_MD)
    return str(scorer_dir)
