"""spaCy, behind datatrove's word splitting, shared by every stage that splits words.

spaCy's tokenizer is shared per process and not thread-safe: concurrent calls corrupt its string
store. Threads only overlap I/O here anyway (the GIL); Dask workers, which are processes, spread
text processing over cores.
"""

from __future__ import annotations

import threading

SPACY_LOCK = threading.Lock()
