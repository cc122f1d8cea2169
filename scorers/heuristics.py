"""datatrove's heuristic filters as it applies them (same parameters, same order, same reasons,
the same kept text), with their slow parts done faster: Gopher's quality rules test each
distinct word once; Gopher's repetition rules compute their word n-gram statistics over arrays
instead of one joined string per n-gram; C4 stops counting sentences once it has enough.

The filter's two n-gram measures identify an n-gram by a string: the words joined by spaces for
the top n-gram (2-4), joined by nothing for the duplicated n-grams (5-10). Here each n-gram is a
substring of one string (the words joined by spaces, or by nothing), and its identity is a 64-bit
polynomial hash of that substring, read from prefix sums of the string's code points (every
substring's hash in a few numpy passes). Equal strings always get equal hashes; different strings
could share one only by a 64-bit collision, which would need about 4 billion n-grams in a
document to become likely. The n-grams of every n are grouped by one sort per document. The
duplicated n-gram measure keeps the filter's own walk (an n-gram seen before at a visited position
skips n words), stopping only at n-grams that occurred earlier; a document none of whose n-grams
repeats skips the walk.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import PUNCTUATION_SET, split_into_sentences, split_into_words

from scorers.simplified_words import CachedWordTokenizer

_BASE = 0x100000001B3  # odd, so it has an inverse modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
_LENGTH_MIX = np.uint64(0x9E3779B97F4A7C15)
_N_MIX = np.uint64(0xD6E8FEB86659FD93)  # keeps the n-grams of different n apart in one sort


class _Powers:
    """B**k and Binv**k for k below a size, grown on demand and shared by every string: the same
    numbers for each document otherwise cost two cumulative products per document."""

    powers = np.ones(1, np.uint64)
    inverse = np.ones(1, np.uint64)

    @classmethod
    def upto(cls, size: int) -> tuple[np.ndarray, np.ndarray]:
        if len(cls.powers) < size:
            grown = max(size, 2 * len(cls.powers))
            powers = np.full(grown, _BASE, np.uint64)
            powers[0] = 1
            inverse = np.full(grown, _BASE_INVERSE, np.uint64)
            inverse[0] = 1
            np.cumprod(powers, out=powers)  # B**k, wrapping at 2**64
            np.cumprod(inverse, out=inverse)  # Binv**k
            cls.powers, cls.inverse = powers, inverse  # replaced whole: a reader never sees a half-grown array
        return cls.powers, cls.inverse


class SubstringHashes:
    """Hashes of substrings of one string: `of(starts, ends)` for many ranges at once."""

    def __init__(self, text: str):
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        size = len(codes)
        self._powers, inverse = _Powers.upto(size + 1)
        self._prefix = np.zeros(size + 1, np.uint64)
        np.cumsum(codes * inverse[:size], out=self._prefix[1:])  # sum of c[j] * Binv**j

    def of(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """sum of c[j] * B**(end - 1 - j) over each [start, end), mixed with the length."""
        sums = (self._prefix[ends] - self._prefix[starts]) * self._powers[np.maximum(ends - 1, 0)]
        return sums + (ends - starts).astype(np.uint64) * _LENGTH_MIX


class NgramGroups:
    """The word n-grams of one text for several n at once, grouped by identity with one sort.

    Block b holds the n-grams of `ns[b]` (an n larger than the word count has no block), in text
    order, from `offsets[b]`; `groups` numbers equal n-grams of a block alike (the numbers are not
    in text order), `sizes` are their lengths in characters, `later` marks every n-gram that
    occurred earlier in its block."""

    def __init__(self, hashes: SubstringHashes, lengths: np.ndarray, separator: int, ns):
        words = len(lengths)
        self.ns = [n for n in ns if n <= words]
        counts = [words - n + 1 for n in self.ns]
        self.offsets = np.concatenate(([0], np.cumsum(counts))).tolist()
        if not self.ns:
            return
        starts = np.zeros(words, np.int64)
        np.cumsum(lengths[:-1] + separator, out=starts[1:])
        ends = starts + lengths
        first = np.concatenate([starts[:count] for count in counts])
        last = np.concatenate([ends[n - 1 :] for n in self.ns])
        keys = hashes.of(first, last) ^ (np.repeat(np.array(self.ns, np.uint64), counts) * _N_MIX)
        order = np.argsort(keys)
        ordered = keys[order]
        starts_group = np.empty(len(keys), bool)
        starts_group[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=starts_group[1:])
        self.groups = np.empty(len(keys), np.int64)
        self.groups[order] = np.cumsum(starts_group) - 1
        earliest = np.minimum.reduceat(order, np.flatnonzero(starts_group))  # per group, in text order
        self.later = earliest[self.groups] != np.arange(len(keys))
        self.sizes = last - first

    def blocks(self) -> Iterator[tuple[int, int, int]]:
        """(n, first index, end) of each block."""
        return zip(self.ns, self.offsets[:-1], self.offsets[1:])


def top_ngram_chars(spaced: SubstringHashes, lengths: np.ndarray, ns) -> dict[int, int | None]:
    """`find_top_duplicate(get_n_grams(words, n))` for each n: the most frequent n-gram's length
    times its count, the first seen among equally frequent ones (as `Counter.most_common(1)`
    picks: the earliest position whose n-gram has the top count is that n-gram's first); None
    without an n-gram."""
    grams = NgramGroups(spaced, lengths, 1, ns)
    found: dict[int, int | None] = dict.fromkeys(ns)
    if not grams.ns:
        return found
    counts = np.bincount(grams.groups)[grams.groups]
    for n, start, stop in grams.blocks():
        block = counts[start:stop]
        best = block.max()
        found[n] = int(grams.sizes[start + int(np.argmax(block == best))]) * int(best)
    return found


def duplicated_ngram_chars(joined: SubstringHashes, lengths: np.ndarray, ns) -> dict[int, int]:
    """`find_all_duplicate(words, n)` for each n: characters of the n-grams the filter's walk
    meets again. The walk visits positions one by one, adds a new n-gram to its seen set, and
    jumps n positions over an n-gram it has seen. Only an n-gram that occurred earlier can be
    one it has seen, so the walk here stops only at those (`later`); the positions in between
    are visited and new, and their groups are marked seen in one step."""
    grams = NgramGroups(joined, lengths, 0, ns)
    found = dict.fromkeys(ns, 0)
    if not grams.ns or not grams.later.any():
        return found
    seen = np.zeros(len(grams.groups), bool)  # per group: met at a visited position
    for n, start, stop in grams.blocks():
        repeated, idx = 0, start
        for candidate in (np.flatnonzero(grams.later[start:stop]) + start).tolist():
            if candidate < idx:
                continue  # jumped over
            seen[grams.groups[idx:candidate]] = True
            group = grams.groups[candidate]
            if seen[group]:
                repeated += int(grams.sizes[candidate])
                idx = candidate + n
            else:
                seen[group] = True
                idx = candidate + 1
        found[n] = repeated
    return found


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
        tops = top_ngram_chars(spaced, lengths, [n for n, _ in self.top_n_grams]) if spaced else {}
        for n, n_frac in self.top_n_grams:
            if tops[n] is not None and tops[n] / len(text) > n_frac:
                return False, f"top_{n}_gram"

        joined = SubstringHashes("".join(words)) if self.dup_n_grams else None
        duplicated = duplicated_ngram_chars(joined, lengths, [n for n, _ in self.dup_n_grams]) if joined else {}
        for n, n_frac in self.dup_n_grams:
            if duplicated[n] / len(text) > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True


_NON_SYMBOL, _ALPHA = 1, 2


class FastGopherQualityFilter(GopherQualityFilter):
    """datatrove's filter with the two per-word tests (a character that is not punctuation; an
    alphabetic character) looked up per distinct word instead of scanned per occurrence.

    `min_alpha_words_share_of_words`: Gopher's "80% of words contain a letter" rule counted over
    the words that hold a non-punctuation character (datatrove's `max_non_alpha_words_ratio`
    counts every punctuation token of the split as a word, which on clean prose drops about one
    article in ten; Gopher states the rule about words). Checked last, after the stop words."""

    _CACHE_ENTRIES = 500_000

    def __init__(self, *args, min_alpha_words_share_of_words: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.min_alpha_words_share_of_words = min_alpha_words_share_of_words
        self._word_tests: dict[str, int] = {}  # word -> _NON_SYMBOL | _ALPHA bits

    def _tests(self, words: list[str]) -> np.ndarray:
        """Each word's test bits, looked up in C; only words not met before are tested."""
        tests = self._word_tests
        try:
            return np.fromiter(map(tests.__getitem__, words), np.uint8, len(words))
        except KeyError:
            pass
        if len(tests) > self._CACHE_ENTRIES:
            tests.clear()
        for word in set(words).difference(tests):
            tests[word] = _NON_SYMBOL * any(ch not in PUNCTUATION_SET for ch in word) | _ALPHA * any(c.isalpha() for c in word)
        return np.fromiter(map(tests.__getitem__, words), np.uint8, len(words))

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        words = split_into_words(text, self.language)
        n_words = len(words)
        tests = self._tests(words)

        non_symbol_lengths = np.fromiter(map(len, words), np.int64, n_words)[(tests & _NON_SYMBOL).astype(bool)]
        n_non_symbol_words_words = len(non_symbol_lengths)

        if self.min_doc_words and n_non_symbol_words_words < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_non_symbol_words_words > self.max_doc_words:
            return False, "gopher_long_doc"

        avg_n_words = np.mean(non_symbol_lengths) if n_non_symbol_words_words else np.nan
        if self.min_avg_word_length and avg_n_words < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg_n_words > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"

        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"

        lines = text.splitlines()
        if (
            self.max_bullet_lines_ratio
            and sum(s.lstrip().startswith("•") or s.lstrip().startswith("-") for s in lines) / len(lines)
            > self.max_bullet_lines_ratio
        ):
            return False, "gopher_too_many_bullets"
        if (
            self.max_ellipsis_lines_ratio
            and sum(s.rstrip().endswith("...") or s.rstrip().endswith("…") for s in lines) / len(lines)
            > self.max_ellipsis_lines_ratio
        ):
            return False, "gopher_too_many_end_ellipsis"

        if self.max_non_alpha_words_ratio and int(np.count_nonzero(tests & _ALPHA)) / n_words < self.max_non_alpha_words_ratio:
            return False, "gopher_below_alpha_threshold"

        if self.min_stop_words and len(self.stop_words.intersection(words)) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        if (
            self.min_alpha_words_share_of_words
            and n_non_symbol_words_words
            and int(np.count_nonzero(tests == _NON_SYMBOL | _ALPHA)) / n_non_symbol_words_words
            < self.min_alpha_words_share_of_words
        ):
            return False, "gopher_below_alpha_threshold"
        return True


