"""N-gram decontamination against evaluation sets: text in, (eval set, n-gram) or None out.

The check is datatrove's `NGramsDecontFilter` (datatrove/pipeline/decont/n_grams.py): a text is
lower-cased, digits become 0, punctuation becomes space, diacritics go (`simplify_text`), spaCy's
blank English tokenizer splits it into words, and every n consecutive words are hashed (xxhash64) and
looked up in the index. The first hit in reading order is the verdict.

The index is the `<eval set>.index.hashes` files the filter loads (raw native-endian uint64 hashes).
datatrove's `NGramsDecontIndexer` cannot be built here (it requires lighteval, which downloads
tasks from the Hub), so the hashes come from its own `compute_hashes`, called on a stand-in that has
the three attributes it reads. What is indexed, with `find_query_ngrams=True` and
`find_overlap_ngrams=True`:

- question + choices sets (MMLU): for every choice as the label and the question as the query, the
  question's n-grams, the choice's n-grams, and the n-grams that run from the question's end into
  the choice. Every choice counts, not only the correct one: a leaked item usually shows them all.
- text sets: every n-gram of the text.

Limits, by construction:
- an item shorter than n words after normalisation (question and choice together, for MMLU) has no
  n-gram and can never match; `eval_sets[i]["items_without_ngrams"]` counts them. A training text
  holding fewer than n consecutive words of an item is not caught either.
- numbers are normalised to 0, so a text that shares a 13-word template with an item but has other
  numbers in it matches (e.g. the same arithmetic question with other operands).
- when two eval sets share an n-gram, the filter reports the one whose index file it loaded last.

Speed: spaCy's tokenizer splits text at whitespace and tokenizes each piece on its own (it caches
pieces by their string itself), so splitting each whitespace-separated piece once and remembering
the result gives the same words. `CachedWordTokenizer` does that and is handed to the filter through
its own hook for custom tokenizers; `exact_tokenizer=True` uses plain spaCy, for checking.
"""

from __future__ import annotations

import hashlib
import json
import types
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

from schemas.mixture import EvalSetSpec
from scorers.assets import asset_path
from scorers.benchmark import BenchmarkFileError, load_mmlu_jsonl
from scorers.words import SPACY_LOCK
from warehouse.files import atomic_path, sha256_file, write_json_atomic

# Raise when what is indexed for the same files changes: it is part of the index's identity.
INDEX_SCHEME = 1
MANIFEST_NAME = "index.json"
BUNDLED_MMLU = "mmlu.jsonl"
LANGUAGE = "en"
_JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


class EvalSetError(ValueError):
    """An evaluation-set file that cannot be read as the spec describes it."""


@dataclass(frozen=True)
class EvalItem:
    """One evaluation item: labels are the choices (or the text itself); query is the question."""

    labels: tuple[str, ...]
    query: str | None = None


@dataclass(frozen=True)
class _Source:
    spec: EvalSetSpec
    path: Path
    sha256: str


# ---------------------------------------------------------------- word splitting


def _word_tokenizer(exact: bool) -> WordTokenizer:
    spacy_tokenizer = load_word_tokenizer(LANGUAGE)
    return spacy_tokenizer if exact else CachedWordTokenizer(spacy_tokenizer)


class CachedWordTokenizer(WordTokenizer):
    """spaCy's words for a text, with each whitespace-separated piece split by spaCy once.

    spaCy splits a text at whitespace and tokenizes each piece independently, and datatrove drops
    the whitespace tokens, so the pieces' words put together equal the words of the whole text.
    The cache is cleared when full: cheaper than evicting entries one by one."""

    def __init__(self, inner: WordTokenizer, max_entries: int = 1_000_000):
        super().__init__(inner.language)
        self.inner = inner
        self.max_entries = max_entries
        self._words: dict[str, tuple[str, ...]] = {}

    def word_tokenize(self, text: str) -> list[str]:
        words: list[str] = []
        cache = self._words
        for piece in text.split():
            split = cache.get(piece)
            if split is None:
                if len(cache) >= self.max_entries:
                    cache.clear()
                split = cache[piece] = tuple(self.inner.word_tokenize(piece))
            words.extend(split)
        return words

    def sent_tokenize(self, text: str) -> list[str]:
        return self.inner.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self.inner.span_tokenize(text)


# ---------------------------------------------------------------- reading eval sets


def _resolve(spec: EvalSetSpec) -> Path:
    if spec.path is None:
        return asset_path(BUNDLED_MMLU)
    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise EvalSetError(f"eval set {spec.name!r}: file {path} not found")
    return path


