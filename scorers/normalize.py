"""Text normalisation for ingest, and the normalised form exact deduplication hashes."""

from __future__ import annotations

import hashlib
import re
import unicodedata

# C0/C1 control characters except tab and newline; NUL is among them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFC, Unix newlines, no control characters: the text every later stage sees."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


def dedup_form(text: str) -> str:
    """Case and whitespace differences do not make a document new."""
    return _WHITESPACE.sub(" ", text.casefold()).strip()


def content_hash(text: str) -> str:
    return hashlib.blake2b(dedup_form(text).encode("utf-8"), digest_size=16).hexdigest()


def generated_doc_id(input_file: str, row: int) -> str:
    """Stable id for a document whose shard has no id column: same file and row, same id."""
    return "gen-" + hashlib.blake2b(f"{input_file}\0{row}".encode(), digest_size=8).hexdigest()
