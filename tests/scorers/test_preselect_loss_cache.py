"""The loss cache persists every batch as it is computed: a run killed part-way keeps what it
finished, a rerun computes only the rest, and the result is the uninterrupted run's table."""

from __future__ import annotations

import math

import pyarrow.parquet as pq
import pytest

from schemas import progress
from schemas.scoring import LOSSES
from scorers.loss_cache import CacheDocument, losses_with_cache
from scorers.losses import document_losses


class UnigramScorer:
    """A real (if tiny) language model: each character's probability is its smoothed frequency in
    a reference sentence, so different documents get different losses."""

    engine, max_len, bos_id = "unigram", 16, 0
    REFERENCE = "the quick brown fox jumps over the lazy dog"

    def encode(self, text):
        return [ord(c) for c in text]

    def logprobs(self, sequences):
        total = len(self.REFERENCE) + 128
        return [[0.0] + [math.log((self.REFERENCE.count(chr(t)) + 1) / total) for t in s[1:]] for s in sequences]


class Crash(RuntimeError):
    """Stands in for the kill of a long run (OOM, preemption)."""


def compute_with(scorer, calls: list[list[str]], crash_on_call: int | None = None):
    def compute(texts):
        calls.append(list(texts))
        if len(calls) == crash_on_call:
            raise Crash(f"killed while computing batch {crash_on_call}")
        return document_losses(scorer, texts, scorer.bos_id, overlap=4)

    return compute


def documents(n: int) -> list[CacheDocument]:
    # lengths and letters vary, so every document has its own loss; windows of 16 tokens
    texts = [f"document {i}: " + "lazy dog jumps " * (i % 4) + "zzq" * (i % 3) for i in range(n)]
    return [CacheDocument(f"d{i}", f"h{i:02d}", t) for i, t in enumerate(texts)]


def test_killed_run_keeps_finished_batches_and_resume_matches_an_uninterrupted_run(tmp_path):
    docs, scorer = documents(7), UnigramScorer()
    calls: list[list[str]] = []
    with pytest.raises(Crash):
        losses_with_cache(tmp_path / "cache", "m", docs, compute_with(scorer, calls, crash_on_call=3), batch_size=2)
    # the two finished batches are on disk, one part each, before the crash
    parts = sorted((tmp_path / "cache" / "m").glob("part-*.parquet"))
    kept = sorted(row["doc_hash"] for p in parts for row in pq.read_table(p, schema=LOSSES).to_pylist())
    assert len(parts) == 2 and kept == ["h00", "h01", "h02", "h03"]

    resumed_calls: list[list[str]] = []
    table, computed = losses_with_cache(tmp_path / "cache", "m", docs, compute_with(scorer, resumed_calls), batch_size=2)
    assert computed == 3 and resumed_calls == [[d.text for d in docs[4:6]], [docs[6].text]]

    uninterrupted, _ = losses_with_cache(tmp_path / "fresh", "m", docs, compute_with(scorer, []), batch_size=2)
    in_one_go, _ = losses_with_cache(tmp_path / "one-go", "m", docs, compute_with(scorer, []), batch_size=100)
    assert table.equals(uninterrupted) and table.equals(in_one_go)
    assert table.column("doc_id").to_pylist() == [d.doc_id for d in docs]
    assert len(set(table.column("bits_per_char").to_pylist())) == len(docs)  # a real, text-dependent loss


class Recorder:
    def __init__(self):
        self.events = []

    def stage_started(self, stage, total_shards):
        self.events.append(("started", stage, total_shards))

    def shard_done(self, stage, shard, docs_in, docs_out):
        self.events.append(("done", stage, shard, docs_in, docs_out))


@pytest.fixture()
def recorder():
    reporter = Recorder()
    progress.set_reporter(reporter)
    yield reporter
    progress.set_reporter(None)


def test_progress_is_reported_per_batch_per_model(tmp_path, recorder):
    docs, scorer = documents(5), UnigramScorer()
    losses_with_cache(tmp_path, "small@aa", docs[:2], compute_with(scorer, []), batch_size=2)
    recorder.events.clear()
    for model in ("small@aa", "large@bb"):
        losses_with_cache(tmp_path, model, docs, compute_with(scorer, []), batch_size=2)
    small, large = "losses small@aa", "losses large@bb"
    assert recorder.events == [
        # the cached first two documents are not computed again
        ("started", small, 2),
        ("done", small, "batch 1/2", 2, 2),
        ("done", small, "batch 2/2", 1, 1),
        ("started", large, 3),
        ("done", large, "batch 1/3", 2, 2),
        ("done", large, "batch 2/3", 2, 2),
        ("done", large, "batch 3/3", 1, 1),
    ]
    recorder.events.clear()
    losses_with_cache(tmp_path, "large@bb", docs, compute_with(scorer, []), batch_size=2)
    assert recorder.events == []  # nothing to compute, no bar


@pytest.mark.slow
def test_real_model_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, wiki_docs):
    from scorers.losses import make_scorer
    from scorers.models import model_path
    from scorers.normalize import content_hash

    scorer = make_scorer("transformers", model_path("smollm2-135m-instruct"), max_len=128)
    docs = [CacheDocument(f"w{i}", content_hash(t), t) for i, t in enumerate(d[:300] for d in wiki_docs[:5])]
    calls: list[list[str]] = []
    with pytest.raises(Crash):
        losses_with_cache(tmp_path / "cache", "smol", docs, compute_with(scorer, calls, crash_on_call=3), batch_size=2)
    resumed_calls: list[list[str]] = []
    table, computed = losses_with_cache(tmp_path / "cache", "smol", docs, compute_with(scorer, resumed_calls), batch_size=2)
    assert computed == 1 and resumed_calls == [[docs[4].text]]
    uninterrupted, _ = losses_with_cache(tmp_path / "fresh", "smol", docs, compute_with(scorer, []), batch_size=2)
    assert table.equals(uninterrupted)
    assert len(set(table.column("bits_per_char").to_pylist())) == 5
