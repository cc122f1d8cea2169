"""MinHash LSH band keys of texts, a whole batch at a time: documents that share a key in any band
are near-duplicate candidates.

The words are datatrove's (`simplify_text`, then spaCy's English word splitting: the words
`MinhashDedupSignature.get_shingles` splits), and the LSH parameters are datatrove's (n-gram
shingles, `num_buckets` bands of `hashes_per_bucket` minimums, permutations drawn from
`np.random.RandomState(seed)` in the range of the Mersenne prime 2**61 - 1). What differs, for
speed, is how a shingle and a band are hashed, so the keys are not datatrove's:

- a shingle's hash is the n words' xxhash64 values combined by a polynomial (`combine`) and mixed
  by splitmix64's finaliser, computed for every window of a batch at once with numpy, instead of
  xxhash64 of the n words joined by spaces, one Python call per shingle;
- each permutation is `a * h + b` wrapping at 2**64, folded once by the Mersenne prime's bit
  trick instead of a division;
- a band's minimums are combined and mixed into one 64-bit key the same way, instead of one
  BLAKE2b call per band.

Keys of different schemes or parameters never match, so the curated index records the
`signature_id` its keys were made with (see curation/dedup.py: an index made another way is
re-signed from its run's documents, never compared). benchmarks/ section 12 holds this scheme to
datatrove's on recall and false candidates.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from datatrove.utils.hashes.xxhash import xxhash64
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import load_word_tokenizer

from schemas.config import NearDedupConfig
from scorers.simplified_words import CachedWordTokenizer, WordHasher, combine, window_keys
from scorers.words import SPACY_LOCK

# Raise when the keys the same config gives change: it is part of every key's `signature_id`.
SCHEME = 2
_MERSENNE = np.uint64((1 << 61) - 1)
_SHIFT_61 = np.uint64(61)
# shingles per block of the signature computation (whole texts: a longer text makes a longer
# block): a block's permuted hashes are num_hashes x shingles uint64 (112 x 8192: 7 MB, so that the
# passes over it stay in cache: 4x faster here than blocks of 32768)
_BLOCK_ROWS = 8192
# distinct pieces whose words are cached (~200 bytes each)
_PIECE_CACHE = 250_000


def signature_id(cfg: NearDedupConfig) -> str:
    """What decides the keys: two indexes can be compared only when this is equal."""
    return f"minhash-{SCHEME} n{cfg.n_grams} bands{cfg.num_buckets}x{cfg.hashes_per_bucket} seed{cfg.seed}"


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array (multiplications wrap at 2**64)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


class MinHasher:
    """Band keys of texts under one near-dedup config."""

    def __init__(self, cfg: NearDedupConfig):
        self.n = cfg.n_grams
        self.bands = cfg.num_buckets
        self.rows = cfg.hashes_per_bucket
        self.signature_id = signature_id(cfg)
        num_hashes = cfg.num_buckets * cfg.hashes_per_bucket
        generator = np.random.RandomState(cfg.seed)
        self._a = generator.randint(1, _MERSENNE, dtype=np.uint64, size=num_hashes)
        self._b = generator.randint(0, _MERSENNE, dtype=np.uint64, size=num_hashes)
        tokenizer = CachedWordTokenizer(load_word_tokenizer("en"), max_entries=_PIECE_CACHE)
        self._words = WordHasher(TextNormConfig(), tokenizer, xxhash64)

    def band_keys(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(keys, signed): `keys[i]` the `bands` keys of text i, valid where `signed[i]`; a text
        with fewer words than a shingle has no shingle and is never a candidate."""
        with SPACY_LOCK:
            word_hashes, lengths = self._words.hashes(texts)
        shingles, owners = self._shingles(word_hashes, lengths)
        signed = np.bincount(owners, minlength=len(texts)) > 0
        signatures = self._signatures(shingles, owners, len(texts))
        return self._band_keys(signatures), signed

    def _shingles(self, word_hashes: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every window of n words inside one text, hashed, and the text it belongs to."""
        keys = window_keys(word_hashes, self.n)
        owner = np.repeat(np.arange(len(lengths)), lengths)
        inside = owner[: len(keys)] == owner[self.n - 1 :]
        return _mix(keys[inside]), owner[: len(keys)][inside]

    def _signatures(self, shingles: np.ndarray, owners: np.ndarray, texts: int) -> np.ndarray:
        """Per text, the minimum of each permutation over its shingles (all ones without any).
        Computed permutation-major (one row per permutation), so each text's minimum is a
        reduction over contiguous memory, in blocks of whole texts."""
        signatures = np.full((len(self._a), texts), np.iinfo(np.uint64).max, np.uint64)
        text_starts = np.flatnonzero(np.diff(owners, prepend=-1))
        start = 0
        while start < len(shingles):
            after = np.searchsorted(text_starts, start + _BLOCK_ROWS)
            end = int(text_starts[after]) if after < len(text_starts) else len(shingles)
            block_owners = owners[start:end]
            permuted = np.multiply.outer(self._a, shingles[start:end])
            permuted += self._b[:, None]
            folded = permuted & _MERSENNE
            permuted >>= _SHIFT_61
            folded += permuted
            runs = np.flatnonzero(np.diff(block_owners, prepend=-1))
            signatures[:, block_owners[runs]] = np.minimum.reduceat(folded, runs, axis=1)
            start = end
        return signatures.T

    def _band_keys(self, signatures: np.ndarray) -> np.ndarray:
        per_band = signatures.reshape(len(signatures), self.bands, self.rows)
        return _mix(combine([per_band[:, :, r] for r in range(self.rows)]))


def min_hasher(cfg: NearDedupConfig) -> MinHasher:
    """One per config and process: spaCy and the piece cache are loaded once."""
    return _min_hasher(cfg.n_grams, cfg.num_buckets, cfg.hashes_per_bucket, cfg.seed)


@lru_cache(maxsize=8)
def _min_hasher(n_grams: int, num_buckets: int, hashes_per_bucket: int, seed: int) -> MinHasher:
    return MinHasher(NearDedupConfig(n_grams=n_grams, num_buckets=num_buckets, hashes_per_bucket=hashes_per_bucket, seed=seed))


def band_keys_of(texts: list[str], cfg: NearDedupConfig) -> list[list[int]]:
    """Each text's band keys as a list (empty without a shingle), for callers that key a dict."""
    keys, signed = min_hasher(cfg).band_keys(texts)
    return [row.tolist() if ok else [] for row, ok in zip(keys, signed, strict=True)]
