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
from datatrove.utils.hashes.xxhash import xxhash64
from datatrove.utils.text import NUMBERS_PATTERN, PUNCTUATION, TextNormConfig, simplify_text
from datatrove.utils.word_tokenizers import SpaCyTokenizer, WordTokenizer, load_word_tokenizer

from scorers.words import spacy_attrs
from warehouse.arrow import string_array

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
        self._special_cases: frozenset[str] | None = None
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

    def special_cases(self) -> frozenset[str] | None:
        """The strings spaCy splits by a rule of their own ("cannot"), or None where the inner
        tokenizer is not spaCy's rule-based one."""
        nlp = getattr(self.inner, "tokenizer", None)
        if nlp is None or not hasattr(nlp, "memory_zone"):
            return None
        if self._special_cases is None:
            self._special_cases = frozenset(nlp.tokenizer.rules)
        return self._special_cases

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
        special = self.special_cases()
        if special is None:
            return [tuple(self.inner.word_tokenize(piece)) for piece in pieces]
        nlp = self.inner.tokenizer
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


def _letters_split(piece: str, special: frozenset[str]) -> tuple[str, ...] | None:
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


def simplify(text: str, norm, norm_before_marks=None) -> str:
    """datatrove's `simplify_text`, with its Unicode step (NFD, combining marks dropped) looking
    only at the non-ASCII runs of a text (ASCII has no mark to drop): the same string, faster.
    `norm_before_marks`: `norm` without its Unicode step, for callers that made it once."""
    if not norm.norm_unicode_diacritics:
        return simplify_text(text, norm)
    text = simplify_text(text, norm_before_marks or replace(norm, norm_unicode_diacritics=False))
    if text.isascii():
        return text
    return _NON_ASCII.sub(without_marks, unicodedata.normalize("NFD", text)).strip()


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def without_marks(text: str | re.Match) -> str:
    """NFD with combining marks (Mn) dropped, of a string or a match of `_NON_ASCII`."""
    return _marks().sub("", text.group() if isinstance(text, re.Match) else unicodedata.normalize("NFD", text))


@cache
def _marks() -> re.Pattern:
    """Every code point of category Mn in this Python's Unicode data, as one class: deleting
    them with it is C work, where a test per character is Python's (found once per process,
    ~0.07 s; the `regex` module's \\p{Mn} follows another Unicode version)."""
    codes = [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Mn"]
    starts = [c for i, c in enumerate(codes) if i == 0 or codes[i - 1] != c - 1]
    ends = [c for i, c in enumerate(codes) if i == len(codes) - 1 or codes[i + 1] != c + 1]
    return re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in zip(starts, ends, strict=True)) + "]+")


def load_compiled() -> None:
    """Load now what the word hashing builds on first use: the compiled loops and `_marks`."""
    from scorers.piece_table import warm_up

    warm_up()
    _marks()


# Where a raw text can be cut into pieces that `simplify_text` treats independently: the
# characters it always turns into spaces (its punctuation table; whitespace, where `str.split`
# splits), less those a number can hold (`NUMBERS_PATTERN` makes "3.5", "1,000" and "５１" one
# number: cutting there would make two) and any that lower-casing changes or that combine with a
# neighbour. The ASCII separators a number can hold ("." and ",") are cut too where a neighbour
# is an ASCII character other than a digit, so no number can hold them there. Each piece is then
# simplified whole, so everything else is datatrove's own doing.
# The ASCII cut characters are replaced in the UTF-8 bytes by a byte table (no byte of a
# multi-byte character is ASCII); the others by code point (`scorers.piece_table.cut`).
_WHITESPACE_CHARS = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


def _can_cut_at(char: str) -> bool:
    in_a_number = NUMBERS_PATTERN.fullmatch(char) or NUMBERS_PATTERN.fullmatch(f"0{char}0")
    return not in_a_number and char.lower() == char and not unicodedata.combining(char)


_ASCII_JOINS = {chr(b) for b in range(128) if not chr(b).isdigit() and NUMBERS_PATTERN.fullmatch(f"0{chr(b)}0")}  # . ,


