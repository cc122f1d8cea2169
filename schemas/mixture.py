"""Contracts of a mixture: the spec a user writes, the records and manifest `curate mix` emits,
and what decontamination removes.

A mixture is what a continual pre-training run trains on: named sources (curated documents,
synthetic records, external replay data) sampled to target token shares, decontaminated against
evaluation sets, shuffled, and written as checksummed Parquet shards with a manifest.

Defaults come from the literature (README, "Mixtures"):
- real : synthetic 1 : 1 — WRAP (Maini et al. 2024, "Rephrasing the Web");
- replay of the original pre-training distribution 5% (weak shift) or 25% (strong shift) —
  Ibrahim et al. 2024, "Simple and Scalable Strategies to Continually Pre-train Large Language Models";
- at most 4 epochs of any repeated source — Muennighoff et al. 2023, "Scaling Data-Constrained
  Language Models" (up to ~4 epochs cost about as little as fresh data).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MANIFEST_SCHEMA_VERSION = 1
DEFAULT_MAX_EPOCHS = 4.0  # Muennighoff et al. 2023
REPLAY_SHARE = {"weak": 0.05, "strong": 0.25}  # Ibrahim et al. 2024
SYNTHETIC_PER_REAL = 1.0  # WRAP, Maini et al. 2024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class _Source(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # also a file and folder name in exports
    weight: float = Field(gt=0)  # target share of the mixture's tokens
    max_epochs: float = Field(default=DEFAULT_MAX_EPOCHS, gt=0)  # passes over the source, at most
    where: str | None = None  # a SQL condition over the source's view


class DocumentsSource(_Source):
    """Curated documents: rows of the warehouse view `documents`."""

    kind: Literal["documents"]
    runs: list[str] = Field(default_factory=list)  # empty: every completed run


class SyntheticSource(_Source):
    """Accepted synthetic records: rows of the warehouse view `synthetic`.

    A synthetic record whose source document is not in any `documents` source of the same mixture
    (not selected there, or removed by decontamination) is left out: its source was judged not worth
    training on. `include_unselected_sources: true` keeps such records. The rule applies only where
    the mixture has a `documents` source at all."""

    kind: Literal["synthetic"]
    styles: list[str] = Field(default_factory=list)  # empty: every style
    rewrite_ids: list[str] = Field(default_factory=list)  # empty: every completed rewrite
    include_unselected_sources: bool = False


class ReplaySource(_Source):
    """External text (a sample of the original pre-training distribution), Parquet or JSONL."""

    kind: Literal["replay"]
    paths: list[str] = Field(min_length=1)
    text_column: str = "text"
    format: Literal["auto", "parquet", "jsonl"] = "auto"  # auto: from the file extension
    language: str | None = None  # its records' language (a language-ID code), for eval sets that name one


Source = Annotated[DocumentsSource | SyntheticSource | ReplaySource, Field(discriminator="kind")]


class TokenizerSpec(_Strict):
    """The trainer's tokenizer: a `tokenizer.json`, a Hugging Face model folder, or a prepared model's name."""

    path: str = "smollm2-135m-instruct"
    append_eos: bool = True  # every document ends with the end-of-sequence token, counted in its tokens
    eos_token: str | None = None  # default: the folder's declared eos_token


class EvalSetSpec(_Strict):
    """An evaluation set to decontaminate against: JSONL or Parquet with a text column, or a
    question column plus a choices column (a list), as MMLU has. `path: null` is the bundled MMLU test set."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    path: str | None = None
    format: Literal["auto", "parquet", "jsonl"] = "auto"
    text_column: str | None = None
    question_column: str = "question"
    choices_column: str | None = "choices"
    # a language-ID code: only records in that language are checked against the set (and records
    # whose language is unknown, e.g. replay without `language`); None: every record
    language: str | None = None


class DecontaminationSpec(_Strict):
    enabled: bool = True
    n_gram: int = Field(default=13, ge=3)  # words; 13 as in GPT-3's contamination analysis (Brown et al. 2020)
    eval_sets: list[EvalSetSpec] = Field(default_factory=lambda: [EvalSetSpec(name="mmlu")])


class MixtureSpec(_Strict):
    mixture_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    warehouse: str = "warehouse/curation.duckdb"
    output_root: str = "out"  # the mixture goes to <output_root>/mixtures/<mixture_id>/
    target_tokens: int = Field(gt=0)
    seed: int = 0
    normalize: bool = False  # rescale weights that do not sum to 1
    shard_tokens: int = Field(default=100_000_000, gt=0)  # a shard closes once it holds this many tokens
    # megabytes of text per bucket of the global shuffle, which holds one bucket at a time, as
    # read and in order (about twice this); the rest waits in a spill file. The shards are the
    # same bytes whatever it is
    shuffle_buffer_mb: float = Field(default=256, gt=0)
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    decontamination: DecontaminationSpec = Field(default_factory=DecontaminationSpec)
    sources: list[Source] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list) -> list:
        names = [s.name for s in sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"source names must be unique; repeated: {duplicated}")
        return sources

    @model_validator(mode="after")
    def _weights_sum_to_one(self):
        total = sum(s.weight for s in self.sources)
        if self.normalize:
            for s in self.sources:
                s.weight = s.weight / total
        elif not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"source weights sum to {total:.6g}, not 1: fix the weights or set `normalize: true`")
        return self

    def spec_hash(self) -> str:
        """SHA-256 of the canonical JSON of the spec: what the manifest is reproducible from (the
        shuffle's buffer is not: it changes how the shards are made, not their bytes)."""
        canonical = self.model_dump(mode="json", exclude={"shuffle_buffer_mb"})
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    @property
    def shuffle_buffer_bytes(self) -> int:
        return max(1, int(self.shuffle_buffer_mb * 1024 * 1024))

    @property
    def directory_name(self) -> str:
        return f"mixtures/{self.mixture_id}"


