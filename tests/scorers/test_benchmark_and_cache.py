"""Benchmark scores by log-likelihood, and the Parquet loss cache."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from scorers.benchmark import (
    BenchmarkFileError,
    Question,
    load_mmlu_jsonl,
    multiple_choice_accuracy,
    prompt_for,
    sample_questions,
)
from scorers.loss_cache import CacheDocument, losses_with_cache
from scorers.losses import DocumentLoss


def _row(**over):
    row = {
        "question": "2+2?",
        "answer_a": "3",
        "answer_b": "4",
        "answer_c": "5",
        "answer_d": "6",
        "correct_answer": "B",
        "topic": "math",
    }
    return json.dumps({**row, **over})


def test_malformed_rows_are_skipped_with_their_line(tmp_path):
    path = tmp_path / "b.jsonl"
    lines = [_row(), "{not json", _row(correct_answer="E"), json.dumps({"question": "x"}), _row(question="  "), _row(topic="bio")]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_mmlu_jsonl(path)
    assert [q.topic for q in loaded.questions] == ["math", "bio"]
    assert [n for n, _ in loaded.skipped] == [2, 3, 4, 5]
    assert "not JSON" in loaded.skipped[0][1] and "missing field correct_answer" in loaded.skipped[2][1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n[]\n")
    with pytest.raises(BenchmarkFileError, match="no usable question"):
        load_mmlu_jsonl(bad)


def test_bundled_mmlu_loads(assets):
    loaded = load_mmlu_jsonl(assets / "mmlu.jsonl")
    assert len(loaded.questions) > 14000 and len({q.topic for q in loaded.questions}) > 50
    subset = sample_questions(loaded.questions, 60, seed=3)
    assert len(subset) == 60 and len({q.topic for q in subset}) >= 50
    assert subset == sample_questions(loaded.questions, 60, seed=3)


class LetterBiasedScorer:
    """A real scorer with a known preference: the closer a token's code is to 'C', the likelier."""

    engine, max_len = "letters", 512

    def encode(self, text):
        return [ord(c) for c in text]

    def logprobs(self, sequences):
        return [[0.0] + [-abs(t - ord("C")) for t in s[1:]] for s in sequences]


def test_accuracy_is_the_share_of_questions_whose_best_letter_is_right():
    qs = [Question(f"q{i}", ("a", "b", "c", "d"), answer, "t") for i, answer in enumerate([2, 2, 0, 1, 2])]
    assert multiple_choice_accuracy(LetterBiasedScorer(), qs, bos_id=None) == pytest.approx(3 / 5)
    assert prompt_for(qs[0]) == "q0\nA. a\nB. b\nC. c\nD. d\nAnswer:"


class WordScorer:
    """Whole words as tokens, so each letter is one token: the next-token choice path."""

    engine, max_len = "words", 512
    vocab: dict[str, int] = {}

    def encode(self, text):
        return [self.vocab.setdefault(w, len(self.vocab) + 1) for w in text.split()]

    def choose(self, contexts, candidates):
        # prefers the candidate whose letter appears most often in the context
        return [max(range(len(candidates)), key=lambda k: list(c).count(candidates[k])) for c in contexts]


def test_single_token_letters_use_one_choice_per_question():
    qs = [Question("pick B B", ("x", "y", "z", "w"), 1, "t"), Question("C C C", ("x", "y", "z", "w"), 0, "t")]
    assert multiple_choice_accuracy(WordScorer(), qs, bos_id=None) == 0.5


def test_cache_computes_only_what_is_missing(tmp_path):
    calls = []

    def compute(texts):
        calls.append(list(texts))
        return [DocumentLoss(len(t), len(t), float(len(t))) for t in texts]

    docs = [CacheDocument("a", "h1", "xx"), CacheDocument("b", "h2", "yyyy")]
    table, computed = losses_with_cache(tmp_path, "m1", docs, compute)
    assert computed == 2 and table.column("bits_per_char").to_pylist() == pytest.approx([1 / 0.6931471805599453] * 2)
    table, computed = losses_with_cache(tmp_path, "m1", docs + [CacheDocument("c", "h3", "z")], compute)
    assert computed == 1 and calls[-1] == ["z"] and table.column("doc_id").to_pylist() == ["a", "b", "c"]
    # the same text under another id reuses the cached loss; another model computes afresh
    table, computed = losses_with_cache(tmp_path, "m1", [CacheDocument("again", "h1", "xx")], compute)
    assert computed == 0 and table.column("doc_id").to_pylist() == ["again"]
    _, computed = losses_with_cache(tmp_path, "m2", docs, compute)
    assert computed == 2 and len(list((tmp_path / "m1").glob("part-*.parquet"))) == 2


@pytest.mark.slow
def test_real_models_measure_mmlu_and_engines_agree(assets):
    from scorers.losses import make_scorer
    from scorers.models import model_path

    questions = sample_questions(load_mmlu_jsonl(assets / "mmlu.jsonl").questions, 24, seed=0)
    accuracies = {}
    for engine in ("vllm", "transformers"):
        scorer = make_scorer(engine, model_path("smollm2-135m-instruct"), max_len=1024)
        accuracies[engine] = multiple_choice_accuracy(scorer, questions, scorer.bos_id)
    assert abs(accuracies["vllm"] - accuracies["transformers"]) <= 2 / 24  # float noise may flip a close call

    # An answer key made from the model's own picks, read straight from its logits: the first 10
    # answers are its pick, the other 14 are not, so its accuracy must be exactly 10/24.
    picks = letter_picks_from_logits(scorer, questions)
    keyed = [replace(q, answer=pick if i < 10 else (pick + 1) % 4) for i, (q, pick) in enumerate(zip(questions, picks))]
    assert multiple_choice_accuracy(scorer, keyed, scorer.bos_id) == 10 / 24
    assert accuracies["transformers"] == sum(p == q.answer for p, q in zip(picks, questions)) / 24


def letter_picks_from_logits(scorer, questions: list[Question]) -> list[int]:
    """Which of " A".." D" a transformers model rates likeliest after each prompt, by one forward
    pass over BOS + prompt: the letter-scoring rule, computed without scorers.benchmark."""
    import torch

    letter_ids = [scorer.tokenizer(f" {letter}", add_special_tokens=False)["input_ids"][0] for letter in "ABCD"]
    picks = []
    for q in questions:
        ids = [scorer.tokenizer.bos_token_id] + scorer.tokenizer(prompt_for(q), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = scorer.model(input_ids=torch.tensor([ids])).logits[0, -1]
        picks.append(int(torch.argmax(logits[letter_ids])))
    return picks
