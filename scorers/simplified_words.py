"""The words of datatrove's simplified text (`simplify_text`, then spaCy's word splitting), fast
and column-wise, for every check that works on n-grams of them: decontamination's n-gram lookup
and the MinHash shingles of near-duplicate detection.

spaCy's tokenizer splits a text at whitespace and tokenizes each piece on its own, and datatrove
drops the whitespace tokens, so the words of a text are the words of its pieces put together.
`CachedWordTokenizer` splits each distinct piece once; `WordHasher` does the per-character work of
`simplify_text` in Arrow over a whole batch and returns every word's hash with numpy, so no Python
loop runs per word. Both give exactly the words datatrove's own calls give (tests/scorers/
test_decontamination.py holds them to it on real text and on Unicode edge cases).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from itertools import chain, islice

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datatrove.utils.text import NUMBERS_PATTERN, PUNCTUATION, TextNormConfig, simplify_text
from datatrove.utils.word_tokenizers import SpaCyTokenizer, WordTokenizer, load_word_tokenizer

from scorers.words import spacy_attrs

_WINDOW_BASE = np.uint64(0x9E3779B97F4A7C15)


def fast_word_tokenizer(language: str, max_entries: int = 250_000) -> WordTokenizer:
    """datatrove's word tokenizer for `language` (a code of its tokenizer assignments), as a
    `CachedWordTokenizer` when it is spaCy's rule-based tokenizer, which splits a text at
    whitespace and tokenizes each piece on its own; a segmenter for a language written without
    spaces (jieba, pyvi, ...) does not, and is returned as it is. One per language and process."""
    return _fast_word_tokenizer(language, max_entries)


@cache
def _fast_word_tokenizer(language: str, max_entries: int) -> WordTokenizer:
    from spacy.tokenizer import Tokenizer

    inner = load_word_tokenizer(language)
    if isinstance(inner, SpaCyTokenizer) and type(inner.tokenizer.tokenizer) is Tokenizer:
        return CachedWordTokenizer(inner, max_entries)
    return inner


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
        self._kinds: dict[str, int] | None = None
        self._specials: tuple[str, ...] | None = None
        self._last: tuple[str, tuple[str, ...]] = ("", ())

    def word_tokenize(self, text: str) -> list[str]:
        # A document's filters each ask for its words (Gopher repetition, then Gopher quality),
        # so the last text's words are kept for a next call with that text. One tuple, read and
        # replaced whole: a thread never pairs one text with another's words.
        last_text, last_words = self._last
        if text == last_text:
            return list(last_words)
        if self._holds_spaced_special(text):
            words = tuple(self.inner.word_tokenize(text))
        else:
            words = tuple(chain.from_iterable(self.piece_words(text.split())))
        self._last = (text, words)
        return list(words)

    def _spaced_specials(self) -> tuple[str, ...]:
        """The tokenizer's special cases that span a space (Spanish "EE. UU."): spaCy matches
        them across pieces, so a text holding one is split by spaCy whole."""
        if getattr(self, "_specials", None) is None:
            nlp = getattr(self.inner, "tokenizer", None)
            rules = nlp.tokenizer.rules if nlp is not None and hasattr(nlp, "tokenizer") else {}
            self._specials = tuple(k for k in rules if k.strip() and any(c.isspace() for c in k))
        return self._specials

    def _holds_spaced_special(self, text: str) -> bool:
        return any(special in text for special in self._spaced_specials())

    def piece_words(self, pieces: list[str]) -> list[tuple[str, ...]]:
        """The words of each piece (a piece holds no whitespace), in order."""
        cache = self._words
        try:
            return list(map(cache.__getitem__, pieces))  # every piece seen before: the common case
        except KeyError:
            pass
        self.learn(pieces)
        return list(map(cache.__getitem__, pieces))

    def learn(self, pieces: list[str]) -> None:
        """Split the pieces not seen before, in a few spaCy calls, and cache them all. A full cache
        is cleared first (cheaper than evicting entries one by one), keeping these pieces."""
        cache = self._words
        distinct = dict.fromkeys(pieces)
        new = [piece for piece in distinct if piece not in cache]
        if not new:
            return
        if len(cache) + len(new) > self.max_entries:
            kept = {piece: cache[piece] for piece in distinct if piece in cache}
            cache.clear()
            cache.update(kept)
        for start in range(0, len(new), self.SPLIT_BATCH):
            chunk = new[start : start + self.SPLIT_BATCH]
            cache.update(zip(chunk, self._split(chunk)))

    def _split(self, pieces: list[str]) -> list[tuple[str, ...]]:
        """spaCy's words of each piece: one call over the pieces joined by single spaces, each
        token going to the piece its offset falls in, except for the commonest pieces, which
        need no call (`_letters_split`). datatrove's own per-text call (with its workaround for
        strings spaCy chokes on) where the joined call fails."""
        nlp = getattr(self.inner, "tokenizer", None)
        if nlp is None or not hasattr(nlp, "memory_zone"):
            return [tuple(self.inner.word_tokenize(piece)) for piece in pieces]
        special = nlp.tokenizer.rules
        words: list[tuple[str, ...] | None] = [_letters_split(piece, special) for piece in pieces]
        rest = [i for i, split in enumerate(words) if split is None]
        if not rest:
            return words
        # pieces joined by spaces, or by a line break where a special case spans a space, so that
        # two pieces never form one
        separator = " \n " if self._spaced_specials() else " "
        joined = separator.join(pieces[i] for i in rest)
        starts = np.cumsum([0] + [len(pieces[i]) + len(separator) for i in rest[:-1]])
        found: list[list[str]] = [[] for _ in rest]
        try:
            with nlp.memory_zone(), _without_lexeme_attributes(nlp.vocab):
                # offsets and lengths as arrays: no Python object per token
                bounds = nlp.tokenizer(joined).to_array([spacy_attrs.IDX, spacy_attrs.LENGTH]).astype(np.int64)
            owners = np.searchsorted(starts, bounds[:, 0], side="right") - 1
            for owner, start, length in zip(owners.tolist(), bounds[:, 0].tolist(), bounds[:, 1].tolist()):
                word = joined[start : start + length].strip()
                if word:
                    found[owner].append(word)
        except Exception:  # noqa: BLE001 - spaCy raises plain errors on a few strings; the slow path handles them
            found = [self.inner.word_tokenize(pieces[i]) for i in rest]
        for i, split in zip(rest, found):
            words[i] = tuple(split)
        return words

    def sent_tokenize(self, text: str) -> list[str]:
        return self.inner.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return list(self.iter_spans(text))

    def sentence_count(self, text: str, limit: int) -> int:
        """`len(split_into_sentences(text, self))` or `limit`, whichever is smaller: the spans
        are found only until there are `limit` of them (a text without spans is one part)."""
        return max(1, sum(1 for _ in islice(self.iter_spans(text), limit)))

    def iter_spans(self, text: str) -> Iterator[tuple[int, int]]:
        """The sentence spans spaCy's sentencizer gives, from the cached words, one by one. spaCy's
        tokens of a text are the pieces' words (a piece's tokens cover it exactly) and one token
        per run of whitespace, less the single space that follows a piece; the sentencizer starts
        a sentence at the first token, and at a token that is neither punctuation nor a
        sentence-final character after one that was a sentence-final character."""
        nlp = getattr(self.inner, "tokenizer", None)
        if (
            not text
            or "IS_ALPHA" in text  # datatrove re-tokenizes such a text without it
            or self._holds_spaced_special(text)
            or nlp is None
            or "sentencizer" not in nlp.pipe_names
        ):
            yield from self.inner.span_tokenize(text)
            return
        kinds = self._token_kinds(nlp)
        cache = self._words
        sentence_start, end, offset, seen_final = None, 0, 0, False
        runs = _RUNS.findall(text)
        for run in runs:
            if run[0].isspace():
                # after a piece, spaCy gives its first space to the piece's last token
                skip = 1 if offset and run[0] == " " else 0
                tokens = ((run[skip:], None),) if len(run) > skip else ()
                offset += skip
            else:
                split = cache.get(run)  # a stage splits its batch's pieces first: nearly always there
                if split is None:  # else the text's pieces in one call (kept however full the cache)
                    self.learn([r for r in runs if not r[0].isspace()])
                    split = cache[run]
                tokens = ((word, kinds.get(word)) for word in split)
            for token, kind in tokens:
                if kind is None:
                    kind = kinds[token] = self._kind(token)
                if sentence_start is None:
                    sentence_start = offset
                elif seen_final and kind == _WORD:
                    yield sentence_start, end
                    sentence_start, seen_final = offset, False
                if kind == _SENTENCE_FINAL:
                    seen_final = True
                end = offset = offset + len(token)
        if sentence_start is not None:
            yield sentence_start, end

    def _token_kinds(self, nlp) -> dict[str, int]:
        if getattr(self, "_kinds", None) is None or len(self._kinds) > self.max_entries:
            sentencizer = nlp.get_pipe("sentencizer")
            self._kinds: dict[str, int] = {}
            self._final_chars = sentencizer.punct_chars
            self._is_punct = nlp.vocab.lex_attr_getters[spacy_attrs.IS_PUNCT]
        return self._kinds

    def _kind(self, token: str) -> int:
        """What the sentencizer sees in a token: spaCy's own `is_punct` getter and punct_chars."""
        if token in self._final_chars:
            return _SENTENCE_FINAL
        return _PUNCT if self._is_punct(token) else _WORD


