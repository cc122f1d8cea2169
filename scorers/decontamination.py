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

Speed (the same verdicts; `exact_tokenizer=True` runs the filter itself, for checking): on 3,000
of the benchmark's texts the filter called per text takes 12.8 s, this check 0.24 s (measured
before the loops were compiled, which took ~40 % off it). The words come from `WordHasher`
(scorers/simplified_words.py: texts cut into raw pieces, each distinct piece simplified and split by
spaCy once, in the compiled loops of scorers/piece_table.py); the check looks every n-gram up in a
prefilter of word-hash windows and runs the filter's own n-gram loop only on the texts that pass it
(see `Decontaminator`). The index folder
holds, per eval set, the filter's `<name>.index.hashes` and the prefilter's `<name>.prefilter`.
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
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

from schemas.mixture import EvalSetSpec
from scorers.assets import asset_path
from scorers.benchmark import BenchmarkFileError, load_mmlu_jsonl
from scorers.piece_table import KeySet, key_set
from scorers.simplified_words import CachedWordTokenizer, WordHasher, combine, load_compiled
from scorers.words import SPACY_LOCK
from warehouse.files import atomic_path, sha256_file, write_json_atomic

# Raise when what is indexed for the same files changes: it is part of the index's identity.
INDEX_SCHEME = 2
MANIFEST_NAME = "index.json"
BUNDLED_MMLU = "mmlu.jsonl"
LANGUAGE = "en"
# the prefilter's polynomial base over word hashes: odd, so multiplying by it loses no bits mod 2**64
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


def _item_ngrams(config, tokenizer):
    """datatrove's indexer's `compute_hashes`, run on a stand-in holding what it reads, with the
    identity as its hash: the n-gram strings it would hash."""
    from datatrove.pipeline.decont.n_grams import NGramsDecontIndexer

    indexer = types.SimpleNamespace(config=config, tokenizer=tokenizer, hash_func=lambda ngram: ngram)

    def ngram_strings(item: EvalItem) -> set[str]:
        found: set[str] = set()
        for label in item.labels:
            found.update(NGramsDecontIndexer.compute_hashes(indexer, label, item.query))
        return found

    return ngram_strings


def _prefilter_keys(ngrams: set[str], n: int, hash_func) -> np.ndarray:
    """The keys of the indexed n-grams, all at once: an n-gram's words are its string split at
    spaces (a word never holds whitespace), each distinct word hashed once."""
    split = [ngram.split(" ") for ngram in ngrams]
    word_hash = {word: hash_func(word) for word in {word for words in split for word in words}}
    rows = np.array([[word_hash[word] for word in words] for words in split], np.uint64).reshape(len(split), n)
    return np.unique(combine([rows[:, k] for k in range(n)]))


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


def _prefilter_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.prefilter"


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
        for path, count, size in (
            (_index_file(folder, entry["name"]), entry["ngrams"], itemsize),
            (_prefilter_file(folder, entry["name"]), entry.get("prefilter_keys", -1), 8),
        ):
            if not path.is_file() or path.stat().st_size != count * size:
                return None
    return manifest


def _write_index(folder: Path, sources: list[_Source], config, tokenizer, identity: str) -> dict:
    from datatrove.utils.hashing import create_hash_func

    item_ngrams = _item_ngrams(config, tokenizer)
    hash_func = create_hash_func(config.hash_config)
    entries = []
    for source in sources:
        items = read_eval_items(source.spec, source.path)
        ngrams: set[str] = set()
        without = 0
        for item in items:
            found = item_ngrams(item)
            without += not found
            ngrams |= found
        if not ngrams:
            raise EvalSetError(
                f"eval set {source.spec.name!r} ({source.path}): none of its {len(items)} items has "
                f"{config.n_grams} words, so it could never match; lower `n_gram`"
            )
        # sorted, so the same inputs give the same bytes; the filter does not care about order
        hashes = np.unique(np.array([hash_func(ngram) for ngram in ngrams], dtype=config.hash_config.np_dtype))
        with atomic_path(_index_file(folder, source.spec.name)) as tmp:
            hashes.tofile(tmp)
        keys = _prefilter_keys(ngrams, config.n_grams, hash_func)
        with atomic_path(_prefilter_file(folder, source.spec.name)) as tmp:
            keys.tofile(tmp)
        entries.append(
            {
                "name": source.spec.name,
                "path": str(source.path),
                "sha256": source.sha256,
                "items": len(items),
                "items_without_ngrams": without,
                "ngrams": len(hashes),
                "prefilter_keys": len(keys),
            }
        )
    manifest = {"identity": identity, "n_gram": config.n_grams, "datatrove": version("datatrove"), "eval_sets": entries}
    # written last: its presence is what marks the index complete
    write_json_atomic(folder / MANIFEST_NAME, manifest)
    return manifest


# ---------------------------------------------------------------- the checker


