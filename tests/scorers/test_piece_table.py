"""The compiled loops of scorers/piece_table.py against plain Python: pieces found and kept apart
byte for byte through every growth of the table, XXH64 against the xxhash library, and the window
keys against `combine` over every window of each text."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from scorers.piece_table import PieceTable, has_window_key, key_set, text_buffers, xxh64
from scorers.simplified_words import _WINDOW_BASE, window_keys

ROOT = Path(__file__).resolve().parents[2]


def test_xxh64_is_the_xxhash_library_s_on_every_length():
    generator = random.Random(7)
    for length in [*range(100), 255, 256, 1000, 4097]:
        data = bytes(generator.randrange(256) for _ in range(length))
        assert xxh64(data) == xxhash.xxh64_intdigest(data), length


def _texts(count: int, seed: int) -> list[str]:
    """Texts of pieces drawn from a vocabulary with near-twins (one byte apart, one a prefix of
    another, non-ASCII), separated by every kind of ASCII whitespace."""
    generator = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(300)] + ["ab", "abc", "abd", "b", "é", "ée", "日本語", "x" * 40]
    spaces = [" ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c"]
    return [
        "".join(generator.choice(spaces) + generator.choice(vocabulary) for _ in range(generator.randrange(0, 30)))
        for _ in range(count)
    ]


def test_pieces_are_found_byte_for_byte_through_every_growth_of_the_table():
    table = PieceTable(capacity=2)  # entries, slots and arena all grow many times
    for seed in range(3):
        texts = _texts(200, seed)
        values, offsets = text_buffers(pa.array(texts))
        before = len(table)
        pieces, per_text, first_new = table.index(values, offsets)
        expected = [piece for text in texts for piece in text.split()]
        assert first_new == before
        assert table.strings(pieces) == expected
        assert per_text.tolist() == [len(text.split()) for text in texts]
        # one entry per distinct piece, the new ones in order of first appearance
        known = set(table.strings(np.arange(before)))
        new = list(dict.fromkeys(p for p in expected if p not in known))
        assert table.strings(np.arange(first_new, len(table))) == new
        assert len({int(e) for e in pieces}) == len(set(expected))
        table.set_words(np.ones(len(new), np.int64), np.array([xxhash.xxh64_intdigest(p) for p in new], np.uint64))
        hashes = table.word_hashes(pieces)
        assert hashes.tolist() == [xxhash.xxh64_intdigest(p) for p in expected]
    # everything seen: a second look adds nothing
    values, offsets = text_buffers(pa.array(_texts(200, 0)))
    assert table.index(values, offsets)[2] == len(table)


def test_letters_and_hashes_flags_ascii_letters_only_and_hashes_them_as_xxhash_does():
    table = PieceTable(capacity=4)
    pieces = ["word", "Word", "w0rd", "wörd", "a", "z", "A@", "[z", "`a"]
    values, offsets = text_buffers(pa.array([" ".join(pieces)]))
    _, _, first = table.index(values, offsets)
    letters, hashes = table.letters_and_hashes(first)
    assert letters.tolist() == [True, True, False, False, True, True, False, False, False]
    assert [int(h) for h, ok in zip(hashes, letters, strict=True) if ok] == [
        xxhash.xxh64_intdigest(p) for p, ok in zip(pieces, letters, strict=True) if ok
    ]


def test_window_keys_are_combine_s_over_every_window_inside_each_text():
    generator = np.random.default_rng(3)
    n = 4
    texts = [generator.integers(0, 40, size=generator.integers(0, 12)).astype(np.uint64) for _ in range(300)]
    # the keys of some windows of some texts, and of windows that straddle two texts
    all_keys = [window_keys(words, n) for words in texts]
    chosen = np.unique(np.concatenate([keys[:1] for keys in all_keys[::7]] + [window_keys(np.concatenate(texts[:2]), n)]))
    keys = key_set(chosen)
    expected = [bool(np.isin(k, chosen).any()) for k in all_keys]
    assert any(expected) and not all(expected)
    assert [has_window_key(words, n, _WINDOW_BASE, *keys) for words in texts] == expected
    table = PieceTable(capacity=4)
    words = [f"t{i}" for i in range(40)]
    values, offsets = text_buffers(pa.array([" ".join(words[int(w)] for w in text) for text in texts]))
    pieces, per_text, first = table.index(values, offsets)
    order = table.strings(np.arange(first, len(table)))
    table.set_words(np.ones(len(order), np.int64), np.array([int(w[1:]) for w in order], np.uint64))
    assert table.texts_with_key(pieces, per_text, n, _WINDOW_BASE, keys).tolist() == expected


@pytest.mark.slow
def test_a_vllm_engine_starts_in_a_process_that_loaded_the_compiled_loops_first():
    """vLLM's CPU worker scans every module's attributes as it starts, and llvmlite's library
    object (loaded with numba) broke that scan (`_answer_vllm_s_kernel_scan`): the demo hashes
    words for near-dedup, then scores with vLLM, in one process."""
    code = (
        "from scorers.simplified_words import load_compiled\n"
        "load_compiled()\n"
        "from scorers.losses import VLLMScorer\n"
        "from scorers.models import resolve_model\n"
        "VLLMScorer(resolve_model('smollm2-135m-instruct'), max_len=256)\n"
        "print('engine started')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert "engine started" in result.stdout, result.stderr[-3000:]


def test_after_warm_up_the_word_hashing_loads_no_other_compiled_version():
    """numba compiles and loads one version of a loop per kind of argument (read-only arrays are
    another kind): `warm_up` must load the versions the callers run, or their first batch pays
    for the rest (~0.1 s). Counted in a fresh process, where nothing else has loaded any."""
    code = (
        "import pyarrow as pa\n"
        "from datatrove.utils.text import TextNormConfig\n"
        "from datatrove.utils.word_tokenizers import load_word_tokenizer\n"
        "from datatrove.utils.hashes.xxhash import xxhash64\n"
        "import scorers.piece_table as pt\n"
        "from scorers.simplified_words import CachedWordTokenizer, WordHasher, load_compiled\n"
        "load_compiled()\n"
        "loops = {n: f for n, f in vars(pt).items() if hasattr(f, 'signatures')}\n"
        "loaded = {n: len(f.signatures) for n, f in loops.items()}\n"
        "hasher = WordHasher(TextNormConfig(), CachedWordTokenizer(load_word_tokenizer('en')), xxhash64)\n"
        "texts = pa.array(['Caf\\u00e9s sold 3.5 million cups, said the U.N. report.', 'it is what it is'] * 50)\n"
        "hasher.texts_with_window(texts, 3, pt.key_set(pt.np.arange(5, dtype=pt.np.uint64)))\n"
        "hasher.hashes(texts.to_pylist())\n"
        "print(sorted(n for n, f in loops.items() if len(f.signatures) != loaded[n]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
