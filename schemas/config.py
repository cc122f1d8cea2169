"""The run configuration: YAML, validated on load, every error naming the offending key."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.scoring import BringYourOwnClassifier, PreSelectApply, PreSelectTrainingConfig


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class InputConfig(_Strict):
    paths: list[str] = Field(min_length=1, description="local globs or fsspec URLs of Parquet shards")
    text_column: str = "text"
    id_column: str = "id"
    # logical field -> physical column name, for the optional fields
    columns: dict[Literal["url", "source", "crawl_date", "language", "metadata"], str] = Field(
        default_factory=lambda: {
            "url": "url",
            "source": "source",
            "crawl_date": "crawl_date",
            "language": "language",
            "metadata": "metadata",
        }
    )
    source: str | None = None  # label for documents whose shard has no source column
    batch_size: int = Field(default=2000, ge=1)
    # continual curation: leave out input files whose content (sha256) a completed run of this
    # warehouse already curated; every run records its input files either way
    skip_curated: bool = False


class OutputConfig(_Strict):
    root: str = "out"


class WarehouseConfig(_Strict):
    path: str = "warehouse/curation.duckdb"


class IngestConfig(_Strict):
    max_chars: int = Field(default=1_000_000, ge=1)
    min_chars: int = Field(default=1, ge=1)


class ExactDedupConfig(_Strict):
    enabled: bool = True
    against_warehouse: bool = True


class NearDedupConfig(_Strict):
    enabled: bool = True
    against_warehouse: bool = True
    n_grams: int = Field(default=5, ge=1)
    num_buckets: int = Field(default=14, ge=1)
    hashes_per_bucket: int = Field(default=8, ge=1)
    seed: int = 1


def _check_params(cls_path: str, params: dict[str, Any], owned: set[str]) -> dict[str, Any]:
    """Reject keyword arguments the wrapped datatrove filter does not take."""
    module_name, cls_name = cls_path.rsplit(".", 1)
    module = __import__(module_name, fromlist=[cls_name])
    accepted = set(inspect.signature(getattr(module, cls_name).__init__).parameters) - {"self"} - owned
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; {cls_name} accepts {sorted(accepted)}")
    return params


class FilterConfig(_Strict):
    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)

    # the datatrove filter that `params` are passed to, and the arguments the pipeline sets itself
    _datatrove_class: ClassVar[str] = ""
    _owned: ClassVar[set[str]] = {"exclusion_writer", "language"}

    @field_validator("params")
    @classmethod
    def _params(cls, v):
        return _check_params(cls._datatrove_class, v, cls._owned)


class GopherRepetitionConfig(FilterConfig):
    _datatrove_class: ClassVar[str] = "datatrove.pipeline.filters.GopherRepetitionFilter"


class GopherQualityConfig(FilterConfig):
    _datatrove_class: ClassVar[str] = "datatrove.pipeline.filters.GopherQualityFilter"
    # "tokens": datatrove's rule as is (punctuation tokens count as words in the 80%-alphabetic
    # check); "words": the rule applied to words only, as the Gopher paper describes it.
    alpha_words_rule: Literal["words", "tokens"] = "words"


class C4Config(FilterConfig):
    _datatrove_class: ClassVar[str] = "datatrove.pipeline.filters.C4QualityFilter"


class FineWebConfig(FilterConfig):
    _datatrove_class: ClassVar[str] = "datatrove.pipeline.filters.FineWebQualityFilter"


class UrlBlocklistConfig(FilterConfig):
    _datatrove_class: ClassVar[str] = "datatrove.pipeline.filters.URLFilter"
    _owned: ClassVar[set[str]] = {"exclusion_writer"}


class GopherRepetitionOverride(GopherRepetitionConfig):
    enabled: bool | None = None  # None: as the default block


class GopherQualityOverride(GopherQualityConfig):
    enabled: bool | None = None
    alpha_words_rule: Literal["words", "tokens"] | None = None


class C4Override(C4Config):
    enabled: bool | None = None


class FineWebOverride(FineWebConfig):
    enabled: bool | None = None


_LANGUAGE_FILTERS = ("gopher_repetition", "gopher_quality", "c4", "fineweb")
BUNDLED = "bundled"
BUNDLED_LANGUAGES_DIR = Path(__file__).parent / "quality_languages"


class LanguageQuality(_Strict):
    """One language's quality settings: its word tokenizer and, per filter, what differs from the
    default block (params given here replace the default's params of the same name). Written by
    `curate calibrate`, which also records how in `calibration`."""

    word_tokenizer: str | None = None  # a datatrove word-tokenizer language; None: the language code
    gopher_repetition: GopherRepetitionOverride | None = None
    gopher_quality: GopherQualityOverride | None = None
    c4: C4Override | None = None
    fineweb: FineWebOverride | None = None
    calibration: dict[str, Any] | None = None  # provenance only: the reference, its size, per-rule drop shares

    @field_validator("word_tokenizer")
    @classmethod
    def _known_tokenizer(cls, v):
        if v is not None and not has_word_tokenizer(v):
            raise ValueError(f"datatrove has no word tokenizer for {v!r}")
        return v


def has_word_tokenizer(language: str) -> bool:
    from datatrove.utils.word_tokenizers import load_tokenizer_assignments

    return language in load_tokenizer_assignments()


def bundled_language_quality(code: str) -> LanguageQuality | None:
    """The calibrated block shipped for `code` (schemas/quality_languages/<code>.yaml), or None."""
    path = BUNDLED_LANGUAGES_DIR / f"{code}.yaml"
    if not path.is_file():
        return None
    return LanguageQuality.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def bundled_quality_languages() -> list[str]:
    return sorted(p.stem for p in BUNDLED_LANGUAGES_DIR.glob("*.yaml"))


class QualityConfig(_Strict):
    """The default block (English rules: datatrove's defaults, spaCy's English word splitting) and
    per-language blocks over it, keyed by the language stage's codes. A language's entry is a block,
    `bundled` (the calibrated block shipped for it) or the path of a block file; allowed languages
    other than English with no entry get their bundled block when there is one."""

    enabled: bool = True
    word_tokenizer: str = "eng"
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    url_blocklist: UrlBlocklistConfig = Field(default_factory=UrlBlocklistConfig)
    languages: dict[str, LanguageQuality | str] = Field(default_factory=dict)

    def for_language(self, code: str | None) -> QualityConfig:
        """The settings a document in language `code` is filtered with: the default block, with the
        language's block (when it has one) laid over it."""
        block = self.languages.get(code) if code else None
        if not isinstance(block, LanguageQuality):
            return self.model_copy(update={"languages": {}})
        update: dict[str, Any] = {"languages": {}, "word_tokenizer": block.word_tokenizer or code}
        for name in _LANGUAGE_FILTERS:
            override = getattr(block, name)
            if override is None:
                continue
            base = getattr(self, name)
            merged = base.model_dump()
            merged["params"] = {**base.params, **override.params}
            for key, value in override.model_dump(exclude={"params"}).items():
                if value is not None:
                    merged[key] = value
            update[name] = type(base).model_validate(merged)
        return self.model_copy(update=update)


class LanguageConfig(_Strict):
    enabled: bool = True
    model_path: str | None = None  # default: the lid.176.ftz bundled by `make assets`
    allowed: list[str] = Field(default_factory=lambda: ["en"])
    min_score: float = Field(default=0.65, ge=0.0, le=1.0)


class ToxicityClassifierConfig(_Strict):
    path: str
    label: str = "__label__toxic"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


class ToxicityConfig(_Strict):
    enabled: bool = True
    wordlist_dir: str | None = None  # default: the LDNOOBW lists bundled by `make assets`
    max_score: float = Field(default=0.01, ge=0.0, le=1.0)  # flagged words per word
    min_matches: int = Field(default=2, ge=1)
    classifier: ToxicityClassifierConfig | None = None


class PiiConfig(_Strict):
    enabled: bool = False
    emails: bool = True
    phones: bool = True
    ips: bool = True


class ScoringConfig(_Strict):
    """Model-based scoring in a run: a PreSelect scorer (keeps the top share or a threshold; its
    score is the `preselect_score` column) and bring-your-own fastText quality classifiers, whose
    Nemotron-CC buckets of equal token mass (max over the classifiers only) go to the `quality_bucket`
    column for the rewrite stage to route on; with no classifier `quality_bucket` stays null."""

    enabled: bool = False
    preselect: PreSelectApply | None = None
    classifiers: list[BringYourOwnClassifier] = Field(default_factory=list)
    buckets: int = Field(default=20, ge=2, le=100)
    # counts the tokens that weight the buckets: a tokenizer.json, a model folder or a prepared model
    # (the mixtures' default); end-of-document tokens are not counted
    tokenizer: str = "smollm2-135m-instruct"

    @model_validator(mode="after")
    def _something_to_score(self):
        if self.enabled and self.preselect is None and not self.classifiers:
            raise ValueError("scoring is enabled but names neither a preselect scorer nor classifiers")
        return self


class ExecutionConfig(_Strict):
    # process: a pool of worker processes on this machine (every core, no lock between shards);
    # thread: threads in this process (they only overlap I/O: spaCy is serialised per process);
    # dask: a Dask cluster, local or at dask_address, when one machine is not enough
    task_runner: Literal["process", "thread", "dask"] = "process"
    # None: a worker process per core (process, local Dask) or one thread (thread)
    max_workers: int | None = Field(default=None, ge=1)
    dask_address: str | None = None  # reuse a running cluster; None starts a local one

    @property
    def workers(self) -> int:
        if self.max_workers:
            return self.max_workers
        return 1 if self.task_runner == "thread" else (os.cpu_count() or 1)


class RunConfig(_Strict):
    input: InputConfig
    output: OutputConfig = Field(default_factory=OutputConfig)
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    exact_dedup: ExactDedupConfig = Field(default_factory=ExactDedupConfig)
    near_dedup: NearDedupConfig = Field(default_factory=NearDedupConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    language: LanguageConfig = Field(default_factory=LanguageConfig)
    toxicity: ToxicityConfig = Field(default_factory=ToxicityConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    base_dir: str | None = Field(default=None, exclude=True)  # set from the config file's folder

    @model_validator(mode="after")
    def _quality_fits_the_allowed_languages(self):
        """Every allowed language is judged with settings made for it: its own block, its bundled
        block, or (English only) the default block. Gopher's rule counts English stop words, so
        English rules on another language drop nearly all of it (French and Spanish Wikipedia
        leads: 9 of 6,926 kept), silently: such a config is refused, naming the languages."""
        quality, language = self.quality, self.language
        for code, entry in list(quality.languages.items()):
            if entry == BUNDLED:
                bundled = bundled_language_quality(code)
                if bundled is None:
                    raise ValueError(
                        f"quality.languages.{code} is 'bundled', but no calibrated block ships for {code} "
                        f"(bundled: {', '.join(bundled_quality_languages())}); {_calibrate_hint(code)}"
                    )
                quality.languages[code] = bundled
            elif isinstance(entry, str):
                quality.languages[code] = _read_language_block(self._resolved(entry), f"quality.languages.{code}")
        if not (quality.enabled and language.enabled):
            return self
        if not language.allowed:
            if quality.gopher_quality.enabled and "stop_words" not in quality.gopher_quality.params:
                raise ValueError(
                    "language.allowed is empty (every language is kept), but a document in a language with no quality "
                    "settings would be judged by the English rules (quality.gopher_quality counts English stop words) "
                    "and nearly all of it dropped as gopher_enough_stop_words: list the languages in language.allowed"
                )
            return self
        missing = []
        for code in language.allowed:
            if code == "en" or code in quality.languages:
                continue
            bundled = bundled_language_quality(code)
            if bundled is not None:
                quality.languages[code] = bundled
            elif quality.gopher_quality.enabled and "stop_words" not in quality.gopher_quality.params:
                missing.append(code)
        if missing:
            listed = ", ".join(missing)
            raise ValueError(
                f"language.allowed lists {listed}, but the quality stage has no settings for {listed} (bundled: "
                f"{', '.join(bundled_quality_languages())}); the English rules (quality.gopher_quality counts English "
                f"stop words) would drop nearly every {listed} document as gopher_enough_stop_words. "
                f"{_calibrate_hint(missing[0])}, or set quality.gopher_quality.enabled: false"
            )
        return self

    def _resolved(self, path: str) -> str:
        return _resolver(Path(self.base_dir))(path) if self.base_dir else path

    @model_validator(mode="after")
    def _resolve_relative_paths(self):
        if self.base_dir is None:
            return self
        resolve = _resolver(Path(self.base_dir))
        self.input.paths = [resolve(p) for p in self.input.paths]
        self.output.root = resolve(self.output.root)
        self.warehouse.path = resolve(self.warehouse.path)
        self.language.model_path = resolve(self.language.model_path)
        self.toxicity.wordlist_dir = resolve(self.toxicity.wordlist_dir)
        if self.toxicity.classifier:
            self.toxicity.classifier.path = resolve(self.toxicity.classifier.path)
        if self.scoring.preselect:
            self.scoring.preselect.scorer_dir = resolve(self.scoring.preselect.scorer_dir)
        for classifier in self.scoring.classifiers:
            classifier.path = resolve(classifier.path)
        if "/" in self.scoring.tokenizer or self.scoring.tokenizer.startswith("."):  # a bare name is a prepared model
            self.scoring.tokenizer = resolve(self.scoring.tokenizer)
        return self


def _calibrate_hint(code: str) -> str:
    return (
        f"make one with `curate calibrate REFERENCE --language {code} --out quality-{code}.yaml` on text you trust "
        f"in that language and set quality.languages.{code}: quality-{code}.yaml"
    )


def _read_language_block(path: str, key: str) -> LanguageQuality:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ValueError(f"{key}: cannot read {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{key}: invalid YAML in {path}: {err}") from None
    try:
        return LanguageQuality.model_validate(data)
    except ValidationError as err:
        raise ValueError(_format_errors(f"{path} ({key})", err)) from None


def _resolver(base: Path):
    def resolve(p: str | None) -> str | None:
        if p is None or "://" in p or Path(p).is_absolute():
            return p
        return str((base / p).resolve())

    return resolve


def _read_yaml_model(path: Path, model: type[BaseModel]):
    """A YAML file validated as `model`; every failure a ConfigError naming the file (and key)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML in config {path}: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {path}: the top level must be a mapping of keys")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(str(path), err)) from None


def load_training_config(path: str | Path) -> PreSelectTrainingConfig:
    """The PreSelect training config (YAML), with paths resolved against its folder."""
    path = Path(path)
    cfg = _read_yaml_model(path, PreSelectTrainingConfig)
    resolve = _resolver(path.resolve().parent)
    cfg.documents.paths = [resolve(p) for p in cfg.documents.paths]
    for model in cfg.models:
        if "/" in model.path or model.path.startswith("."):  # a bare name is a prepared model
            model.path = resolve(model.path)
    cfg.benchmark.path = resolve(cfg.benchmark.path)
    cfg.cache_dir, cfg.output_dir, cfg.warehouse = resolve(cfg.cache_dir), resolve(cfg.output_dir), resolve(cfg.warehouse)
    return cfg


def load_rewrite_config(path: str | Path):
    """The rewrite config (YAML), with paths resolved against its folder."""
    from schemas.rewrite import RewriteConfig

    path = Path(path)
    cfg = _read_yaml_model(path, RewriteConfig)
    resolve = _resolver(path.resolve().parent)
    cfg.warehouse, cfg.output_root = resolve(cfg.warehouse), resolve(cfg.output_root)
    cfg.styles_dirs = [resolve(d) for d in cfg.styles_dirs]
    if "/" in cfg.engine.model or cfg.engine.model.startswith("."):  # a bare name is a prepared model
        cfg.engine.model = resolve(cfg.engine.model)
    cfg.engine.tokenizer = resolve(cfg.engine.tokenizer)
    return cfg


def _format_errors(source: str, err: ValidationError) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "<dict>", base_dir: str | Path | None = None) -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping of keys")
    try:
        return RunConfig.model_validate({**data, "base_dir": str(base_dir) if base_dir else None})
    except ValidationError as err:
        raise ConfigError(_format_errors(source, err)) from None


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML in config {path}: {err}") from None
    return config_from_dict(data or {}, source=str(path), base_dir=path.resolve().parent)


DEFAULT_CONFIG_YAML = """\
# cpt-curate run configuration. Relative paths are resolved against this file's folder.
# Every key is optional except input.paths; unknown keys are an error.

input:
  # Parquet shards: local globs or fsspec URLs (s3://..., gs://..., https://...).
  paths:
    - data/*.parquet
  text_column: text          # the only required column (string, or binary holding UTF-8)
  id_column: id              # generated (stable, from file name and row) when the column is absent
  columns:                   # logical field -> column name in your shards; absent columns are fine
    url: url
    source: source
    crawl_date: crawl_date
    language: language
    metadata: metadata
  source: null               # source label when a shard has no source column (default: folder name)
  batch_size: 2000           # rows per streamed batch: bounds memory per shard
  skip_curated: false        # continual mode: leave out files whose content a completed run curated

output:
  root: out                  # runs/<run_id>/ with one folder per stage, curated/ and rejected/ shards

warehouse:
  path: warehouse/curation.duckdb   # DuckDB file; query with `curate sql` or plain `duckdb`

ingest:
  max_chars: 1000000         # longer documents are quarantined as too_long
  min_chars: 1               # shorter (after normalisation) are quarantined as empty_text

exact_dedup:
  enabled: true
  against_warehouse: true    # drop documents already curated by an earlier run

near_dedup:                  # datatrove MinHash signatures + LSH banding
  enabled: true
  against_warehouse: true
  n_grams: 5                 # shingle size in words
  num_buckets: 14            # LSH bands; with 8 hashes each, pairs of Jaccard similarity
  hashes_per_bucket: 8       #   0.8 are caught with p=0.92, 0.7 with p=0.56, 0.5 with p=0.05
  seed: 1

quality:                     # datatrove filters; `params` are passed to the filter as keyword args
  enabled: true
  gopher_repetition: {enabled: true, params: {}}
  gopher_quality: {enabled: true, alpha_words_rule: words, params: {}}
  c4: {enabled: true, params: {}}
  fineweb: {enabled: true, params: {}}
  url_blocklist: {enabled: true, params: {}}   # only documents with a url are checked

language:
  enabled: true
  model_path: null           # fastText LID model; default: bundled lid.176.ftz
  allowed: [en]
  min_score: 0.65

toxicity:
  enabled: true
  wordlist_dir: null         # LDNOOBW lists <lang>.txt; default: bundled
  max_score: 0.01            # flagged words per word above which a document is dropped...
  min_matches: 2             # ...provided it has at least this many flagged words
  classifier: null           # optional fastText model: {path: x.bin, label: __label__toxic, threshold: 0.5}

pii:
  enabled: false             # redact emails, phone numbers and public IPs in kept documents
  emails: true
  phones: true
  ips: true

scoring:                     # model-based scoring (see `curate preselect train`)
  enabled: false
  preselect: null            # {scorer_dir: DIR, rule: {top_share: 0.1} or {threshold: 0.5}}
  classifiers: []            # [{path: x.bin, label: __label__hq, name: dclm}]: quality_bucket = max of their buckets
  buckets: 20                # per classifier, of equal token mass (Nemotron-CC: 20; routes: nemotron_cc assumes 20)
  tokenizer: smollm2-135m-instruct  # counts those tokens: tokenizer.json, model folder or prepared model

execution:
  task_runner: process       # process (every core of this machine) | thread | dask
  max_workers: null          # shard tasks at once: null = a worker process per core (thread: 1 thread)
  dask_address: null         # scheduler address of a running Dask cluster
"""


class ProjectConfig(_Strict):
    """A project's steps for the end-to-end flow, each the path of its own config file (relative
    to the project file). Steps left out are not run; `curate` is the one required."""

    curate: str = Field(description="run config (use input.skip_curated: true for continual curation)")
    preselect: str | None = Field(default=None, description="PreSelect training config: retrain the scorer after curating")
    rewrite: str | None = Field(default=None, description="rewrite config: rephrase what is not rewritten yet")
    mix: str | None = Field(default=None, description="mixture spec: rebuilt from the warehouse's new state")
    # with no new input, nothing downstream can change: skip it
    skip_when_nothing_new: bool = True


def load_project(path: str | Path) -> ProjectConfig:
    """The project file, its step paths resolved against its folder, and every step's config
    loaded once here: a project whose any config does not load fails before any step runs."""
    path = Path(path)
    project = _read_yaml_model(path, ProjectConfig)
    resolve = _resolver(path.resolve().parent)
    for step in ("curate", "preselect", "rewrite", "mix"):
        setattr(project, step, resolve(getattr(project, step)))
    load_config(project.curate)
    if project.preselect:
        load_training_config(project.preselect)
    if project.rewrite:
        load_rewrite_config(project.rewrite)
    if project.mix:
        load_mixture_spec(project.mix)
    return project


def load_mixture_spec(path: str | Path):
    """The mixture spec (YAML), with paths resolved against its folder."""
    from schemas.mixture import MixtureSpec, ReplaySource

    path = Path(path)
    spec = _read_yaml_model(path, MixtureSpec)
    resolve = _resolver(path.resolve().parent)
    spec.warehouse, spec.output_root = resolve(spec.warehouse), resolve(spec.output_root)
    if "/" in spec.tokenizer.path or spec.tokenizer.path.startswith("."):  # a bare name is a prepared model
        spec.tokenizer.path = resolve(spec.tokenizer.path)
    for source in spec.sources:
        if isinstance(source, ReplaySource):
            source.paths = [resolve(p) for p in source.paths]
    for eval_set in spec.decontamination.eval_sets:
        eval_set.path = resolve(eval_set.path)
    return spec
