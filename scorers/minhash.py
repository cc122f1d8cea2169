"""MinHash LSH band keys of a text: datatrove's signature (its shingling, text normalisation and
hash permutations), each band folded into one 64-bit key, so that documents sharing a key in any
band are near-duplicate candidates."""

from __future__ import annotations

import hashlib
import tempfile
from functools import lru_cache

import numpy as np

from schemas.config import NearDedupConfig
from scorers.words import SPACY_LOCK


@lru_cache(maxsize=8)
def _signer(n_grams: int, num_buckets: int, hashes_per_bucket: int, seed: int):
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    config = MinhashConfig(n_grams=n_grams, num_buckets=num_buckets, hashes_per_bucket=hashes_per_bucket, seed=seed)
    # the folder is never written: we only use the signature functions
    return MinhashDedupSignature(output_folder=tempfile.gettempdir(), config=config)


def band_keys(text: str, cfg: NearDedupConfig) -> list[int]:
    """One 64-bit key per LSH band; empty when the text has fewer words than a shingle."""
    signer = _signer(cfg.n_grams, cfg.num_buckets, cfg.hashes_per_bucket, cfg.seed)
    with SPACY_LOCK:
        shingles = signer.get_shingles(text)
    if shingles.size == 0:
        return []
    signature = np.asarray(signer.get_signature(shingles), dtype=np.uint64)
    return [int.from_bytes(hashlib.blake2b(band.tobytes(), digest_size=8).digest(), "little") for band in signature]
