"""Token counts and token ids with a trainer's tokenizer: the fast Rust `tokenizers` library, in batches.

A mixture is accounted in the tokens its trainer will see, so the tokenizer is the trainer's own
(`tokenizer.json`, or a Hugging Face model folder holding one; by default the bundled SmolLM2
folder). Its identity is the SHA-256 of `tokenizer.json` plus the end-of-document token: the same
file with another separator counts differently, so it is another tokenizer for every cache.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scorers.models import ModelLoadError, resolve_model
from warehouse.files import sha256_file


class TokenizerLoadError(ModelLoadError):
    """A configured tokenizer that does not exist or does not load."""


@dataclass(frozen=True)
class TrainerTokenizer:
    """A loaded tokenizer and what a mixture records about it."""

    path: Path  # the tokenizer.json file
    name: str  # what the user configured (a model name, a folder or a file)
    sha256: str  # of tokenizer.json
    eos_token: str | None  # appended to every document when set
    eos_id: int | None
    vocab_size: int
    backend: object  # tokenizers.Tokenizer

    @property
    def identity(self) -> str:
        """What a cached count is keyed by: the file and the separator together, and `whole`:
        counts made before documents were counted whole (`load_tokenizer`) are not reused."""
        return f"{self.sha256}:{self.eos_token or ''}:whole"

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no special tokens added by the tokenizer), the end-of-document
        token appended when one is configured."""
        encodings = self.backend.encode_batch_fast(texts, add_special_tokens=False)
        if self.eos_id is None:
            return [e.ids for e in encodings]
        return [[*e.ids, self.eos_id] for e in encodings]

    def count_batch(self, texts: list[str]) -> list[int]:
        extra = 0 if self.eos_id is None else 1
        # len(encoding), not len(encoding.ids): the count without building a list of the ids
        return [len(e) + extra for e in self.backend.encode_batch_fast(texts, add_special_tokens=False)]


@contextmanager
def serial_batches() -> Iterator[None]:
    """Within it, a batch call encodes its texts in the calling thread, for a caller that runs
    its own thread per core: the library's own pool (rayon) would add its threads to the caller's
    and ask two threads of each core, and its idle threads spin. The library reads this setting
    at every call; it is process-wide, so another thread encoding meanwhile is serial too (the
    same tokens, fewer cores)."""
    previous = os.environ.get(_PARALLELISM)
    os.environ[_PARALLELISM] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_PARALLELISM, None)
        else:
            os.environ[_PARALLELISM] = previous


_PARALLELISM = "TOKENIZERS_PARALLELISM"


def _tokenizer_file(configured: str | Path) -> Path:
    path = Path(configured)
    if path.is_file():
        return path.resolve()
    try:
        folder = resolve_model(configured)
    except ModelLoadError as err:
        raise TokenizerLoadError(f"tokenizer {configured}: {err}") from err
    file = folder / "tokenizer.json"
    if not file.is_file():
        raise TokenizerLoadError(f"tokenizer {configured}: {folder} has no tokenizer.json")
    return file


def _configured_eos(file: Path) -> str | None:
    """The folder's declared end-of-sequence token (tokenizer_config.json), if it declares one."""
    config = file.parent / "tokenizer_config.json"
    if not config.is_file():
        return None
    token = json.loads(config.read_text()).get("eos_token")
    if isinstance(token, dict):  # older files store an AddedToken object
        token = token.get("content")
    return token


def _encode_whole_documents(backend) -> None:
    """A document's ids are all of its tokens: a file saved with truncation or padding settings
    (a model's `max_length`) would cut or pad every document, so both are turned off. Its
    post-processor goes too: every call here passes add_special_tokens=False, with which no
    post-processor of the library changes an id (template, BERT and RoBERTa ones add their special
    tokens only when asked; byte-level and RoBERTa ones trim offsets), but a template one copies
    every encoding on the way (~8 % of the encoding time)."""
    backend.no_truncation()
    backend.no_padding()
    backend.post_processor = None


def load_tokenizer(configured: str | Path, *, append_eos: bool = True, eos_token: str | None = None) -> TrainerTokenizer:
    """Load a tokenizer by file, folder or prepared model name. With `append_eos`, `eos_token` (or
    the folder's declared one) ends every document and is counted; a tokenizer that has no such
    token is an error rather than documents run together."""
    from tokenizers import Tokenizer

    file = _tokenizer_file(configured)
    try:
        backend = Tokenizer.from_file(str(file))
    except Exception as err:  # noqa: BLE001 - the Rust library raises plain Exceptions for bad files
        raise TokenizerLoadError(f"tokenizer {file} does not load: {err}") from err
    _encode_whole_documents(backend)
    eos_id = None
    if append_eos:
        eos_token = eos_token or _configured_eos(file)
        if eos_token is None:
            raise TokenizerLoadError(
                f"tokenizer {file} declares no end-of-sequence token: set `tokenizer.eos_token`, or `append_eos: false`"
            )
        eos_id = backend.token_to_id(eos_token)
        if eos_id is None:
            raise TokenizerLoadError(f"tokenizer {file} has no token {eos_token!r} (tokenizer.eos_token)")
    else:
        eos_token = None
    return TrainerTokenizer(
        path=file,
        name=str(configured),
        sha256=sha256_file(file),
        eos_token=eos_token,
        eos_id=eos_id,
        vocab_size=backend.get_vocab_size(with_added_tokens=True),
        backend=backend,
    )
