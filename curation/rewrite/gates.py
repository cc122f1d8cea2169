"""Output gates and post-processing for generated text.

Small models (and big ones, at scale) answer with preambles, refusals, loops, copies of the input,
echoes of the prompt, descriptions of the document instead of a rewrite, facts the source never
stated, text that ignores the input, the wrong shape for the style, cut-off text or the wrong
language. Every gate is a plain function of
(output, chunk); all of them run on every record so the verdicts show every problem, and the first
failing gate in GATE_ORDER is the record's reject reason. Nothing is dropped: a rejected record is
written with its verdicts like an accepted one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from curation.rewrite.styles import style_instructions
from schemas.rewrite import GateSettings, StyleSpec
from scorers.language_id import predict_languages
from scorers.toxicity import word_list_score

_WORD = re.compile(r"\w+", re.UNICODE)
_CONTENT_WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)

# Openers that announce the answer instead of being part of it, e.g. "Sure! Here is the rewritten
# passage:" or "**Paraphrased version:**". Only a leading line-or-sentence is removed.
_PREAMBLES = [
    r"(?:sure|certainly|of course|okay|ok|absolutely)\b\s*[!,.]\s*",
    r"here(?:'s| is| are)\b[^\n:]{0,100}:\s*",
    r"\**(?:the\s+)?(?:rewritten|paraphrased|simplified|condensed|restated|revised|encyclopedi\w+|wikipedia[- ]style)\b[^\n:]{0,60}:\**\s*",
    r"\**(?:paraphrase|rewrite|summary|answer)\s*:\**\s*",
    # a short first line announcing what follows: "The following passage was rewritten as ...:"
    r"[^\n]{0,120}\b(?:rewritten|paraphrased|rephrased|simplified|restated|condensed)\b[^\n]{0,80}:[ \t]*\n\s*",
]
_REFUSALS = [
    r"\bI(?:'m| am) (?:sorry|unable|not able)\b",
    r"\bI (?:cannot|can't|can not|won't) (?:help|assist|comply|do that|provide|rewrite|fulfil)",
    r"\bas an (?:AI|artificial intelligence|language model)\b",
    r"\bI apologi[sz]e\b",
]


# Prompt scaffolding a model copies into its answer: our own markers (<document>), chat-template
# tokens, "<<Document>>"-style labels, Markdown headings of prompt sections, an unfilled slot.
_MARKERS = re.compile(
    r"<<\s*/?\s*[A-Za-z][A-Za-z ]{1,30}>>|</?\s*document\s*>|\[/?INST\]|<\|[a-z_]+\|>"
    r"|^\s*#{1,4}\s*(?:instruction|input|output|response|document|text|task)s?\b|\{text\}",
    re.IGNORECASE | re.MULTILINE,
)
PROMPT_ECHO_NGRAM = 6  # consecutive words of the style's own instructions that count as an echo
# "the text of the treaty" is about a text, not about the document
_DOC_NOUN = r"(?:document|text|passage|article|excerpt|paragraph|snippet|input|extract|content|page)(?!\s+of\b)"
_DESCRIBING = (
    r"(?:contains|describes|discusses|is about|talks about|provides|presents|explains|lists|mentions|covers|"
    r"outlines|highlights|focuses on|gives|offers|includes|deals with|introduces|states|says|tells|reports|notes|"
    r"suggests|appears to|seems to|is a|is an)"
)
_REWORDED = r"rewritten|revised|reworded|rephrased|paraphrased|reworked|restated|simplified|condensed"
# Writing about the document instead of rewriting it: "The document contains a list of facts about".
_META = [
    re.compile(rf"\b(?:the|this|that|given|above|provided|following|original)\s+{_DOC_NOUN}\s+(?:also\s+)?{_DESCRIBING}\b", re.I),
    re.compile(rf"\b(?:in|from|according to|based on)\s+the\s+(?:given\s+|provided\s+|above\s+|original\s+)?{_DOC_NOUN}\b", re.I),
    re.compile(rf"\bin\s+this\s+{_DOC_NOUN}\b", re.I),
    # reporting on the rewrite itself: "The passage has been rewritten into ...", "A revised version of the text"
    re.compile(rf"\b{_DOC_NOUN}\s+(?:has|have)?\s*(?:been|was|is)\s+(?:{_REWORDED})\b", re.I),
    re.compile(rf"\b(?:{_REWORDED})\s+(?:version|form)\s+of\s+the\s+{_DOC_NOUN}\b", re.I),
    re.compile(
        r"\bthe\s+authors?\s+(?:of\s+the\s+\w+\s+)?(?:describes?|discuss(?:es)?|explains?|argues?|states?|mentions?|writes?)\b",
        re.I,
    ),
]
_LIST_MARKER = r"(?:[-*•·]|\d+[.)])"  # "- ", "* ", "1. ", "2) "
_LIST_MARKER_END = re.compile(rf"(?:^|\n)\s*{_LIST_MARKER}$")
_NAME = re.compile(r"\b[^\W\d_][\w'’-]*", re.UNICODE)
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
_LABELS = {"question", "answer", "q", "a", "i"}
_LIST_ITEM = re.compile(rf"^\s*{_LIST_MARKER}\s+\S", re.MULTILINE)
# languages that capitalise every noun: a capital letter does not mark a name there
_NOUN_CAPITALISING = {"de", "lb"}


@dataclass(frozen=True)
class GateContext:
    chunk: str
    language: str | None  # the source document's language, if known
    finish_reason: str | None
    settings: GateSettings
    lid_model: str  # fastText language-ID model path
    wordlists: Path  # LDNOOBW lists
    prompt: str = ""  # the style's instructions (system and user text around the chunk)


def strip_preamble(text: str, extra: list[str] | None = None) -> tuple[str, bool]:
    patterns = [re.compile(p, re.IGNORECASE) for p in _PREAMBLES + list(extra or [])]
    stripped = text.strip()
    changed = True
    while changed:  # "Sure! Here is the rewritten text:" is two openers in a row
        changed = False
        for pattern in patterns:
            match = pattern.match(stripped)
            if match and match.end() > 0:
                stripped = stripped[match.end() :].lstrip()
                changed = True
    stripped = stripped.strip()
    return stripped, stripped != text.strip()


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repeated_ngram_share(text: str, n: int) -> float:
    grams = _ngrams(words(text), n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def copy_share(output: str, chunk: str, n: int = 5) -> float:
    """Share of the output's word n-grams that occur verbatim in the chunk."""
    out_tokens, src_tokens = words(output), words(chunk)
    out_grams = _ngrams(out_tokens, n)
    if not out_grams:
        return 1.0 if out_tokens and " ".join(out_tokens) in " ".join(src_tokens) else 0.0
    src_grams = set(_ngrams(src_tokens, n))
    return sum(g in src_grams for g in out_grams) / len(out_grams)