@contextmanager
def _without_lexeme_attributes(vocab):
    """spaCy computes ~20 lexical attributes (shape, like_num, ...) in Python for every word its
    vocabulary meets for the first time: 40 % of splitting new pieces. The split reads only the
    tokens' text and offsets, which the tokenizer's rules decide without the attributes, and the
    lexemes made inside the memory zone around it are dropped when it ends, so none without its
    attributes outlives the call. Every caller holds SPACY_LOCK, so no other spaCy call can make
    a lexeme meanwhile."""
    getters = vocab.lex_attr_getters
    vocab.lex_attr_getters = {}
    try:
        yield
    finally:
        vocab.lex_attr_getters = getters


def _letters_split(piece: str, special: dict) -> tuple[str, ...] | None:
    """A piece of ASCII letters is its own word, and one of ASCII letters and a final comma is
    the letters and the comma, unless the piece or its letters are a special case of the
    tokenizer ("cannot"); None for any other piece (spaCy splits it). No prefix, infix, suffix or
    URL rule of spaCy's rule-based tokenizers matches letters alone, and the comma is a suffix
    in all of them; checked on every such piece of the English, Spanish and French references
    (~200,000 distinct pieces), where a final period is not safe ("C." and "pH." stay whole)."""
    if not piece.isascii() or piece in special:
        return None
    if piece.isalpha():
        return (piece,)
    if len(piece) > 1 and piece[-1] == "," and piece[:-1].isalpha() and piece[:-1] not in special:
        return (piece[:-1], ",")
    return None


