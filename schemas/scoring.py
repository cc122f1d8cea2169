"""Contracts of the model-based scorers (PreSelect and bring-your-own fastText classifiers).

Arrow schemas of the loss cache, the predictive-strength labels and the per-document scores, and the
pydantic settings a scorer is trained and applied with. Like every module in ``schemas/`` this
imports nothing of ours.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

# One row per (model, document): the loss cache. A document's loss depends only on the model and the
# exact text, so rows are keyed by ``doc_hash`` and reusable across runs; ``doc_id`` says which
# document of the scoring run the text came from. ``bits_per_char`` = total_nats / ln 2 / n_chars:
# normalising by characters, not tokens, makes models with different tokenizers comparable.
LOSSES = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("doc_hash", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("n_chars", pa.int64(), nullable=False),
        pa.field("n_tokens", pa.int64(), nullable=False),
        pa.field("total_nats", pa.float64(), nullable=False),
        pa.field("bits_per_char", pa.float64(), nullable=False),
    ]
)

# Predictive strength of each document over the model pairs, and the training label derived from it.
# ``label`` is null for documents that are neither a positive nor one of the balanced negatives.
LABEL_POSITIVE = "positive"
LABEL_NEGATIVE = "negative"
LABELS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("doc_hash", pa.string(), nullable=False),
        pa.field("strength", pa.float64(), nullable=False),  # agreeing_pairs / total_pairs
        pa.field("agreeing_pairs", pa.int32(), nullable=False),
        pa.field("total_pairs", pa.int32(), nullable=False),  # pairs with a benchmark tie excluded
        pa.field("label", pa.string()),  # LABEL_POSITIVE | LABEL_NEGATIVE | null
    ]
)

# A scorer's verdict on a document in a run. ``bucket`` is the Nemotron-CC style integer bucket
# (0 = lowest) when the scorer is part of an ensemble, else null.
SCORES = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("scorer_id", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("bucket", pa.int8()),
    ]
)


# Every scorer's raw score of every document of a run, by input position: the score plan's input
# (bucket edges and the PreSelect threshold need the whole run).
RAW_SCORES = pa.schema(
    [
        pa.field("input_file", pa.string()),
        pa.field("input_row", pa.int64()),
        pa.field("doc_id", pa.string()),
        pa.field("n_chars", pa.int64()),
        pa.field("n_words", pa.int64()),
        pa.field("scorer_id", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("n_tokens", pa.int64()),  # weights the quality buckets (scoring.tokenizer); null without classifiers
    ]
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class FastTextParams(_Strict):
    """Hyper-parameters of the fastText scorer.

    The defaults are those of the PreSelect paper's released training script (Shum et al., 2025,
    "Predictive Data Selection: The Data That Predicts Is the Data That Teaches", arXiv:2503.00808):
    3 epochs, learning rate 0.1, word bigrams; dim 100, minCount 1 and bucket are fastText's
    supervised defaults, which that script leaves unchanged. Names follow fastText's keyword
    arguments so the model can be passed straight to ``fasttext.train_supervised``.
    """

    epoch: int = Field(default=3, ge=1)
    lr: float = Field(default=0.1, gt=0.0)
    wordNgrams: int = Field(default=2, ge=1)  # noqa: N815 (fastText's spelling)
    dim: int = Field(default=100, ge=1)
    minCount: int = Field(default=1, ge=1)  # noqa: N815 (fastText's spelling)
    # Hash buckets for word n-grams, fastText's default (and so the paper's). The model file holds
    # bucket x dim floats: ~800 MB at the default; small corpora and tests do with far fewer.
    bucket: int = Field(default=2_000_000, ge=1)


class SelectionRule(_Strict):
    """Which scored documents to keep: the best ``top_share`` of all characters, or every document
    whose score is at least ``threshold``. Exactly one applies; with neither given, the top 10% of
    characters are kept."""

    top_share: float | None = Field(default=None, gt=0.0, le=1.0)
    threshold: float | None = None

    @model_validator(mode="after")
    def _one_rule(self):
        if self.top_share is not None and self.threshold is not None:
            raise ValueError("give either top_share or threshold, not both")
        if self.top_share is None and self.threshold is None:
            self.top_share = 0.10
        return self


class BringYourOwnClassifier(_Strict):
    """Any fastText classifier (.bin) used as a scorer: the score of a document is the probability
    of ``label``; ``threshold`` keeps documents scoring at least that much when the classifier is
    used on its own."""

    path: str
    label: str  # e.g. "__label__positive" for models trained here, "__label__hq" for DCLM's
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    name: str | None = None  # scorer_id in SCORES; defaults to the file name without suffix

    @property
    def scorer_id(self) -> str:
        if self.name:
            return self.name
        stem = self.path.replace("\\", "/").rsplit("/", 1)[-1]
        return stem.rsplit(".", 1)[0] if "." in stem else stem


# ----------------------------------------------------------------------------- PreSelect training


class PreSelectModel(_Strict):
    name: str
    # a Hugging Face model folder, or the name of a model `make models` prepares
    # ("smollm2-135m-instruct", "gemma3-270m")
    path: str
    benchmark_score: float | None = None  # measured on `benchmark` when not given


class TrainingDocuments(_Strict):
    """Where training documents come from: Parquet globs, or a SQL query over the warehouse that
    returns (doc_id, text) columns."""

    paths: list[str] = Field(default_factory=list)
    text_column: str = "text"
    id_column: str = "doc_id"
    warehouse_query: str | None = None
    limit: int = Field(default=2000, ge=1)  # documents sampled for labelling
    seed: int = 0

    @model_validator(mode="after")
    def _one_source(self):
        if bool(self.paths) == bool(self.warehouse_query):
            raise ValueError("give either paths or warehouse_query")
        return self


class BenchmarkSettings(_Strict):
    path: str | None = None  # MMLU-style jsonl; default: the bundled MMLU test set
    questions: int = Field(default=200, ge=1)
    seed: int = 0


class PreSelectTrainingConfig(_Strict):
    scorer_id: str = "preselect"
    documents: TrainingDocuments
    models: list[PreSelectModel] = Field(min_length=2)
    engine: Literal["vllm", "transformers"] = "vllm"
    max_len: int = Field(default=2048, ge=16)  # model context used for scoring
    overlap: int = Field(default=256, ge=0)  # context tokens carried into each further window
    benchmark: BenchmarkSettings = Field(default_factory=BenchmarkSettings)
    cache_dir: str = "out/preselect/loss-cache"
    output_dir: str = "out/preselect/scorers"
    warehouse: str | None = None  # register the scorer (and read warehouse_query) here
    min_positives: int = Field(default=100, ge=1)
    # "none": the published method, raw bits per character; "rank": each model's losses replaced by
    # their percentile rank over the documents first (see scorers.labels.rank_normalize)
    loss_normalization: Literal["none", "rank"] = "none"
    holdout_fraction: float = Field(default=0.1, ge=0.0, lt=1.0)
    fasttext: FastTextParams = Field(default_factory=FastTextParams)
    seed: int = 0


# ----------------------------------------------------------------------------- scoring in a run


class PreSelectApply(_Strict):
    scorer_dir: str  # a folder `curate preselect train` wrote (model.bin + scorer_card.json)
    rule: SelectionRule = Field(default_factory=SelectionRule)