def overlap_share(output: str, chunk: str) -> float:
    """Share of the output's content words that appear in the chunk: a rewrite keeps its subject;
    an answer to an instruction hidden in the document, or an invented text, does not."""
    out_words = _CONTENT_WORD.findall(output.lower())
    if not out_words:
        return 0.0
    source = set(_CONTENT_WORD.findall(chunk.lower()))
    return sum(w in source for w in out_words) / len(out_words)


@lru_cache(maxsize=64)
def _instruction_ngrams(prompt: str) -> frozenset[tuple[str, ...]]:
    """A style's instructions as word n-grams: the same for every record of the style."""
    return frozenset(_ngrams(words(prompt), PROMPT_ECHO_NGRAM))


def _starts_sentence(text: str, start: int) -> bool:
    """Whether the word at `start` opens the text, a sentence, a line or a list item."""
    window = text[max(0, start - 40) : start]
    before = window.rstrip(" \t\"'“‘([*")
    if not before:
        return start <= 40 or window.endswith("\n")
    return before[-1] in ".!?:;\n" or bool(_LIST_MARKER_END.search(before))


def added_facts(output: str, chunk: str, names: bool = True) -> list[str]:
    """Names and numbers the output states that the chunk does not: a rephrasing keeps the facts
    of its source and adds none. A name is a capitalised word that does not start a sentence, a
    line or a list item, is not a Question/Answer label, and matches no word of the chunk, neither
    itself nor by its first five letters (Armenia / Armenian); a number matches the chunk's
    numbers after thousands separators are dropped. Each counted once, in order of appearance.
    `names=False` counts numbers only (for languages that capitalise every noun)."""
    source_words = {w.lower() for w in _NAME.findall(chunk)}
    stems = {w[:5] for w in source_words if len(w) >= 5}
    source_numbers = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(chunk)}
    found: dict[str, None] = {}
    for match in _NAME.finditer(output) if names else ():
        word = match.group()
        lower = word.lower()
        if not word[0].isupper() or lower in _LABELS or _starts_sentence(output, match.start()):
            continue
        if lower not in source_words and (len(lower) < 5 or lower[:5] not in stems):
            found.setdefault(word)
    for match in _NUMBER.finditer(output):
        number = match.group().replace(",", "").rstrip(".")
        if number not in source_numbers:
            found.setdefault(match.group())
    return list(found)


