"""The word-list rule's matching: one Aho-Corasick automaton, held to the regular expression it
replaced (every term as a whole word, left to right, longest term first) on real text of every
bundled language and on text built to hit the edge cases."""

from __future__ import annotations

import random

import pytest

from benchmarks.toxicity import list_terms, real_texts, regex_flagged
from scorers.toxicity import flagged_words


def _planted(terms: list[str], rng: random.Random) -> list[str]:
    """Terms inside words, beside digits, underscores, punctuation and other terms, phrases with
    their own first word, upper case: every way the edge rules can decide."""
    glue = ["", " ", "_", "-", ".", "1", "a", "é", "'", "\n", ", "]
    texts = []
    for _ in range(400):
        parts = []
        for _ in range(rng.randint(3, 12)):
            term = rng.choice(terms)
            parts.append(term.upper() if rng.random() < 0.2 else term)
            parts.append(rng.choice(glue))
        texts.append("".join(parts))
    return texts


@pytest.mark.parametrize("language", ["ar", "de", "en", "es", "fr", "hi", "it", "ja", "ko", "nl", "pt", "ru", "sv", "th", "zh"])
def test_the_automaton_finds_what_the_regular_expression_finds(assets, language):
    lists = assets / "ldnoobw"
    terms = list_terms(lists / f"{language}.txt")
    texts = real_texts(assets) + _planted(terms, random.Random(language))
    reference = regex_flagged(terms)
    differ = [t for t in texts if flagged_words(t, language, lists) != reference(t)]
    assert not differ, differ[:3]
    # the planted texts do hit: the comparison is not between two empty lists
    assert sum(bool(flagged_words(t, language, lists)) for t in texts) > 300
