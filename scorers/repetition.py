"""Gopher's repetition rules (datatrove's `GopherRepetitionFilter`, same parameters, same order,
same reasons) with the word n-gram statistics computed over arrays instead of one joined string
per n-gram.

The filter's two n-gram measures identify an n-gram by a string: the words joined by spaces for
the top n-gram (2-4), joined by nothing for the duplicated n-grams (5-10). Here each n-gram is a
substring of one string (the words joined by spaces, or by nothing), and its identity is a 64-bit
polynomial hash of that substring, read from prefix sums of the string's code points (every
substring's hash in a few numpy passes). Equal strings always get equal hashes; different strings
could share one only by a 64-bit collision, which would need about 4 billion n-grams in a
document to become likely. The duplicated n-gram measure keeps the filter's own walk (an n-gram
seen before at a visited position skips n words) over the hashes, from the first n-gram that
repeats anything; a document none of whose n-grams repeats skips the walk.
"""

from __future__ import annotations

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.filters import GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import split_into_words

_BASE = 0x100000001B3  # odd, so it has an inverse modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
_LENGTH_MIX = np.uint64(0x9E3779B97F4A7C15)


class SubstringHashes:
    """Hashes of substrings of one string: `of(starts, ends)` for many ranges at once."""

    def __init__(self, text: str):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        size = len(codes)
        inverse_powers = np.full(size, _BASE_INVERSE, np.uint64)
        inverse_powers[:1] = 1
        np.cumprod(inverse_powers, out=inverse_powers)  # Binv**j, wrapping at 2**64
        self._prefix = np.zeros(size + 1, np.uint64)
        np.cumsum(codes * inverse_powers, out=self._prefix[1:])  # sum of c[j] * Binv**j
        self._powers = np.full(size + 1, _BASE, np.uint64)
        self._powers[0] = 1
        np.cumprod(self._powers, out=self._powers)  # B**k

    def of(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """sum of c[j] * B**(end - 1 - j) over each [start, end), mixed with the length."""
        sums = (self._prefix[ends] - self._prefix[starts]) * self._powers[np.maximum(ends - 1, 0)]
        return sums + (ends - starts).astype(np.uint64) * _LENGTH_MIX


def _ngram_ranges(lengths: np.ndarray, separator: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) in the words joined by `separator` characters, of every n consecutive words."""
    starts = np.concatenate([[0], np.cumsum(lengths + separator)[:-1]]).astype(np.int64)
    ends = starts + lengths
    return starts[: len(lengths) - n + 1], ends[n - 1 :]


def top_ngram_chars(spaced: SubstringHashes, lengths: np.ndarray, n: int) -> int | None:
    """`find_top_duplicate(get_n_grams(words, n))`: the most frequent n-gram's length times its
    count, the first seen among equally frequent ones (as `Counter.most_common(1)` picks); None
    without an n-gram."""
    if len(lengths) < n:
        return None
    starts, ends = _ngram_ranges(lengths, 1, n)
    keys = spaced.of(starts, ends)
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    best = counts.max()
    position = first[counts == best].min()
    return int(ends[position] - starts[position]) * int(best)


def duplicated_ngram_chars(joined: SubstringHashes, lengths: np.ndarray, n: int) -> int:
    """`find_all_duplicate(words, n)`: characters of the n-grams met again in the filter's walk."""
    if len(lengths) < n:
        return 0
    starts, ends = _ngram_ranges(lengths, 0, n)
    keys = joined.of(starts, ends)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeats = order[1:][sorted_keys[1:] == sorted_keys[:-1]]  # positions whose n-gram came earlier
    if not len(repeats):
        return 0
    first = int(repeats.min())
    key_list, sizes = keys.tolist(), (ends - starts).tolist()
    seen = set(key_list[:first])  # every position before the first repeat is visited and new
    repeated, idx, last = 0, first, len(key_list)
    while idx < last:
        key = key_list[idx]
        if key in seen:
            repeated += sizes[idx]
            idx += n
        else:
            seen.add(key)
            idx += 1
    return repeated


class FastGopherRepetitionFilter(GopherRepetitionFilter):
    """datatrove's filter with its word n-gram statistics computed over arrays."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"

        paragraphs = self.paragraph_exp.split(text.strip())
        paragraphs_duplicates, char_duplicates = find_duplicates(paragraphs)
        if self.dup_para_frac and paragraphs_duplicates / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and char_duplicates / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"

        lines = self._line_splitter.split(text)
        line_duplicates, char_duplicates = find_duplicates(lines)
        if self.dup_line_frac and line_duplicates / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and char_duplicates / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"

        words = split_into_words(text, self.language)
        if any(" " in word for word in words):  # a special case spanning a space: joins are ambiguous
            return super().filter(doc)
        lengths = np.fromiter(map(len, words), np.int64, len(words))

        spaced = SubstringHashes(" ".join(words)) if self.top_n_grams else None
        for n, n_frac in self.top_n_grams:
            top_char_length = top_ngram_chars(spaced, lengths, n)
            if top_char_length is not None and top_char_length / len(text) > n_frac:
                return False, f"top_{n}_gram"

        joined = SubstringHashes("".join(words)) if self.dup_n_grams else None
        for n, n_frac in self.dup_n_grams:
            if duplicated_ngram_chars(joined, lengths, n) / len(text) > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True