def _gate_empty(output: str, ctx: GateContext) -> str | None:
    size = len(output.strip())
    return None if size >= max(ctx.settings.min_chars, 1) else f"{size} chars"


def _gate_refusal(output: str, ctx: GateContext) -> str | None:
    head = output[:200]
    for pattern in _REFUSALS + ctx.settings.extra_refusals:
        match = re.search(pattern, head, re.IGNORECASE)
        if match:
            return repr(match.group(0))
    return None


def _gate_truncated(output: str, ctx: GateContext) -> str | None:
    if ctx.settings.reject_truncated and ctx.finish_reason == "length":
        return "finish_reason=length"
    return None


def _gate_repetition(output: str, ctx: GateContext) -> str | None:
    share = repeated_ngram_share(output, ctx.settings.repetition_ngram)
    return f"{share:.2f} > {ctx.settings.max_repetition}" if share > ctx.settings.max_repetition else None


def _gate_length_ratio(output: str, ctx: GateContext) -> str | None:
    low, high = ctx.settings.length_ratio
    ratio = len(output) / max(len(ctx.chunk), 1)
    return None if low <= ratio <= high else f"{ratio:.2f} outside [{low}, {high}]"


def _gate_near_copy(output: str, ctx: GateContext) -> str | None:
    share = copy_share(output, ctx.chunk)
    return f"{share:.2f} > {ctx.settings.max_copy}" if share > ctx.settings.max_copy else None


def _gate_low_overlap(output: str, ctx: GateContext) -> str | None:
    share = overlap_share(output, ctx.chunk)
    return f"{share:.2f} < {ctx.settings.min_overlap}" if share < ctx.settings.min_overlap else None


def _gate_prompt_echo(output: str, ctx: GateContext) -> str | None:
    marker = _MARKERS.search(output)
    if marker:
        return f"marker {marker.group(0).strip()!r}"
    if ctx.prompt:
        echoed = (_instruction_ngrams(ctx.prompt) & set(_ngrams(words(output), PROMPT_ECHO_NGRAM))) - set(
            _ngrams(words(ctx.chunk), PROMPT_ECHO_NGRAM)
        )
        if echoed:
            return f"instructions {' '.join(min(echoed))!r}"
    return None


def _gate_meta_description(output: str, ctx: GateContext) -> str | None:
    """The output talks about the document ("The text describes ...") where the chunk itself does not."""
    chunk = ctx.chunk.lower()
    for pattern in _META:
        for match in pattern.finditer(output):
            if match.group(0).lower() not in chunk:
                return repr(match.group(0))
    return None


def _gate_shape(output: str, ctx: GateContext) -> str | None:
    shape = ctx.settings.shape
    if shape == "qa" and not qa_pairs(output):
        return "no Question/Answer pair"
    if shape == "list" and len(_LIST_ITEM.findall(output)) < 2:
        return "fewer than 2 list items"
    return None


def _gate_added_facts(output: str, ctx: GateContext) -> str | None:
    added = added_facts(output, ctx.chunk, names=ctx.language not in _NOUN_CAPITALISING)
    if len(added) > ctx.settings.max_added_facts:
        shown = ", ".join(added[:6]) + (", ..." if len(added) > 6 else "")
        return f"{len(added)} not in the chunk ({shown}) > {ctx.settings.max_added_facts}"
    return None


def _gate_wrong_language(output: str, ctx: GateContext) -> str | None:
    if not ctx.settings.language or not ctx.language:
        return None
    label, score = predict_languages([output], ctx.lid_model)[0]
    if label != ctx.language or score < ctx.settings.min_language_score:
        return f"{label} ({score:.2f}), source is {ctx.language}"
    return None


def _gate_toxicity(output: str, ctx: GateContext) -> str | None:
    score = word_list_score(output, ctx.language, ctx.wordlists)
    if score.is_toxic(ctx.settings.toxicity_min_matches, ctx.settings.toxicity_max_score):
        return score.describe()
    return None


_GATES: dict[str, Callable[[str, GateContext], str | None]] = {
    "empty": _gate_empty,
    "refusal": _gate_refusal,
    "truncated": _gate_truncated,
    "repetition": _gate_repetition,
    "prompt_echo": _gate_prompt_echo,
    "meta_description": _gate_meta_description,
    "shape": _gate_shape,
    "length_ratio": _gate_length_ratio,
    "near_copy": _gate_near_copy,
    "low_overlap": _gate_low_overlap,
    "added_facts": _gate_added_facts,
    "wrong_language": _gate_wrong_language,
    "toxicity": _gate_toxicity,
}
GATE_ORDER = tuple(_GATES)  # the order gates run in; "near_duplicate" runs later, over all records


