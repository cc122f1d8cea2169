"""The trainer's tokenizer counts and encodes whole documents, whatever its file says about
truncation, padding and special tokens."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, processors

from scorers.tokens import load_tokenizer

TEXTS = [
    "Continual pre-training adapts a model to a new domain without forgetting the old one entirely.",
    "Die Wiederholung älterer Daten (replay) verringert das Vergessen; 5 % reichen oft schon aus.",
    "Ünïcödé, emoji 🙂 and numbers like 3.14159 or 1,000,000 all split into byte-level pieces.",
    "short",
]
SPECIAL = "<|endoftext|>"


def _bundled() -> Tokenizer:
    return Tokenizer.from_file(str(load_tokenizer("smollm2-135m-instruct").path))


def _processors(tokenizer: Tokenizer) -> dict:
    special = (SPECIAL, tokenizer.token_to_id(SPECIAL))
    return {
        "template with specials": processors.TemplateProcessing(
            single=f"{SPECIAL} $A {SPECIAL}", pair=f"{SPECIAL} $A {SPECIAL} $B:1 {SPECIAL}:1", special_tokens=[special]
        ),
        "bert": processors.BertProcessing(special, special),
        "roberta": processors.RobertaProcessing(special, special),
        "byte level": processors.ByteLevel(trim_offsets=True),
    }


@pytest.mark.parametrize("kind", ["template with specials", "bert", "roberta", "byte level"])
def test_ids_are_the_documents_own_whatever_the_file_sets(tmp_path, kind):
    expected = [e.ids for e in _bundled().encode_batch(TEXTS, add_special_tokens=False)]
    saved = _bundled()
    saved.post_processor = _processors(saved)[kind]
    saved.enable_truncation(max_length=8)
    saved.enable_padding(length=64, pad_id=saved.token_to_id(SPECIAL), pad_token=SPECIAL)
    path = tmp_path / "tokenizer.json"
    saved.save(str(path))
    # the file as saved would cut and pad every document: what the loaded tokenizer must not do
    as_saved = Tokenizer.from_file(str(path)).encode_batch(TEXTS, add_special_tokens=False)
    assert {len(e.ids) for e in as_saved} == {64}
    assert max(len(ids) for ids in expected) > 8

    loaded = load_tokenizer(path, append_eos=True, eos_token=SPECIAL)
    eos = saved.token_to_id(SPECIAL)
    assert loaded.encode_batch(TEXTS) == [[*ids, eos] for ids in expected]
    assert loaded.count_batch(TEXTS) == [len(ids) + 1 for ids in expected]


def test_counts_cached_before_documents_were_counted_whole_are_not_reused():
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    assert tokenizer.identity == f"{tokenizer.sha256}:{tokenizer.eos_token}:whole"