# One emitted record. Shards hold these rows in the mixture's (shuffled) order; `position` is the
# record's place in the whole mixture, so shards concatenated in manifest order are the training order.
MIXTURE_RECORD = pa.schema(
    [
        pa.field("position", pa.int64(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("tokens", pa.int64(), nullable=False),  # with the manifest's tokenizer, eos included when appended
        pa.field("source", pa.string(), nullable=False),  # the spec's source name
        pa.field("source_kind", pa.string(), nullable=False),  # documents | synthetic | replay
        pa.field("epoch", pa.int32(), nullable=False),  # 0 for a record's first copy, 1 for its second, ...
        pa.field("record_id", pa.string(), nullable=False),  # doc_id, synthetic record_id, or replay file#row
        pa.field("doc_id", pa.string()),  # the curated document (a synthetic record's source document)
        pa.field("run_id", pa.string()),  # the run that curated doc_id
        pa.field("rewrite_id", pa.string()),
        pa.field("style", pa.string()),
        pa.field("replay_file", pa.string()),
        pa.field("replay_row", pa.int64()),
        pa.field("mixture_id", pa.string(), nullable=False),
    ]
)

# A record decontamination removed, with the evaluation set and the n-gram it shares with it.
DECONTAMINATED = pa.schema(
    [
        pa.field("mixture_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string()),
        pa.field("eval_set", pa.string(), nullable=False),
        pa.field("ngram", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
    ]
)

EXPORT_FORMATS = ("hf", "megatron", "mds", "nanotron")


def starter_spec_yaml(preset: str = "weak") -> str:
    """A commented spec with every default; `preset` sets the replay share (weak or strong shift)."""
    replay = REPLAY_SHARE[preset]
    real = synthetic = (1 - replay) / (1 + SYNTHETIC_PER_REAL)
    return f"""\
# cpt-curate mixture spec. Relative paths are resolved against this file's folder; unknown keys are an error.
# `curate mix THIS.yaml` writes <output_root>/mixtures/<mixture_id>/ (shards + manifest.json).
mixture_id: my-mixture
warehouse: warehouse/curation.duckdb
output_root: out
target_tokens: 1000000        # tokens of the whole mixture, counted with `tokenizer`
seed: 0                       # same spec + same warehouse + same seed = byte-identical shards
normalize: false              # true: rescale weights that do not sum to 1 (else an error)
shard_tokens: 100000000       # a shard closes once it holds this many tokens
shuffle_buffer_mb: 256        # text per shuffle bucket in memory (~2x at once); the rest waits on disk (same shards)

tokenizer:
  path: smollm2-135m-instruct # the trainer's tokenizer: tokenizer.json, a model folder or a prepared model
  append_eos: true            # every document ends with the eos token, counted in its tokens
  eos_token: null             # default: the folder's declared eos_token

decontamination:              # records sharing an n-gram with an eval set are removed (and kept in `decontaminated`)
  enabled: true
  n_gram: 13                  # words
  eval_sets:
    - name: mmlu              # path: null = the bundled MMLU test set
    # - {{name: my-eval, path: evals/my.jsonl, text_column: text}}
    # - {{name: my-mcq, path: evals/mcq.parquet, question_column: question, choices_column: choices}}
    # - {{name: my-fr-eval, path: evals/fr.jsonl, text_column: text, language: fr}}  # French records only

# Weights are target shares of tokens. Preset "{preset}" shift: real : synthetic 1 : 1 (WRAP, Maini et
# al. 2024) and {replay:.0%} replay of the original distribution (Ibrahim et al. 2024: 5% weak shift, 25%
# strong). max_epochs: 4 (Muennighoff et al. 2023: up to ~4 epochs of repeated data cost little).
sources:
  - name: curated
    kind: documents           # rows of the warehouse view `documents`
    weight: {real:.4g}
    runs: []                  # empty: every completed run
    where: null               # SQL over `documents`, e.g. "preselect_score > 0.3 AND language = 'en'"
    max_epochs: 4
  - name: synthetic
    kind: synthetic           # accepted records of the view `synthetic`
    weight: {synthetic:.4g}
    styles: []                # empty: every style
    rewrite_ids: []           # empty: every completed rewrite
    where: null
    max_epochs: 4
    include_unselected_sources: false  # true: keep records whose source document no documents source selected
  - name: replay
    kind: replay              # a sample of the original pre-training data: Parquet or JSONL
    weight: {replay:.4g}
    paths: [replay/sample.parquet]
    text_column: text
    language: null            # its records' language, for eval sets that name one (null: unknown, meets them all)
    max_epochs: 4
"""
