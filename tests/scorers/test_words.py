"""spaCy is imported without torch (scorers/words.py): a worker that splits words does not pay
torch's import, and torch still imports afterwards for a process that runs a model."""

from __future__ import annotations

import subprocess
import sys

SPLIT_THEN_TORCH = """
import sys
from scorers.simplified_words import fast_word_tokenizer
words = fast_word_tokenizer("en").word_tokenize("Dr. Smith's cat can't sleep.")
print(words)
assert "torch" not in sys.modules, "splitting words imported torch"
import torch
print(torch.ones(2).sum().item())
"""


def test_splitting_words_does_not_import_torch_and_torch_still_imports():
    done = subprocess.run([sys.executable, "-c", SPLIT_THEN_TORCH], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    words, total = done.stdout.splitlines()
    assert words == str(["Dr.", "Smith", "'s", "cat", "ca", "n't", "sleep", "."])
    assert total == "2.0"