class Decontaminator:
    """An n-gram index of evaluation sets and the check of texts against it: datatrove's
    `NGramsDecontFilter` itself (`exact_tokenizer=True`), or the same verdicts faster (the default).

    The fast check splits words through `CachedWordTokenizer` and looks every n-gram up in a
    prefilter first: each word is hashed once, each run of n word hashes is rolled into one key
    (`combine`'s, by the compiled loops), and the keys are looked up among those of the indexed
    n-grams. Only a text with a
    key in the prefilter is checked the filter's way (n-gram strings hashed in reading order, the
    first found in the index wins), so verdicts and the reported n-gram are the filter's. A text
    the filter would flag always passes the prefilter (the same words give the same key); the one
    way they could differ is a 64-bit xxhash collision between a text's n-gram and an indexed one,
    which the filter would report and the prefilter would not see."""

    def __init__(self, folder: Path, manifest: dict, config, tokenizer, built: bool, exact: bool):
        self.folder = folder
        self.built = built  # False when an index for the same inputs was already there
        self._manifest = manifest
        self._config = config
        self._tokenizer = tokenizer
        self._exact = exact
        self._filter = None  # loaded on the first check: a mixture whose verdicts are all cached needs none
        self._index: list[tuple[str, np.ndarray]] | None = None  # (eval set, its sorted n-gram hashes)
        self._prefilter: KeySet | None = None
        self._words: WordHasher | None = None

    @classmethod
    def build(
        cls, specs: list[EvalSetSpec], n_gram: int, index_dir: str | Path, *, exact_tokenizer: bool = False
    ) -> Decontaminator:
        """Index `specs` under `index_dir/<identity>/`, unless a complete index for the same inputs
        is there, and load what the check runs (~0.4 s the first time in a process). `exact_tokenizer` runs spaCy on whole texts instead."""
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
        if not exact_tokenizer:
            # what the fast check's first batch would otherwise load, once per process: the
            # compiled loops, and spaCy's table of special cases (~0.1 s on its first reading)
            load_compiled()
            tokenizer.special_cases()
        return cls(folder, manifest, config, tokenizer, built, exact_tokenizer)

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

    def check(self, texts: list[str] | pa.Array) -> list[tuple[str, str] | None]:
        """Per text: (eval set name, the normalised n-gram it shares with it), or None when clean.
        `texts` a list of strings or an Arrow string column (read in place: no string per text)."""
        if isinstance(texts, pa.Array):
            if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
                raise TypeError(f"texts are {texts.type}, not strings")
            if texts.null_count:
                raise TypeError(f"text {pc.index(pc.is_null(texts), True).as_py()} is null, not a string")
        else:
            for position, text in enumerate(texts):
                if not isinstance(text, str):
                    raise TypeError(f"text {position} is a {type(text).__name__}, not a string")
        with SPACY_LOCK:
            if self._exact:
                return self._check_exact(texts.to_pylist() if isinstance(texts, pa.Array) else texts)
            return self._check_fast(texts)

    def _check_exact(self, texts: list[str]) -> list[tuple[str, str] | None]:
        from datatrove.data import Document
        from datatrove.pipeline.decont.n_grams import NGramsDecontFilter

        if self._filter is None:
            self._filter = NGramsDecontFilter(index_folder=str(self.folder), config=self._config, language=self._tokenizer)
            self._filter.load_index_hashes()
        verdicts: list[tuple[str, str] | None] = []
        for position, text in enumerate(texts):
            doc = Document(text=text, id=str(position))
            if self._filter.filter(doc) is True:
                verdicts.append(None)
            else:
                verdicts.append((doc.metadata["contaminated_task"], doc.metadata["contaminated_ngram"]))
        return verdicts

    def _load(self) -> None:
        """Each set's sorted n-gram hashes in the order the filter loads the files (by name; a later
        set's name wins a shared hash) and the sorted prefilter keys of every set. Both files are
        written sorted and unique, so a single set needs no work beyond reading them."""
        from datatrove.utils.hashing import create_hash_func

        self._hash = create_hash_func(self._config.hash_config)
        self._words = WordHasher(self._config.norm_config, self._tokenizer, self._hash)
        loaded, keys = [], []
        for entry in sorted(self._manifest["eval_sets"], key=lambda e: _index_file(self.folder, e["name"]).name):
            name = entry["name"]
            loaded.append((name, np.fromfile(_index_file(self.folder, name), dtype=self._config.hash_config.np_dtype)))
            keys.append(np.fromfile(_prefilter_file(self.folder, name), dtype=np.uint64))
        self._index = loaded[::-1]  # looked up last-loaded first
        self._prefilter = key_set(keys[0] if len(keys) == 1 else np.unique(np.concatenate(keys)))

    def _check_fast(self, texts: list[str]) -> list[tuple[str, str] | None]:
        if self._index is None:
            self._load()
        n = self._config.n_grams
        verdicts: list[tuple[str, str] | None] = [None] * len(texts)
        # texts with an n-gram whose key is in the prefilter; windows never straddle two texts
        suspects = self._words.texts_with_window(texts, n, self._prefilter)
        for position in np.flatnonzero(suspects).tolist():
            text = texts[position].as_py() if isinstance(texts, pa.Array) else texts[position]
            verdicts[position] = self._first_indexed_ngram(self._words.words(text), n)
        return verdicts

    def _first_indexed_ngram(self, words: list[str], n: int) -> tuple[str, str] | None:
        """The filter's own check: n-gram strings in reading order, the first one in the index."""
        ngrams = [" ".join(words[start : start + n]) for start in range(len(words) - n + 1)]
        if not ngrams:
            return None
        values = np.fromiter(map(self._hash, ngrams), self._config.hash_config.np_dtype, len(ngrams))
        first, owner = len(ngrams), None
        for name, hashes in self._index:
            slots = np.minimum(np.searchsorted(hashes, values), len(hashes) - 1)
            hits = np.flatnonzero(hashes[slots] == values)
            # the earliest n-gram wins; between sets holding it, the one looked up first
            if len(hits) and hits[0] < first:
                first, owner = int(hits[0]), name
        return None if owner is None else (owner, ngrams[first])
