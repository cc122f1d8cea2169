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

Speed (the same verdicts, ~3x faster than the filter called per text; `exact_tokenizer=True` runs
the filter itself, for checking): spaCy's tokenizer splits text at whitespace and tokenizes each
piece on its own, so `CachedWordTokenizer` splits each distinct piece once, new pieces in one
spaCy call; the check looks every n-gram up in a numpy prefilter of word-hash windows and runs the
filter's own n-gram loop only on the texts that pass it (see `Decontaminator`). The index folder
holds, per eval set, the filter's `<name>.index.hashes` and the prefilter's `<name>.prefilter`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import types
import unicodedata
from bisect import bisect_right
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.utils.text import NUMBERS_PATTERN, PUNCTUATION, simplify_text
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

from schemas.mixture import EvalSetSpec
from scorers.assets import asset_path
from scorers.benchmark import BenchmarkFileError, load_mmlu_jsonl
from scorers.words import SPACY_LOCK
from warehouse.files import atomic_path, sha256_file, write_json_atomic

# Raise when what is indexed for the same files changes: it is part of the index's identity.
INDEX_SCHEME = 2
MANIFEST_NAME = "index.json"
BUNDLED_MMLU = "mmlu.jsonl"
LANGUAGE = "en"
# the prefilter's polynomial base over word hashes: odd, so multiplying by it loses no bits mod 2**64
_WINDOW_BASE = np.uint64(0x9E3779B97F4A7C15)
_BITMAP_SHIFT = np.uint64(40)  # a 2**24-entry bitmap (16 MB)
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
    Pieces not seen yet are split together, in one spaCy call over them joined by spaces (a call
    per piece costs ~75 us of overhead; a real corpus meets tens of thousands of new pieces).
    The cache is cleared when full: cheaper than evicting entries one by one."""

    SPLIT_BATCH = 10_000  # pieces per spaCy call

    def __init__(self, inner: WordTokenizer, max_entries: int = 1_000_000):
        super().__init__(inner.language)
        self.inner = inner
        self.max_entries = max_entries
        self._words: dict[str, tuple[str, ...]] = {}

    def word_tokenize(self, text: str) -> list[str]:
        return [word for split in self.piece_words(text.split()) for word in split]

    def piece_words(self, pieces: list[str]) -> list[tuple[str, ...]]:
        """The words of each piece (a piece holds no whitespace), in order."""
        cache = self._words
        new = [piece for piece in dict.fromkeys(pieces) if piece not in cache]
        if not new:
            return [cache[piece] for piece in pieces]
        fresh = {}
        for start in range(0, len(new), self.SPLIT_BATCH):
            chunk = new[start : start + self.SPLIT_BATCH]
            fresh.update(zip(chunk, self._split(chunk)))
        words = [fresh[piece] if piece in fresh else cache[piece] for piece in pieces]
        if len(cache) + len(fresh) > self.max_entries:
            cache.clear()
        cache.update(fresh)
        return words

    def _split(self, pieces: list[str]) -> list[tuple[str, ...]]:
        """spaCy's words of each piece: one call over the pieces joined by single spaces, each
        token going to the piece its offset falls in. A piece of ASCII lower-case letters only is
        its own single word unless it is one of the tokenizer's special cases ("cannot"): no
        prefix, suffix, infix or URL rule of spaCy's English tokenizer matches letters alone, and
        most pieces of simplified text are such words. datatrove's own per-text call (with its
        workaround for strings spaCy chokes on) where the joined call fails."""
        nlp = getattr(self.inner, "tokenizer", None)
        if nlp is None or not hasattr(nlp, "memory_zone"):
            return [tuple(self.inner.word_tokenize(piece)) for piece in pieces]
        special = nlp.tokenizer.rules
        words: list[tuple[str, ...] | None] = [
            (piece,) if piece.isascii() and piece.isalpha() and piece.islower() and piece not in special else None
            for piece in pieces
        ]
        rest = [i for i, split in enumerate(words) if split is None]
        if not rest:
            return words
        starts, offset = [], 0
        for i in rest:
            starts.append(offset)
            offset += len(pieces[i]) + 1
        found: list[list[str]] = [[] for _ in rest]
        try:
            with nlp.memory_zone():
                for token in nlp.tokenizer(" ".join(pieces[i] for i in rest)):
                    word = token.text.strip()
                    if word:
                        found[bisect_right(starts, token.idx) - 1].append(word)
        except Exception:  # noqa: BLE001 - spaCy raises plain errors on a few strings; the slow path handles them
            found = [self.inner.word_tokenize(pieces[i]) for i in rest]
        for i, split in zip(rest, found):
            words[i] = tuple(split)
        return words

    def sent_tokenize(self, text: str) -> list[str]:
        return self.inner.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self.inner.span_tokenize(text)


def _simplify(text: str, norm) -> str:
    """datatrove's `simplify_text`, with its Unicode step (NFD, combining marks dropped) looking
    only at the non-ASCII runs of a text (ASCII has no mark to drop): the same string, faster."""
    if not norm.norm_unicode_diacritics:
        return simplify_text(text, norm)
    text = simplify_text(text, replace(norm, norm_unicode_diacritics=False))
    if text.isascii():
        return text
    return _NON_ASCII.sub(_without_marks, unicodedata.normalize("NFD", text)).strip()


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _without_marks(text: str | re.Match) -> str:
    """NFD with combining marks (Mn) dropped, of a string or a match of `_NON_ASCII`."""
    if isinstance(text, re.Match):
        return "".join(c for c in text.group() if unicodedata.category(c) != "Mn")
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _re2_class(chars) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in sorted(set(chars))) + "]"


# What `simplify_text` turns into spaces (its punctuation table) and what `str.split` splits at:
# after the two, a text's pieces are the runs of other characters. The ASCII ones are replaced in
# the UTF-8 bytes by a byte table (no byte of a multi-byte character is ASCII); the others, listed
# rather than a class shorthand so that RE2's idea of whitespace cannot differ from Python's, by RE2.
_SEPARATOR_CHARS = set(PUNCTUATION) | {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
_ASCII_SEPARATORS_TO_SPACE = bytes(32 if chr(b) in _SEPARATOR_CHARS else b for b in range(128)) + bytes(range(128, 256))
_NON_ASCII_SEPARATORS = _re2_class(c for c in _SEPARATOR_CHARS if ord(c) > 127)


def _separators_to_spaces(texts: pa.StringArray) -> pa.StringArray:
    validity, offsets, values = texts.buffers()
    spaced = pa.py_buffer(values.to_pybytes().translate(_ASCII_SEPARATORS_TO_SPACE)) if values is not None else None
    ascii_done = pa.StringArray.from_buffers(len(texts), offsets, spaced, validity, texts.null_count, texts.offset)
    return pc.replace_substring_regex(ascii_done, _NON_ASCII_SEPARATORS, " ")


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


def _combined(columns: list[np.ndarray]) -> np.ndarray:
    """The prefilter's key of n word hashes, column-wise: a polynomial over them (uint64, wrapping).
    The one definition both sides use: the index's n-grams and every window of a text."""
    keys = columns[0].copy()
    for column in columns[1:]:
        keys *= _WINDOW_BASE
        keys += column
    return keys


