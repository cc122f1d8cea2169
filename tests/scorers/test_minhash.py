"""MinHash band keys, computed a batch at a time: they find planted near copies of real documents
the way datatrove's signatures do, they do not depend on how texts are batched, and the plan's
connected components equal a plain union-find's."""

from __future__ import annotations

import random
import tempfile

import numpy as np
import pytest
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.dedup import connected_components
from schemas.config import NearDedupConfig
from scorers.minhash import band_keys_of, min_hasher, signature_id

CFG = NearDedupConfig()


@pytest.fixture(scope="module")
def datatrove_signer():
    return MinhashDedupSignature(output_folder=tempfile.gettempdir(), config=MinhashConfig())


def shingle_jaccard(signer, a: str, b: str) -> float:
    """The true 5-gram Jaccard of two texts, on datatrove's own shingles."""
    sa, sb = set(signer.get_shingles(a).ravel().tolist()), set(signer.get_shingles(b).ravel().tolist())
    return len(sa & sb) / len(sa | sb)


def edit_words(text: str, share: float, rng: random.Random) -> str:
    """`text` with `share` of its words replaced by a word from elsewhere in it."""
    words = text.split(" ")
    for position in rng.sample(range(len(words)), max(1, int(len(words) * share))):
        words[position] = rng.choice(words)
    return " ".join(words)


def candidates(keys_a: list[int], keys_b: list[int]) -> bool:
    return any(a == b for a, b in zip(keys_a, keys_b, strict=True))


def datatrove_bands(signer, text: str) -> list[tuple]:
    return [tuple(band) for band in signer.get_signature(signer.get_shingles(text))]


def test_planted_near_copies_are_found_as_often_as_by_datatrove(wiki_docs, datatrove_signer):
    """Copies of real documents with words changed, kept where the true 5-gram Jaccard is at least
    0.8: recall at least 0.95, and no fewer found than datatrove's own signatures find."""
    rng = random.Random(7)
    originals = wiki_docs[:300]
    pairs = []
    for doc in originals:
        copy = edit_words(doc, rng.choice([0.005, 0.01, 0.02, 0.03]), rng)
        if shingle_jaccard(datatrove_signer, doc, copy) >= 0.8:
            pairs.append((doc, copy))
    assert len(pairs) >= 200  # the premise: most edits keep the copy above 0.8
    keys = band_keys_of([text for pair in pairs for text in pair], CFG)
    found = sum(candidates(keys[2 * i], keys[2 * i + 1]) for i in range(len(pairs)))
    found_by_datatrove = sum(
        candidates(datatrove_bands(datatrove_signer, a), datatrove_bands(datatrove_signer, b)) for a, b in pairs
    )
    assert found / len(pairs) >= 0.95
    assert found >= found_by_datatrove - 2  # two independent draws of the same LSH: within noise


def test_distinct_documents_are_not_candidates(wiki_docs, datatrove_signer):
    """Different real documents (Jaccard near 0) share no band key."""
    docs = wiki_docs[:400]
    keys = band_keys_of(docs, CFG)
    owner: dict[tuple[int, int], int] = {}
    pairs = set()
    for index, doc_keys in enumerate(keys):
        for band, key in enumerate(doc_keys):
            if (band, key) in owner:
                pairs.add((owner[(band, key)], index))
            owner.setdefault((band, key), index)
    assert all(shingle_jaccard(datatrove_signer, docs[a], docs[b]) >= 0.5 for a, b in pairs)


def test_keys_do_not_depend_on_the_batch(wiki_docs):
    """A text's keys are the same alone, in a batch, after a long text that spans signature
    blocks, and from a fresh hasher (another piece cache)."""
    long_text = " ".join(wiki_docs[:60])  # well over one block of shingles
    texts = [wiki_docs[500], long_text, wiki_docs[501], "too short", ""]
    together = band_keys_of(texts, CFG)
    alone = [band_keys_of([text], CFG)[0] for text in texts]
    assert together == alone
    assert len(together[0]) == CFG.num_buckets and together[3] == [] and together[4] == []
    fresh = min_hasher(NearDedupConfig(num_buckets=CFG.num_buckets + 1))
    keys, signed = fresh.band_keys(texts)
    assert signed.tolist() == [True, True, True, False, False] and keys.shape == (5, CFG.num_buckets + 1)


def test_signature_id_names_scheme_and_parameters():
    ids = {
        signature_id(NearDedupConfig(**change))
        for change in ({}, {"n_grams": 4}, {"num_buckets": 9}, {"hashes_per_bucket": 5}, {"seed": 3})
    }
    assert len(ids) == 5 and all(i.startswith("minhash-") for i in ids)


def union_find_components(count: int, edges: list[tuple[int, int]]) -> list[int]:
    parent = list(range(count))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(count)]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=120))
    )
)
def test_connected_components_equal_union_find(graph):
    count, edges = graph
    a = np.array([e[0] for e in edges], np.int64)
    b = np.array([e[1] for e in edges], np.int64)
    assert connected_components(count, a, b).tolist() == union_find_components(count, edges)


def test_connected_components_of_a_long_chain_and_a_star():
    count = 10_000
    chain = np.arange(count - 1, dtype=np.int64)
    assert (connected_components(count, chain[::-1] + 1, chain[::-1]) == 0).all()
    star = connected_components(count, np.full(count - 1, 5_000, np.int64), np.arange(1, count, dtype=np.int64))
    assert (star[1:] == 1).all() and star[0] == 0
