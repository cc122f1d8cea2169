"""Sentence-aware chunking to a token budget measured with the generating model's own tokenizer.

Sentences come from spaCy's rule-based sentencizer (offline, language-neutral), after splitting at
line breaks so lists and headings do not fuse into one "sentence". Sentences are packed greedily;
a single sentence over the budget is cut at token boundaries. Chunks keep their character offsets,
so every synthetic record points at the exact span of the document it came from.

A style's `chunk_tokens` is its whole input budget, prompt included, as NeMo Curator's Nemotron-CC
recipe counts it: chunks are cut to the budget less the tokens of the style's rendered prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from curation.rewrite.styles import StyleError, render_messages
from schemas.rewrite import StyleSpec
from scorers.words import SPACY_LOCK

_LINE = re.compile(r"[^\n]+")


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # character offsets into the document text
    end: int
    text: str
    tokens: int


class TokenCounter:
    """The generating model's tokenizer, loaded from its local folder (no engine needed)."""

    def __init__(self, tokenizer_dir: str | Path):
        from transformers import AutoTokenizer

        path = Path(tokenizer_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"tokenizer folder {path} does not exist")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        if not self.tokenizer.is_fast:
            raise ValueError(f"tokenizer in {path} is not a fast tokenizer: chunking needs its character offsets")

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_tokens(self, messages: list[dict[str, str]]) -> int:
        """Prompt length once the model's chat template is applied, as the engine will see it."""
        if not self.tokenizer.chat_template:
            return sum(self.count(m["content"]) + 4 for m in messages) + 4
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    def pieces(self, text: str, budget: int) -> list[tuple[int, int]]:
        """Character spans of consecutive runs of at most `budget` tokens."""
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        spans = []
        for i in range(0, len(offsets), budget):
            group = offsets[i : i + budget]
            spans.append((group[0][0], group[-1][1]))
        return spans


MIN_CHUNK_TOKENS = 16  # below this a chunk holds too little text to rewrite
# the chunk is counted alone; inside the prompt its first and last tokens may merge or split differently
BOUNDARY_TOKENS = 2


def input_tokens(style: StyleSpec, counter: TokenCounter) -> int:
    """The most tokens one request of the style sends: prompt and chunk together."""
    if style.kind == "llm" and style.input_includes_prompt:
        return style.chunk_tokens
    return prompt_tokens(style, counter) + style.chunk_tokens


def prompt_tokens(style: StyleSpec, counter: TokenCounter, language: str | None = None) -> int:
    """Tokens of the style's chat prompt around an empty chunk: what every request pays besides the text."""
    if style.kind != "llm":
        return 0
    return counter.chat_tokens(render_messages(style, "", language))


def text_budget(style: StyleSpec, counter: TokenCounter, language: str | None = None) -> int:
    """Tokens of document text per chunk: `chunk_tokens`, or, for a style whose `chunk_tokens` is
    its whole input (`input_includes_prompt`, the Nemotron-CC styles, as NeMo Curator counts their
    limits), what the rendered prompt leaves of it."""
    if style.kind != "llm" or not style.input_includes_prompt:
        return style.chunk_tokens
    budget = style.chunk_tokens - prompt_tokens(style, counter, language) - BOUNDARY_TOKENS
    if budget < MIN_CHUNK_TOKENS:
        raise StyleError(
            f"style {style.id}: its prompt takes {style.chunk_tokens - budget} of its {style.chunk_tokens} input tokens "
            f"(chunk_tokens), leaving {budget} for the document; raise chunk_tokens or shorten the prompt"
        )
    return budget


@lru_cache(maxsize=1)
def _sentencizer():
    import spacy

    nlp = spacy.blank("xx")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10_000_000
    return nlp


def sentence_spans(text: str) -> list[tuple[int, int]]:
    nlp = _sentencizer()
    spans = []
    for line in _LINE.finditer(text):
        if not line.group().strip():
            continue
        with SPACY_LOCK:
            doc = nlp(line.group())
        for sent in doc.sents:
            if sent.text.strip():
                spans.append((line.start() + sent.start_char, line.start() + sent.end_char))
    return spans


def chunk_text(text: str, budget: int, counter: TokenCounter) -> list[Chunk]:
    units: list[tuple[int, int]] = []
    for start, end in sentence_spans(text):
        if counter.count(text[start:end]) <= budget:
            units.append((start, end))
        else:  # one sentence over the budget: cut at token boundaries
            units.extend((start + a, start + b) for a, b in counter.pieces(text[start:end], budget))

    chunks: list[Chunk] = []
    current: tuple[int, int] | None = None
    current_tokens = 0
    for start, end in units:
        if current is not None:
            candidate_tokens = counter.count(text[current[0] : end])
            if candidate_tokens <= budget:
                current, current_tokens = (current[0], end), candidate_tokens
                continue
            chunks.append(_chunk(text, len(chunks), current, current_tokens))
        current, current_tokens = (start, end), counter.count(text[start:end])
    if current is not None:
        chunks.append(_chunk(text, len(chunks), current, current_tokens))
    return chunks


def _chunk(text: str, index: int, span: tuple[int, int], tokens: int) -> Chunk:
    return Chunk(index=index, start=span[0], end=span[1], text=text[span[0] : span[1]], tokens=tokens)