def _format_of(spec: EvalSetSpec, path: Path) -> str:
    if spec.format != "auto":
        return spec.format
    if path.suffix.lower() in _JSONL_SUFFIXES:
        return "jsonl"
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return "parquet"
    raise EvalSetError(f"eval set {spec.name!r}: {path}: cannot tell the format from the extension; set `format`")


def _columns(spec: EvalSetSpec) -> list[str]:
    if spec.text_column is not None:
        return [spec.text_column]
    return [spec.question_column] + ([spec.choices_column] if spec.choices_column is not None else [])


def _item_from_row(spec: EvalSetSpec, row: dict, where: str) -> EvalItem:
    def text_field(column: str) -> str:
        value = row[column]
        if not isinstance(value, str) or not value.strip():
            raise EvalSetError(f"{where}: column {column!r} is {_shown(value)}, not a non-empty string")
        return value

    if spec.text_column is not None:
        return EvalItem(labels=(text_field(spec.text_column),))
    question = text_field(spec.question_column)
    if spec.choices_column is None:
        return EvalItem(labels=(question,))
    choices = row[spec.choices_column]
    if not isinstance(choices, list | tuple) or not choices or not all(isinstance(c, str) for c in choices):
        raise EvalSetError(f"{where}: column {spec.choices_column!r} is {_shown(choices)}, not a non-empty list of strings")
    return EvalItem(labels=tuple(choices), query=question)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonl_rows(path: Path, columns: list[str]):
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise EvalSetError(f"{where}: not JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise EvalSetError(f"{where}: a JSON {type(row).__name__}, not an object")
            missing = [c for c in columns if c not in row]
            if missing:
                raise EvalSetError(f"{where}: no column {missing[0]!r}")
            yield row, where


def _parquet_rows(path: Path, columns: list[str]):
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise EvalSetError(f"{path}: not a readable Parquet file ({err})") from err
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise EvalSetError(f"{path}: no column {missing[0]!r} (columns: {schema.names})")
    table = pq.read_table(path, columns=columns)
    try:
        values = {c: table.column(c).to_pylist() for c in columns}
    except UnicodeDecodeError as err:
        raise EvalSetError(f"{path}: invalid UTF-8 in the text columns ({err})") from err
    for index in range(table.num_rows):
        yield {c: values[c][index] for c in columns}, f"{path}: row {index}"


def read_eval_items(spec: EvalSetSpec, path: Path | None = None) -> list[EvalItem]:
    """The items of one eval set. Any malformed row is an `EvalSetError` naming the file and row,
    except in the bundled MMLU file, whose two known junk rows the MMLU reader skips."""
    path = path or _resolve(spec)
    if spec.path is None:
        try:
            return [EvalItem(labels=q.choices, query=q.question) for q in load_mmlu_jsonl(path).questions]
        except BenchmarkFileError as err:
            raise EvalSetError(str(err)) from err
    columns = _columns(spec)
    rows = _jsonl_rows(path, columns) if _format_of(spec, path) == "jsonl" else _parquet_rows(path, columns)
    items = [_item_from_row(spec, row, where) for row, where in rows]
    if not items:
        raise EvalSetError(f"eval set {spec.name!r}: {path} holds no row")
    return items


# ---------------------------------------------------------------- the index


def _config(n_gram: int):
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig

    return NGramsDecontConfig(n_grams=n_gram, find_query_ngrams=True, find_overlap_ngrams=True)


def _item_hashes(config, tokenizer):
    """datatrove's indexer's `compute_hashes`, run on a stand-in holding what it reads."""
    from datatrove.pipeline.decont.n_grams import NGramsDecontIndexer
    from datatrove.utils.hashing import create_hash_func

    indexer = types.SimpleNamespace(config=config, tokenizer=tokenizer, hash_func=create_hash_func(config.hash_config))

    def hashes(item: EvalItem) -> set[int]:
        found: set[int] = set()
        for label in item.labels:
            found.update(NGramsDecontIndexer.compute_hashes(indexer, label, item.query))
        return found

    return hashes


def _identity(sources: list[_Source], config) -> str:
    payload = {
        "scheme": INDEX_SCHEME,
        "datatrove": version("datatrove"),
        "spacy": version("spacy"),  # its word splitting decides the n-grams
        "language": LANGUAGE,
        "n_gram": config.n_grams,
        "find_query_ngrams": config.find_query_ngrams,
        "find_overlap_ngrams": config.find_overlap_ngrams,
        "norm": asdict(config.norm_config),
        "hash": str(config.hash_config),
        "eval_sets": sorted(
            (
                {
                    "name": s.spec.name,
                    "sha256": s.sha256,
                    "bundled": s.spec.path is None,
                    "columns": _columns(s.spec),
                    "text_column": s.spec.text_column,
                }
                for s in sources
            ),
            key=lambda entry: entry["name"],
        ),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _index_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.index.hashes"


def _read_manifest(folder: Path, identity: str, np_dtype) -> dict | None:
    """The manifest of a complete index for `identity`, or None (absent, other inputs, or a hashes
    file missing or of the wrong size, as a killed build could leave)."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("identity") != identity:
        return None
    itemsize = np.dtype(np_dtype).itemsize
    for entry in manifest.get("eval_sets", []):
        index_file = _index_file(folder, entry["name"])
        if not index_file.is_file() or index_file.stat().st_size != entry["ngrams"] * itemsize:
            return None
    return manifest


def _write_index(folder: Path, sources: list[_Source], config, tokenizer, identity: str) -> dict:
    item_hashes = _item_hashes(config, tokenizer)
    entries = []
    for source in sources:
        items = read_eval_items(source.spec, source.path)
        hashes: set[int] = set()
        without = 0
        for item in items:
            found = item_hashes(item)
            without += not found
            hashes |= found
        if not hashes:
            raise EvalSetError(
                f"eval set {source.spec.name!r} ({source.path}): none of its {len(items)} items has "
                f"{config.n_grams} words, so it could never match; lower `n_gram`"
            )
        # sorted, so the same inputs give the same bytes; the filter does not care about order
        array = np.array(sorted(hashes), dtype=config.hash_config.np_dtype)
        with atomic_path(_index_file(folder, source.spec.name)) as tmp:
            array.tofile(tmp)
        entries.append(
            {
                "name": source.spec.name,
                "path": str(source.path),
                "sha256": source.sha256,
                "items": len(items),
                "items_without_ngrams": without,
                "ngrams": len(hashes),
            }
        )
    manifest = {"identity": identity, "n_gram": config.n_grams, "datatrove": version("datatrove"), "eval_sets": entries}
    # written last: its presence is what marks the index complete
    write_json_atomic(folder / MANIFEST_NAME, manifest)
    return manifest


# ---------------------------------------------------------------- the checker


class Decontaminator:
    """An n-gram index of evaluation sets and datatrove's filter over it."""

    def __init__(self, folder: Path, manifest: dict, config, tokenizer, built: bool):
        from datatrove.pipeline.decont.n_grams import NGramsDecontFilter

        self.folder = folder
        self.built = built  # False when an index for the same inputs was already there
        self._manifest = manifest
        self._filter = NGramsDecontFilter(index_folder=str(folder), config=config, language=tokenizer)
        self._filter.load_index_hashes()

    @classmethod
    def build(
        cls, specs: list[EvalSetSpec], n_gram: int, index_dir: str | Path, *, exact_tokenizer: bool = False
    ) -> Decontaminator:
        """Index `specs` under `index_dir/<identity>/`, unless a complete index for the same inputs
        is there. `exact_tokenizer` runs spaCy on whole texts instead of the cached split."""
        if not specs:
            raise ValueError("no eval set to decontaminate against")
        names = [s.name for s in specs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"eval set names must be unique; repeated: {repeated}")
        config = _config(n_gram)
        sources = []
        for spec in specs:
            path = _resolve(spec)
            sources.append(_Source(spec, path, sha256_file(path)))
        identity = _identity(sources, config)
        folder = Path(index_dir) / identity
        tokenizer = _word_tokenizer(exact_tokenizer)
        manifest = _read_manifest(folder, identity, config.hash_config.np_dtype)
        built = manifest is None
        if built:
            with SPACY_LOCK:
                manifest = _write_index(folder, sources, config, tokenizer, identity)
        return cls(folder, manifest, config, tokenizer, built)

    @property
    def identity(self) -> str:
        """Hex SHA-256 of what decides the verdicts: eval-set file contents and columns, n, datatrove
        and spaCy versions, normalisation and hash settings."""
        return self._manifest["identity"]

    @property
    def n_gram(self) -> int:
        return self._manifest["n_gram"]

    @property
    def eval_sets(self) -> list[dict]:
        """{name, path, sha256, items, ngrams, items_without_ngrams} per eval set."""
        return [dict(entry) for entry in self._manifest["eval_sets"]]

    def check(self, texts: list[str]) -> list[tuple[str, str] | None]:
        """Per text: (eval set name, the normalised n-gram it shares with it), or None when clean."""
        from datatrove.data import Document

        verdicts: list[tuple[str, str] | None] = []
        with SPACY_LOCK:
            for position, text in enumerate(texts):
                if not isinstance(text, str):
                    raise TypeError(f"text {position} is a {type(text).__name__}, not a string")
                doc = Document(text=text, id=str(position))
                if self._filter.filter(doc) is True:
                    verdicts.append(None)
                else:
                    verdicts.append((doc.metadata["contaminated_task"], doc.metadata["contaminated_ngram"]))
        return verdicts