class FastC4QualityFilter(C4QualityFilter):
    """datatrove's C4 filter, counting sentences (spaCy's sentencizer on each kept line, its
    slowest part) only until the count reaches `min_num_sentences`: the count is only ever
    compared with that minimum, so the decisions and the kept text are the filter's."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lines = doc.text.splitlines() if self.split_paragraph else split_into_sentences(doc.text, self.language)

        num_sentences = 0
        kept_lines = []

        for line in lines:
            line = line.strip()
            words = line.split()
            self.stat_update("line-total")
            if self.max_word_length != -1 and max(map(len, words), default=0) > self.max_word_length:
                self.stat_update("line-filter-too_long_word")
                continue
            if self.remove_citations:
                line = CITATION_REGEX.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                self.stat_update("line-filter-no_terminal_punc")
                continue
            if len(words) < self.min_words_per_line:
                self.stat_update("line-filter-too_few_words")
                continue
            line_l = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in line_l:
                return False, "lorem_ipsum"
            if self.filter_javascript and "javascript" in line_l:
                self.stat_update("line-filter-javascript")
                continue
            if self.filter_curly_bracket and "{" in line:
                return False, "curly_bracket"
            if self.filter_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
                self.stat_update("line-filter-policy")
                continue
            if self.min_num_sentences != -1 and num_sentences < self.min_num_sentences:
                num_sentences += self._sentences(line, self.min_num_sentences - num_sentences) if self.split_paragraph else 1
            kept_lines.append(line)
            self.stat_update("line-kept")
        if num_sentences < self.min_num_sentences:
            return False, "too_few_sentences"

        doc.text = ("\n" if self.split_paragraph else " ").join(kept_lines).strip()
        return True

    def _sentences(self, line: str, needed: int) -> int:
        """The line's sentence count, or `needed` once it has that many: the count only ever
        raises the total towards the minimum it is compared with."""
        if isinstance(self.language, CachedWordTokenizer):
            return self.language.sentence_count(line, needed)
        return len(split_into_sentences(line, self.language))
