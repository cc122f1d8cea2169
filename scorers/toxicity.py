"""Toxicity scores: flagged words from the LDNOOBW lists, and a fastText classifier's probability.

One rule for every place that judges toxicity (the run's toxicity stage, the rewrite's output
gate): the word-list score is flagged words per whitespace-separated word, and text is toxic when
it has at least `min_matches` flagged words and its score exceeds `max_score`, so that a single bad
word in a long article (a medical text, a quote) is not enough on its own, unlike C4's any-match
rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from scorers import fasttext_scorer
from scorers.assets import asset_path

FALLBACK_LANGUAGE = "en"  # the list used for a language without its own


def default_wordlist_dir() -> Path:
    return asset_path("ldnoobw")


def check_wordlist_dir(lists: Path) -> None:
    if not (lists / f"{FALLBACK_LANGUAGE}.txt").exists():
        raise FileNotFoundError(f"word list folder {lists} has no {FALLBACK_LANGUAGE}.txt word list")


@lru_cache(maxsize=64)
def _automaton(path: str):
    """One Aho-Corasick automaton over a list's terms (lower-cased), each stored with its length."""
    import ahocorasick

    words = {
        line.strip().lower()
        for line in Path(path).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    if not words:
        return None
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, len(word))
    automaton.make_automaton()
    return automaton


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"  # what `\w` matches in a str pattern


def flagged_words(text: str, language: str | None, lists: Path) -> list[str]:
    """The list's terms found in `text` as whole words, left to right, without overlap, the longest
    term winning where several start at one place (a phrase over its first word): one pass of an
    automaton over the text, then the edge checks on its hits."""
    path = lists / f"{language}.txt"
    if not language or not path.exists():
        path = lists / f"{FALLBACK_LANGUAGE}.txt"
    automaton = _automaton(str(path))
    if automaton is None:
        return []
    lowered = text.lower()
    last = len(lowered) - 1
    longest: dict[int, int] = {}  # start -> length of the longest whole-word term there
    for end, length in automaton.iter(lowered):
        start = end - length + 1
        if (start > 0 and _word_char(lowered[start - 1])) or (end < last and _word_char(lowered[end + 1])):
            continue
        if length > longest.get(start, 0):
            longest[start] = length
    found, cursor = [], 0
    for start in sorted(longest):
        if start >= cursor:
            found.append(lowered[start : start + longest[start]])
            cursor = start + longest[start]
    return found


@dataclass(frozen=True)
class WordListScore:
    flagged: list[str]
    words: int
    score: float  # flagged words per word

    def is_toxic(self, min_matches: int, max_score: float) -> bool:
        return len(self.flagged) >= min_matches and self.score > max_score

    def describe(self) -> str:
        shown = ", ".join(sorted(set(self.flagged))[:5])
        return f"{len(self.flagged)} flagged of {self.words} words ({shown})"


def word_list_score(text: str, language: str | None, lists: Path, n_words: int | None = None) -> WordListScore:
    """`n_words`: the text's whitespace word count when the caller already has it."""
    flagged = flagged_words(text, language, lists)
    words = max(n_words or len(text.split()), 1)
    return WordListScore(flagged, words, round(len(flagged) / words, 6))


def classifier_scores(texts: list[str], model_path: str, label: str) -> list[float]:
    """The fastText toxicity classifier's probability of `label` for each text."""
    scores = fasttext_scorer.score(fasttext_scorer.load(model_path), texts, label=label)
    return [round(s, 6) for s in scores]