def _window_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """The key of every n consecutive word hashes."""
    count = len(word_hashes) - n + 1
    if count <= 0:
        return np.empty(0, np.uint64)
    return _combined([word_hashes[k : k + count] for k in range(n)])


def _prefilter_keys(ngrams: set[str], n: int, hash_func) -> np.ndarray:
    """The keys of the indexed n-grams, all at once: an n-gram's words are its string split at
    spaces (a word never holds whitespace), each distinct word hashed once."""
    split = [ngram.split(" ") for ngram in ngrams]
    word_hash = {word: hash_func(word) for word in {word for words in split for word in words}}
    rows = np.array([[word_hash[word] for word in words] for words in split], np.uint64).reshape(len(split), n)
    return np.unique(_combined([rows[:, k] for k in range(n)]))


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
    prefilter first: each word is hashed once, each run of n word hashes is combined into one key
    with numpy, and the keys are looked up among those of the indexed n-grams. Only a text with a
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
        self._prefilter: np.ndarray | None = None
        self._piece_hashes: dict[str, tuple[int, ...]] = {}
        self._bits: np.ndarray | None = None

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

    def check(self, texts: list[str]) -> list[tuple[str, str] | None]:
        """Per text: (eval set name, the normalised n-gram it shares with it), or None when clean."""
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {position} is a {type(text).__name__}, not a string")
        with SPACY_LOCK:
            return self._check_exact(texts) if self._exact else self._check_fast(texts)

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
        loaded, keys = [], []
        for entry in sorted(self._manifest["eval_sets"], key=lambda e: _index_file(self.folder, e["name"]).name):
            name = entry["name"]
            loaded.append((name, np.fromfile(_index_file(self.folder, name), dtype=self._config.hash_config.np_dtype)))
            keys.append(np.fromfile(_prefilter_file(self.folder, name), dtype=np.uint64))
        self._index = loaded[::-1]  # looked up last-loaded first
        self._prefilter = keys[0] if len(keys) == 1 else np.unique(np.concatenate(keys))
        self._bits = np.zeros(1 << (64 - int(_BITMAP_SHIFT)), bool)
        self._bits[self._prefilter >> _BITMAP_SHIFT] = True

    def _check_fast(self, texts: list[str]) -> list[tuple[str, str] | None]:
        if self._index is None:
            self._load()
        n = self._config.n_grams
        verdicts: list[tuple[str, str] | None] = [None] * len(texts)
        for position in self._suspects(*self._word_hashes(texts), n):
            pieces = _simplify(texts[position], self._config.norm_config).split()
            words = [word for split in self._tokenizer.piece_words(pieces) for word in split]
            verdicts[position] = self._first_indexed_ngram(words, n)
        return verdicts

    def _word_hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The hash of every word of every text, in order, and each text's word count, with the
        per-character work in Arrow: lower-case and numbers as `simplify_text` does them, then
        every punctuation or whitespace character (the filter's two sets, see `_SEPARATORS`)
        becomes a space and the texts split at spaces into pieces. Each distinct piece is split
        and hashed once (`_piece_words`); the pieces' word hashes are gathered with numpy."""
        norm = self._config.norm_config
        prepared = [NUMBERS_PATTERN.sub("0", text.lower()) for text in texts] if norm.norm_numbers else [t.lower() for t in texts]
        pieces = pc.split_pattern(_separators_to_spaces(pa.array(prepared, pa.string())), " ")
        encoded = pc.dictionary_encode(pieces.flatten())
        piece_index = encoded.indices.to_numpy(zero_copy_only=False)
        counts, starts, flat = self._piece_words(encoded.dictionary.to_pylist())
        words_per_piece = counts[piece_index]
        ends = np.cumsum(words_per_piece)
        # word k of the batch is word (k - first word of its piece) of its piece's distinct entry
        within = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - words_per_piece, words_per_piece)
        hashes = flat[np.repeat(starts[piece_index], words_per_piece) + within]
        piece_offsets = pieces.offsets.to_numpy()
        words_before = np.concatenate([[0], ends])
        return hashes, words_before[piece_offsets[1:]] - words_before[piece_offsets[:-1]]

    def _piece_words(self, pieces: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per piece: its number of words, where its word hashes start in the third array, and
        that array. A piece is a piece of the text before `simplify_text`'s last step (NFD,
        combining marks dropped), which is done here, once per distinct piece: a mark is never
        whitespace, so doing it per piece gives the words of doing it on the whole text."""
        cache = self._piece_hashes
        new = [piece for piece in pieces if piece not in cache]
        if new:
            if len(cache) + len(new) > self._tokenizer.max_entries:
                cache.clear()
                new = pieces
            marked = self._config.norm_config.norm_unicode_diacritics
            normalised = [_without_marks(piece) if marked and not piece.isascii() else piece for piece in new]
            splits = self._tokenizer.piece_words([p for p in normalised if p])
            words = iter(splits)
            for raw, piece in zip(new, normalised):
                cache[raw] = tuple(map(self._hash, next(words))) if piece else ()
        entries = [cache[piece] for piece in pieces]
        counts = np.fromiter(map(len, entries), np.int64, len(entries))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        flat = np.fromiter(chain.from_iterable(entries), np.uint64, int(counts.sum()))
        return counts, starts, flat

    def _suspects(self, hashes: np.ndarray, lengths: np.ndarray, n: int) -> list[int]:
        """Texts with at least one n-gram whose key is in the prefilter: all texts' keys at once
        (`hashes` holds every text's word hashes in turn, `lengths` their counts), windows that
        straddle two texts left out."""
        if lengths.sum() < n:
            return []
        keys = _window_hashes(hashes, n)
        owner = np.repeat(np.arange(len(lengths)), lengths)
        within = owner[: len(keys)] == owner[n - 1 :]
        # a bitmap of the keys' top bits first (a few per cent of it set): the sorted search only
        # for keys that pass it
        maybe = np.flatnonzero(within & self._bits[keys >> _BITMAP_SHIFT])
        slots = np.minimum(np.searchsorted(self._prefilter, keys[maybe]), len(self._prefilter) - 1)
        found = maybe[self._prefilter[slots] == keys[maybe]]
        return np.unique(owner[found]).tolist()

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
