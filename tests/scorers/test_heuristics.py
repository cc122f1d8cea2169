"""Gopher's repetition rules over arrays give datatrove's statistics and decisions exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datatrove.data import Document
from datatrove.pipeline.filters import GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams

from scorers.heuristics import FastGopherRepetitionFilter, SubstringHashes, duplicated_ngram_chars, top_ngram_chars
from scorers.simplified_words import fast_word_tokenizer


def repetitive_texts(wiki_docs: list[str], seed: int = 0) -> list[str]:
    """Real text made repetitive in the ways the rules measure: a repeated paragraph, a sentence
    repeated a few times, a phrase looped, words whose concatenations collide ("ab c" / "a bc"),
    ties between n-grams of equal counts, and texts shorter than one n-gram."""
    rng = random.Random(seed)
    texts = []
    for doc in wiki_docs[:60]:
        paragraphs = doc.split("\n\n")
        sentence = paragraphs[0].split(". ")[0] + "."
        words = doc.split()
        texts += [
            doc + "\n\n" + paragraphs[0],
            " ".join([sentence] * rng.randint(2, 4)) + " " + doc,
            " ".join(words[:40] + words[10:22] * rng.randint(2, 6) + words[40:]),
        ]
    texts += [
        "ab c ab c a bc a bc ab c d e f g h i j k l ab c ab c",
        "one two three one two three four four four five five five " * 3,
        "the cat the dog the cat the dog",
        "short text",
        "word",
        "tie a b tie c d a b c d",
    ]
    return texts


@pytest.fixture(scope="module")
def tokenizer():
    return fast_word_tokenizer("eng")


def test_statistics_equal_datatrove_s(wiki_docs, messy_docs, tokenizer):
    for text in wiki_docs[:200] + messy_docs + repetitive_texts(wiki_docs):
        words = tokenizer.word_tokenize(text)
        lengths = np.fromiter(map(len, words), np.int64, len(words))
        if not words:
            continue
        spaced, joined = SubstringHashes(" ".join(words)), SubstringHashes("".join(words))
        tops, duplicated = top_ngram_chars(spaced, lengths, (2, 3, 4)), duplicated_ngram_chars(joined, lengths, range(5, 11))
        for n in (2, 3, 4):
            ngrams = get_n_grams(words, n)
            assert tops[n] == (find_top_duplicate(ngrams) if ngrams else None), (n, text[:80])
        for n in range(5, 11):
            assert duplicated[n] == find_all_duplicate(words, n), (n, text[:80])


def test_decisions_and_reasons_equal_datatrove_s(wiki_docs, messy_docs, spanish_docs, tokenizer):
    texts = (
        wiki_docs[:300] + messy_docs + spanish_docs + repetitive_texts(wiki_docs, seed=1) + ["", "Los EE. UU. y EE. UU. otra vez"]
    )
    for params in ({}, {"top_n_grams": ((2, 0.05), (3, 0.04)), "dup_n_grams": ((5, 0.02), (7, 0.01))}):
        ours, theirs = (
            FastGopherRepetitionFilter(language=tokenizer, **params),
            GopherRepetitionFilter(language=tokenizer, **params),
        )
        decisions = [(ours.filter(Document(text=t, id="x")), theirs.filter(Document(text=t, id="x"))) for t in texts]
        assert all(a == b for a, b in decisions)
        assert sum(b is not True for _, b in decisions) >= 80  # the texts exercise the drops


def test_quality_rules_equal_datatrove_s(wiki_docs, messy_docs, spanish_docs, tokenizer):
    from datatrove.pipeline.filters import GopherQualityFilter

    from scorers.heuristics import FastGopherQualityFilter

    texts = wiki_docs[:300] + messy_docs + spanish_docs + repetitive_texts(wiki_docs, seed=2)
    texts += [
        "# " * 60 + "word " * 60,
        "... " * 80 + "word " * 80,
        "\n".join(f"- item {i} here" for i in range(80)),
        ". , ; " * 40,
    ]
    for params in ({}, {"min_doc_words": 20, "min_stop_words": 1, "max_symbol_word_ratio": 0.02}):
        ours, theirs = FastGopherQualityFilter(language=tokenizer, **params), GopherQualityFilter(language=tokenizer, **params)
        decisions = [(ours.filter(Document(text=t, id="x")), theirs.filter(Document(text=t, id="x"))) for t in texts]
        assert all(a == b for a, b in decisions)
        assert len({b for _, b in decisions if b is not True}) >= 4  # several rules fire


def test_letter_rule_over_words_is_gopher_s_rule_on_words(wiki_docs, messy_docs, spanish_docs, tokenizer):
    """The default letter rule: datatrove's filter without its token-counted rule, then "at least
    80% of the words (tokens with a non-punctuation character) hold a letter"."""
    from datatrove.pipeline.filters import GopherQualityFilter
    from datatrove.utils.text import PUNCTUATION_SET, split_into_words

    from scorers.heuristics import FastGopherQualityFilter

    def reference(text: str) -> bool | tuple[bool, str]:
        verdict = GopherQualityFilter(language=tokenizer, max_non_alpha_words_ratio=None).filter(Document(text=text, id="x"))
        if verdict is not True:
            return verdict
        words = [w for w in split_into_words(text, tokenizer) if any(ch not in PUNCTUATION_SET for ch in w)]
        if words and sum(any(c.isalpha() for c in w) for w in words) / len(words) < 0.8:
            return False, "gopher_below_alpha_threshold"
        return True

    table = " ".join(f"{1000 + i} {i * 7001}.25 ({2000 + i})" for i in range(40))
    prose = " the measurements from the station and the values of the survey were" * 8
    texts = wiki_docs[:300] + messy_docs + spanish_docs + [table, table + prose, table + prose * 3]
    ours = FastGopherQualityFilter(language=tokenizer, max_non_alpha_words_ratio=None, min_alpha_words_share_of_words=0.8)
    decisions = [(ours.filter(Document(text=t, id="x")), reference(t)) for t in texts]
    assert all(a == b for a, b in decisions)
    assert any(b == (False, "gopher_below_alpha_threshold") for _, b in decisions)


def test_c4_decisions_and_kept_text_equal_datatrove_s(wiki_docs, messy_docs, spanish_docs, tokenizer):
    from datatrove.pipeline.filters import C4QualityFilter

    from scorers.heuristics import FastC4QualityFilter

    texts = wiki_docs[:300] + messy_docs + spanish_docs + repetitive_texts(wiki_docs, seed=3)
    texts += [
        "One. Two. Three.\nFour here now. Five is it.",
        "lorem ipsum dolor sit amet.",
        "a { b } c d e.",
        "Short.\nLines only.",
    ]
    for params in ({}, {"min_num_sentences": 12}, {"min_num_sentences": -1, "filter_policy": False}):
        ours, theirs = FastC4QualityFilter(language=tokenizer, **params), C4QualityFilter(language=tokenizer, **params)
        for text in texts:
            mine, reference = Document(text=text, id="x"), Document(text=text, id="x")
            assert ours.filter(mine) == theirs.filter(reference)
            assert mine.text == reference.text
