"""The simplified words behind decontamination and MinHash: datatrove's words, computed faster."""

from __future__ import annotations

import pyarrow as pa
import pytest
from datatrove.utils.text import TextNormConfig, simplify_text
from datatrove.utils.word_tokenizers import load_word_tokenizer

from scorers.simplified_words import CachedWordTokenizer, WordHasher, simplify


@pytest.fixture(scope="module")
def spacy_words():
    tokenizer = load_word_tokenizer("en")
    return lambda text: tokenizer.word_tokenize(simplify_text(text, TextNormConfig()))


def test_cached_word_split_equals_spacy_on_real_text(wiki_docs, spanish_docs, messy_docs):
    spacy = load_word_tokenizer("en")
    cached = CachedWordTokenizer(load_word_tokenizer("en"), max_entries=5_000)  # small: clearing happens too
    texts = wiki_docs[:150] + spanish_docs + messy_docs
    for text in texts:
        for variant in (text, simplify_text(text, TextNormConfig())):
            assert cached.word_tokenize(variant) == spacy.word_tokenize(variant)


def test_simplify_equals_datatrove_s(wiki_docs, spanish_docs, messy_docs):
    texts = wiki_docs[:200] + spanish_docs + messy_docs
    texts += ["Ça a été très élégant, naïve café. Ångström on Monday 3,5 km", "  \u0301\u00e9 leading mark ", "İstanbul ǅ ﬁ"]
    for text in texts:
        assert simplify(text, TextNormConfig()) == simplify_text(text, TextNormConfig())


def test_columnar_word_hashes_equal_the_hashes_of_datatrove_s_words(wiki_docs, spanish_docs, messy_docs, spacy_words):
    """The columnar words (texts cut at separators in Arrow, each distinct raw piece simplified
    and split once) hash to the words datatrove's filter splits, text by
    text: on real text and on characters where Unicode rules bite (final sigma, dotted capital I,
    a leading combining mark, non-breaking and ideographic spaces, C1 controls, decimal separators)."""
    from datatrove.utils.hashing import HashConfig, create_hash_func

    texts = wiki_docs[:300] + spanish_docs + messy_docs
    texts += [
        "ΟΔΥΣΣΕΥΣ ΚΑΙ ΠΗΝΕΛΟΠΗΣ ἀρχή",
        "İstanbul\u00a0İZMİR\u3000ǅ ﬁle \u2003 x",
        "\u0301\u00e9 leading mark\x85next\x1cfield\u2028line",
        "3,5 km; 1.000.000 ٫ 12٫5 ⎖ 7⎖8 — “quoted” … (x)",
        "",
        "   \t\n ",
        "cannot won't e-mail U.S.A. http://example.com/a?b=1 #tag @user Cannot GONNA lemme",
        # a capital sigma before a case-ignorable cut character: final or not depends on what follows
        "ΑΣ'Α ΟΔΟΣ:Α ΣΣ ΟΔΟΣ. Σ",
        "ΣΟΦΙΑ'Σ Σ:Σ",  # next to another text simplified whole
        # numbers across the characters a text is not cut at: decimal separators, a fullwidth digit
        # that datatrove's punctuation table also lists, digits of other scripts
        "3.14 x.5 5.x a.,b 1,000,000 5１5 ５１ ٣.5 5.٣ ٣٫٤ 7,x .5 5. ,",
        "The THE the Word. WORD, word; Naïve NAÏVE naïve ǅemal",
        "ΟΔΟΣ",  # the batch's last text simplified whole
    ]
    hashed = create_hash_func(HashConfig())
    hasher = WordHasher(TextNormConfig(), CachedWordTokenizer(load_word_tokenizer("en"), max_entries=5_000), hashed)
    expected = [hashed(word) for text in texts for word in spacy_words(text)]
    for given in (texts, pa.array(texts), pa.chunked_array([texts[:5], texts[5:]])):  # lists and Arrow columns
        hashes, lengths = hasher.hashes(given)
        assert lengths.tolist() == [len(spacy_words(t)) for t in texts]
        assert hashes.tolist() == expected


@pytest.fixture(scope="module")
def french_docs(assets) -> list[str]:
    import json

    data = json.loads((assets / "wiki" / "summaries_fr-fr.json").read_text())
    extracts = [e["extract"] for e in data.values()]
    return ["\n\n".join(extracts[i : i + 5]) for i in range(0, 400, 5)]


ODD_LINES = [
    "Two  spaces. Then a tab\tand a hair\u200aspace. End.",
    " leading space. And trailing. ",
    "Los EE. UU. y Canadá. El mismo año.",
    "...!!! ?? Hello... world?! (yes.) 'quoted.' Next",
    "U.S.A. e.g. etc. Mr. Smith went. 3.5 km. done",
    "",
]


@pytest.mark.parametrize("language", ["eng", "spa", "fra"])
def test_fast_word_tokenizer_equals_spacy_s_words_and_sentences(language, wiki_docs, spanish_docs, french_docs, messy_docs):
    """Words and sentence spans (what C4's sentence count reads) equal spaCy's for every line
    and text of real English, Spanish and French, and for lines with other whitespace, a special
    case that spans a space (Spanish "EE. UU."). (Not "IS_ALPHA", which datatrove works around:
    spaCy itself gives other words for it from one call to the next.)"""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    from scorers.simplified_words import fast_word_tokenizer

    spacy, fast = load_word_tokenizer(language), fast_word_tokenizer(language)
    assert isinstance(fast, CachedWordTokenizer)
    texts = {"eng": wiki_docs[:300] + messy_docs, "spa": spanish_docs, "fra": french_docs}[language] + ODD_LINES
    lines = [line for text in texts for line in text.splitlines()] + ODD_LINES
    for text in texts:
        assert fast.word_tokenize(text) == spacy.word_tokenize(text)
    for line in lines:
        assert fast.span_tokenize(line) == spacy.span_tokenize(line), line


def test_splitting_new_pieces_leaves_no_lexeme_without_its_attributes():
    """The split skips spaCy's lexical attributes for new words; such a lexeme must not outlive
    it, or a later spaCy call (the sentencizer reads is_punct) would see a word without them."""
    from scorers.simplified_words import fast_word_tokenizer

    tokenizer = fast_word_tokenizer("eng")
    vocab = tokenizer.inner.tokenizer.vocab
    getters = vocab.lex_attr_getters
    novel = ["zqxjvblorp.", "(wuggletronic)", "!!!???"]
    assert not any(piece.strip("().!?") in vocab for piece in novel)
    assert tokenizer.piece_words(novel) == [("zqxjvblorp", "."), ("(", "wuggletronic", ")"), ("!", "!", "!", "?", "?", "?")]
    assert vocab.lex_attr_getters is getters and len(getters) > 10
    assert "zqxjvblorp" not in vocab and "wuggletronic" not in vocab
    assert vocab["wuggletronic"].is_alpha and vocab["..."].is_punct  # made outside the split: attributes as usual


def test_an_ascii_piece_holds_only_letters_digits_and_number_separators():
    """The ASCII shortcut of `WordHasher` simplifies a piece by lower case, numbers and the two
    number separators alone: every other ASCII character must be one the texts are cut at."""
    from scorers.simplified_words import _ASCII_JOINS, _cut_tables

    table = _cut_tables(True)[0].tobytes()
    kept = {chr(b) for b in range(128) if table[b] != 32} | _ASCII_JOINS
    assert {c for c in kept if not c.isalnum()} == {".", ","}
