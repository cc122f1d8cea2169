"""Document losses: windowing on hand-checked cases, and both real engines on SmolLM2-135M."""

from __future__ import annotations

import math

import pytest

from scorers.losses import LN2, document_losses, plan_windows
from scorers.models import ModelLoadError


def test_windows_score_every_token_once_with_context():
    windows = plan_windows(10, max_len=4, overlap=2)
    assert [(w.start, w.end, w.score_from) for w in windows] == [(0, 4, 0), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    for n, max_len, overlap in [(1, 4, 2), (7, 7, 3), (100, 9, 8), (50, 16, 0)]:
        scored = [i for w in plan_windows(n, max_len, overlap) for i in range(w.score_from, w.end)]
        assert scored == list(range(n))
        assert all(w.end - w.start <= max_len for w in plan_windows(n, max_len, overlap))
    assert plan_windows(0, 4, 2) == []


class CountingScorer:
    """A real (if trivial) model: every token has probability 1/2, and each scored position is
    recorded, so windowing and BOS handling can be checked exactly."""

    engine = "counting"

    def __init__(self, max_len):
        self.max_len = max_len
        self.sequences = []

    def encode(self, text):
        return [ord(c) for c in text]

    def logprobs(self, sequences):
        self.sequences.extend(sequences)
        return [[0.0] + [math.log(0.5)] * (len(s) - 1) for s in sequences]


def test_document_loss_counts_each_token_once():
    scorer = CountingScorer(max_len=5)
    text = "abcdefghij"
    [loss] = document_losses(scorer, [text], bos_id=0, overlap=2)
    # with a BOS every one of the 10 characters is predicted exactly once
    assert loss.n_tokens == 10 and loss.total_nats == pytest.approx(10 * LN2)
    assert loss.bits_per_char == pytest.approx(1.0)
    assert scorer.sequences[0][0] == 0 and all(len(s) <= 5 for s in scorer.sequences)
    [no_bos] = document_losses(CountingScorer(max_len=5), [text], bos_id=None, overlap=2)
    assert no_bos.total_nats == pytest.approx(9 * LN2)  # the first token has nothing to predict it
    [empty] = document_losses(CountingScorer(max_len=5), [""], bos_id=0)
    assert empty.n_tokens == 0 and empty.total_nats == 0.0


def test_missing_model_path_is_a_clear_error(tmp_path):
    from scorers.losses import TransformersScorer

    with pytest.raises(ModelLoadError, match="nope does not exist"):
        TransformersScorer(tmp_path / "nope")


@pytest.mark.slow
def test_vllm_and_transformers_agree_on_real_text(wiki_docs):
    from scorers.losses import make_scorer
    from scorers.models import model_path

    path = model_path("smollm2-135m-instruct")
    texts = [wiki_docs[0][:600], wiki_docs[1][:900], "Paris is the capital of France."]
    results, scorers = {}, {}
    for engine in ("transformers", "vllm"):
        scorer = scorers[engine] = make_scorer(engine, path, max_len=512)
        results[engine] = document_losses(scorer, texts, scorer.bos_id)
        # a context far shorter than the documents: windows, same loss within a few percent
        short = make_scorer(engine, path, max_len=64) if engine == "transformers" else None
        if short is not None:
            windowed = document_losses(short, texts[:2], short.bos_id, overlap=32)
            for a, b in zip(windowed, results[engine][:2]):
                assert a.n_tokens == b.n_tokens and a.bits_per_char == pytest.approx(b.bits_per_char, rel=0.05)
    for a, b in zip(results["transformers"], results["vllm"]):
        assert a.n_tokens == b.n_tokens > 0
        assert a.bits_per_char == pytest.approx(b.bits_per_char, rel=0.01)
    # the transformers engine's loss is the model's own cross-entropy (its `labels=` loss, a mean
    # over the predicted tokens) over BOS + text, in bits per character
    import torch

    model, tokenizer = scorers["transformers"].model, scorers["transformers"].tokenizer
    for text, loss in zip(texts, results["transformers"]):
        ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            mean_nats = model(input_ids=ids, labels=ids).loss.item()
        assert loss.n_tokens == ids.shape[1] - 1
        assert loss.bits_per_char == pytest.approx(mean_nats * loss.n_tokens / (len(text) * LN2), rel=1e-4)