@cache
def _cut_tables(remove_punctuation: bool, lowercase: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The byte table of ASCII (cut characters to spaces, and capitals to small letters when
    `lowercase`: lower-casing them first changes nothing that follows) and, per code point,
    whether it is a cut character (only the non-ASCII ones are read)."""
    separators = _WHITESPACE_CHARS | set(PUNCTUATION) if remove_punctuation else _WHITESPACE_CHARS
    cuts = {c for c in separators if _can_cut_at(c)} | (_ASCII_JOINS & separators)
    ascii_table = bytes(32 if chr(b) in cuts else ord(chr(b).lower()) if lowercase else b for b in range(128))
    cut_codepoints = np.zeros(sys.maxunicode + 1, np.bool_)
    cut_codepoints[[ord(c) for c in cuts]] = True
    return np.frombuffer(ascii_table, np.uint8), cut_codepoints


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


# An ASCII raw piece holds letters, digits and the separators a number can hold (between digits):
# every other printable ASCII character is in datatrove's punctuation table, so it is cut.
_ASCII_NUMBER_SEPARATORS_TO_SPACE = str.maketrans(dict.fromkeys(_ASCII_JOINS, " "))
# NUMBERS_PATTERN on ASCII text: its digit class holds no other ASCII character
_ASCII_NUMBERS = re.compile(r"[0-9]+(?:[.,][0-9]+)?")

# Python lower-cases a capital sigma by what surrounds it (final or not), across any cut
# character that Unicode counts as case-ignorable (an apostrophe, a colon): a text holding one is
# simplified whole.
_CAPITAL_SIGMA = "\u03a3"


def _string_array(texts) -> pa.StringArray:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not isinstance(texts, pa.Array):
        texts = string_array(texts)
    return texts.cast(pa.string()) if texts.type != pa.string() else texts


class WordHasher:
    """Every word's hash of a batch of texts, as `simplify_text(text, norm)` and the tokenizer
    split them, with each distinct raw piece's word hashes kept for the next batches (a
    `PieceTable`, whose compiled loops do the per-piece and per-word work)."""

    def __init__(self, norm: TextNormConfig, tokenizer: CachedWordTokenizer, hash_func: Callable[[str], int]):
        from scorers.piece_table import PieceTable  # numba loads here, not for every user of this module

        self.norm = norm
        self.tokenizer = tokenizer
        self.hash = hash_func
        self._table = PieceTable()
        self._compiled_words = False
        self._seeded = False
        # ASCII pieces are simplified directly unless a word pattern applies or punctuation stays
        self._ascii_shortcut = norm.remove_punctuation and not (norm.norm_weekdays or norm.norm_monthnames)
        self._norm_whole, self._norm_before_marks = norm, replace(norm, norm_unicode_diacritics=False)

    def words(self, text: str) -> list[str]:
        """One text's words, as strings."""
        return [word for split in self.tokenizer.piece_words(simplify(text, self.norm).split()) for word in split]

    def hashes(self, texts: list[str] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """The hash of every word of every text, in order, and each text's word count. A text
        holding a capital sigma is simplified whole (`_CAPITAL_SIGMA`)."""
        column, pieces, per_text, whole = self._pieces(texts)
        hashes = self._table.word_hashes(pieces)
        lengths = _lengths(self._table.word_counts(pieces), per_text)
        if len(whole):
            hashes, lengths = self._simplified_whole(hashes, lengths, whole, [column[int(i)].as_py() for i in whole])
        return hashes, lengths

    def texts_with_window(self, texts, n: int, keys) -> np.ndarray:
        """Per text, whether n consecutive words of it have a `combine` key in `keys` (a
        `scorers.piece_table.KeySet`). Windows never straddle texts."""
        from scorers.piece_table import has_window_key

        column, pieces, per_text, whole = self._pieces(texts)
        hits = self._table.texts_with_key(pieces, per_text, n, _WINDOW_BASE, keys)
        for position in whole.tolist():
            words = np.fromiter(map(self.hash, self.words(column[position].as_py())), np.uint64)
            hits[position] = has_window_key(words, n, _WINDOW_BASE, *keys)
        return hits

    def _pieces(self, texts) -> tuple[pa.StringArray, np.ndarray, np.ndarray, np.ndarray]:
        """The column, every raw piece's table entry in order, each text's number of pieces, and
        the texts to simplify whole. The texts are cut into raw pieces (`_cut_tables`: every
        cut character becomes a space); pieces not met before are added to the table, with
        their word hashes (`_words_of_pieces`)."""
        from scorers.piece_table import text_buffers

        column = _string_array(texts)
        raw, offsets = text_buffers(column)
        ascii_table, cut_codepoints = _cut_tables(self.norm.remove_punctuation, self.norm.lowercase)
        values, sigma = self._table.cut(
            raw, offsets, ascii_table, cut_codepoints, self.norm.remove_punctuation, ord(_CAPITAL_SIGMA)
        )
        if len(self._table) > self.tokenizer.max_entries or not self._seeded:
            self._table.forget()
            self._seeded = False
            self._seed()
            self._seeded = True
        pieces, per_text, first_new = self._table.index(values, offsets)
        try:
            self._learn(first_new)
        except BaseException:
            self._seeded = False  # pieces without their words must never be looked up: start again
            raise
        whole = np.flatnonzero(sigma) if self.norm.lowercase else np.empty(0, np.int64)
        return column, pieces, per_text, whole

    def _simplified_whole(self, hashes, lengths, positions: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`hashes` and `lengths` with the words of the texts at `positions` (ascending) replaced by
        those of their whole-text simplification, in one copy of the batch's hashes."""
        first_word = np.concatenate([[0], np.cumsum(lengths)])
        exact = [np.fromiter(map(self.hash, self.words(text)), np.uint64) for text in texts]
        parts, kept_from = [], 0
        for position, words in zip(positions, exact, strict=True):
            parts += [hashes[kept_from : first_word[position]], words]
            kept_from = first_word[position + 1]
        parts.append(hashes[kept_from:])
        lengths = lengths.copy()
        lengths[positions] = [len(e) for e in exact]
        return np.concatenate(parts), lengths

    def _simplified_pieces(self, piece: str) -> list[str]:
        """What a raw piece simplifies to, split at whitespace. An ASCII piece holds only letters,
        digits and the separators a number can hold: it is simplified here, the way
        `simplify_text` does it to such a string (lower case, numbers, the two separators)."""
        if not (self._ascii_shortcut and piece.isascii()):
            return simplify(piece, self._norm_whole, self._norm_before_marks).split()
        if self.norm.lowercase:
            piece = piece.lower()
        if piece.isalpha():
            return [piece]
        if self.norm.norm_numbers:
            piece = _ASCII_NUMBERS.sub("0", piece)
        return piece.translate(_ASCII_NUMBER_SEPARATORS_TO_SPACE).split()

    def _seed(self) -> None:
        """Put the tokenizer's special cases made of ASCII letters in the table first, split its
        way: a new piece of ASCII letters is then never one, and `_learn` takes it as one word."""
        specials = self.tokenizer.special_cases() if self._ascii_shortcut else None
        self._compiled_words = specials is not None and self.hash is xxhash64
        if not self._compiled_words:
            return
        ascii_table, _ = _cut_tables(self.norm.remove_punctuation, self.norm.lowercase)
        byte_table = ascii_table.tobytes() + bytes(range(128, 256))
        seeds = sorted({s.encode().translate(byte_table) for s in specials if s.isascii() and s.isalpha()})
        values = np.frombuffer(b" ".join(seeds), np.uint8)
        _, _, first_new = self._table.index(values, np.array([0, len(values)], np.int64))
        self._set_words(np.arange(first_new, len(self._table)))

    def _learn(self, first_new: int) -> None:
        """The word hashes of the entries from `first_new` on. A piece of ASCII letters that is no
        special case of the tokenizer simplifies to itself (the byte table lowered it already)
        and is one word (`_letters_split`): its hash is computed by the compiled loop when it is
        datatrove's XXH64; every other piece is simplified and split in Python."""
        new = np.arange(first_new, len(self._table))
        if not len(new):
            return
        if not self._compiled_words:
            self._set_words(new)
            return
        letters, hashes = self._table.letters_and_hashes(first_new)
        other = new[~letters]
        words = self._words_of_pieces(self._table.strings(other))
        counts = np.ones(len(new), np.int64)
        counts[~letters] = [len(w) for w in words]
        flat = np.repeat(hashes, counts)  # a letters piece's one hash; the others' slots are filled below
        other_at = (np.cumsum(counts) - counts)[~letters]
        for at, its_words in zip(other_at.tolist(), words, strict=True):
            flat[at : at + len(its_words)] = its_words
        self._table.set_words(counts, flat)

    def _set_words(self, entries: np.ndarray) -> None:
        words = self._words_of_pieces(self._table.strings(entries))
        counts = np.fromiter(map(len, words), np.int64, len(words))
        self._table.set_words(counts, np.fromiter(chain.from_iterable(words), np.uint64, int(counts.sum())))

    def _words_of_pieces(self, pieces: list[str]) -> list[tuple[int, ...]]:
        """The word hashes of new raw pieces. Most are plain words: ASCII letters and no special
        case of the tokenizer, which simplify to themselves (the byte table lowered them already)
        and are one word each (`_letters_split`); the others are simplified and split together."""
        specials = self.tokenizer.special_cases() if self._ascii_shortcut else None
        plain = [specials is not None and p.isascii() and p.isalpha() and p not in specials for p in pieces]
        other = [p for p, is_plain in zip(pieces, plain, strict=True) if not is_plain]
        parts = [self._simplified_pieces(piece) for piece in other]
        words = iter(self.tokenizer.piece_words(list(chain.from_iterable(parts))))
        other_hashes = iter([tuple(map(self.hash, chain.from_iterable(islice(words, len(its_parts))))) for its_parts in parts])
        hash_func = self.hash
        return [(hash_func(p),) if is_plain else next(other_hashes) for p, is_plain in zip(pieces, plain, strict=True)]


def _lengths(word_counts: np.ndarray, per_text: np.ndarray) -> np.ndarray:
    """Each text's number of words, from its pieces' word counts (pieces of the texts in turn)."""
    ends = np.cumsum(word_counts)
    last_piece = np.cumsum(per_text)
    words_before = np.concatenate([[0], ends])
    return words_before[last_piece] - words_before[last_piece - per_text]