_WORD, _PUNCT, _SENTENCE_FINAL = 0, 1, 2
_RUNS = re.compile(r"\S+|\s+")  # \s is str.isspace, where spaCy splits


def simplify(text: str, norm) -> str:
    """datatrove's `simplify_text`, with its Unicode step (NFD, combining marks dropped) looking
    only at the non-ASCII runs of a text (ASCII has no mark to drop): the same string, faster."""
    if not norm.norm_unicode_diacritics:
        return simplify_text(text, norm)
    text = simplify_text(text, replace(norm, norm_unicode_diacritics=False))
    if text.isascii():
        return text
    return _NON_ASCII.sub(without_marks, unicodedata.normalize("NFD", text)).strip()


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def without_marks(text: str | re.Match) -> str:
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


def separators_to_spaces(texts: pa.StringArray) -> pa.StringArray:
    validity, offsets, values = texts.buffers()
    spaced = pa.py_buffer(values.to_pybytes().translate(_ASCII_SEPARATORS_TO_SPACE)) if values is not None else None
    ascii_done = pa.StringArray.from_buffers(len(texts), offsets, spaced, validity, texts.null_count, texts.offset)
    return pc.replace_substring_regex(ascii_done, _NON_ASCII_SEPARATORS, " ")


def combine(columns: list[np.ndarray]) -> np.ndarray:
    """The prefilter's key of n word hashes, column-wise: a polynomial over them (uint64, wrapping).
    The one definition every user of word-hash windows shares."""
    keys = columns[0].copy()
    for column in columns[1:]:
        keys *= _WINDOW_BASE
        keys += column
    return keys


def window_keys(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """The key of every n consecutive word hashes."""
    count = len(word_hashes) - n + 1
    if count <= 0:
        return np.empty(0, np.uint64)
    return combine([word_hashes[k : k + count] for k in range(n)])


class WordHasher:
    """Every word's hash of a batch of texts, as `simplify_text(text, norm)` and the tokenizer
    split them, with a cache of each distinct piece's word hashes."""

    def __init__(self, norm: TextNormConfig, tokenizer: CachedWordTokenizer, hash_func: Callable[[str], int]):
        self.norm = norm
        self.tokenizer = tokenizer
        self.hash = hash_func
        self._piece_hashes: dict[str, tuple[int, ...]] = {}

    def words(self, text: str) -> list[str]:
        """One text's words, as strings."""
        return [word for split in self.tokenizer.piece_words(simplify(text, self.norm).split()) for word in split]

    def hashes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The hash of every word of every text, in order, and each text's word count, with the
        per-character work in Arrow: lower-case and numbers as `simplify_text` does them, then
        every punctuation or whitespace character (`simplify_text`'s punctuation and `str.split`'s whitespace)
        becomes a space and the texts split at spaces into pieces. Each distinct piece is split
        and hashed once (`_piece_words`); the pieces' word hashes are gathered with numpy."""
        norm = self.norm
        prepared = [NUMBERS_PATTERN.sub("0", text.lower()) for text in texts] if norm.norm_numbers else [t.lower() for t in texts]
        pieces = pc.split_pattern(separators_to_spaces(pa.array(prepared, pa.string())), " ")
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
            if len(cache) + len(new) > self.tokenizer.max_entries:
                cache.clear()
                new = pieces
            marked = self.norm.norm_unicode_diacritics
            normalised = [without_marks(piece) if marked and not piece.isascii() else piece for piece in new]
            splits = self.tokenizer.piece_words([p for p in normalised if p])
            words = iter(splits)
            for raw, piece in zip(new, normalised):
                cache[raw] = tuple(map(self.hash, next(words))) if piece else ()
        entries = [cache[piece] for piece in pieces]
        counts = np.fromiter(map(len, entries), np.int64, len(entries))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        flat = np.fromiter(chain.from_iterable(entries), np.uint64, int(counts.sum()))
        return counts, starts, flat