def run_gates(output: str, ctx: GateContext) -> tuple[dict[str, str], str | None]:
    """Verdict of every gate ("pass" or "fail: detail") and the first failing gate's name."""
    verdicts: dict[str, str] = {}
    first_failure = None
    empty = _gate_empty(output, ctx)
    for name in GATE_ORDER:
        if empty is not None and name != "empty":
            verdicts[name] = "skipped"  # nothing to judge
            continue
        detail = _GATES[name](output, ctx)
        verdicts[name] = "pass" if detail is None else f"fail: {detail}"
        if detail is not None and first_failure is None:
            first_failure = name
    return verdicts, first_failure


def gate_output(
    raw: str,
    style: StyleSpec,
    defaults: GateSettings,
    *,
    chunk: str,
    language: str | None,
    finish_reason: str | None,
    lid_model: str,
    wordlists: Path,
) -> tuple[str, dict[str, str], str | None]:
    """A generation as the rewrite stage judges it: the style's preamble stripping, then every
    gate with the style's settings. The text left, the verdicts (with "preamble": "stripped" when
    an opener was removed) and the first failing gate."""
    settings = style.gate_settings(defaults)
    if style.postprocess.strip_preamble:
        output, stripped = strip_preamble(raw, settings.extra_preambles)
    else:
        output, stripped = raw.strip(), False
    ctx = GateContext(
        chunk=chunk,
        language=language,
        finish_reason=finish_reason,
        settings=settings,
        lid_model=lid_model,
        wordlists=wordlists,
        prompt=style_instructions(style, language),
    )
    verdicts, reason = run_gates(output, ctx)
    if stripped:
        verdicts["preamble"] = "stripped"
    return output, verdicts, reason


# ---------------------------------------------------------------- post-processing

_QA_PAIR = re.compile(
    r"(?:^|\n)\s*(?:\*\*)?(?:Q(?:uestion)?\s*\d*\s*[:.])(?:\*\*)?\s*(?P<q>.+?)\s*\n\s*(?:\*\*)?(?:A(?:nswer)?\s*\d*\s*[:.])(?:\*\*)?\s*(?P<a>.+?)(?=\n\s*(?:\*\*)?Q(?:uestion)?\s*\d*\s*[:.]|\Z)",
    re.IGNORECASE | re.DOTALL,
)


def qa_pairs(text: str) -> list[tuple[str, str]]:
    return [
        (m.group("q").strip(), m.group("a").strip())
        for m in _QA_PAIR.finditer(text)
        if m.group("q").strip() and m.group("a").strip()
    ]


def _with_pairs(source: str, sample: list[tuple[str, str]]) -> str:
    return source + "\n\n" + "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in sample)


def append_qa_sample(chunk: str, output: str, pairs: int, seed: int) -> str | None:
    """QA append rule `fixed`: the chunk followed by a seeded sample of `pairs` generated pairs.
    None when the output holds no parseable pair."""
    found = qa_pairs(output)
    if not found:
        return None
    return _with_pairs(chunk.strip(), random.Random(seed).sample(found, min(pairs, len(found))))


NEMOTRON_CC_TOKENS_PER_STEP = 150  # Nemotron-CC: up to max_pairs pairs per 150 tokens of the document


def nemotron_cc_pair_limit(document_tokens: int, max_pairs: int = 10) -> int:
    """The most pairs Nemotron-CC appends to a document: max(1, floor(max_pairs * tokens / 150))."""
    return max(1, max_pairs * document_tokens // NEMOTRON_CC_TOKENS_PER_STEP)


def append_qa_nemotron_cc(document: str, output: str, document_tokens: int, seed: int, max_pairs: int = 10) -> str | None:
    """QA append rule `nemotron_cc` (Su et al. 2024; NeMo Curator's diverse-QA post-processor): the
    generated pairs shuffled, the first n kept with n drawn uniformly from 1 .. the pair limit of
    the whole source document, appended after that document. Seeded: the same record always gets
    the same pairs. None when the output holds no parseable pair."""
    found = qa_pairs(output)
    if not found:
        return None
    rng = random.Random(seed)
    rng.shuffle(found)
    count = rng.randint(1, nemotron_cc_pair_limit(document_tokens, max_pairs))
    return _with_pairs(document.rstrip(), found[:count])


def shuffle_sentences(text: str, seed: int, spans: list[tuple[int, int]]) -> str:
    sentences = [text[a:b].strip() for a, b in spans]
    random.Random(seed).shuffle(sentences)
    return " ".join(sentences)
