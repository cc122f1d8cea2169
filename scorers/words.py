"""spaCy, behind datatrove's word splitting, shared by every stage that splits words.

spaCy's tokenizer is shared per process and not thread-safe: concurrent calls corrupt its string
store. Threads only overlap I/O here anyway (the GIL); worker processes spread text processing
over cores.

Importing spaCy imports thinc, which imports torch (when installed, as vLLM installs it) only to
learn whether torch models could run: ~1 s and ~250 MB in every process that splits words,
each worker of a run among them. Our spaCy is tokenizers and the sentencizer, never a torch
model, so spaCy is imported here with torch hidden; thinc takes that as "no torch". A process
that has already imported torch (one running vLLM) keeps it, and torch imported later works.
"""

from __future__ import annotations

import sys
import threading


def _import_spacy_without_torch():
    if "torch" in sys.modules or "thinc" in sys.modules:
        import spacy.attrs

        return spacy.attrs
    sys.modules["torch"] = None  # `import torch` raises ImportError while this is in place
    try:
        import spacy.attrs
    finally:
        del sys.modules["torch"]
    return spacy.attrs


spacy_attrs = _import_spacy_without_torch()
SPACY_LOCK = threading.Lock()
