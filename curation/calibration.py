"""Calibrating a language's quality block from reference text the user trusts.

The idea is FineWeb 2's (Penedo et al. 2025, "FineWeb2: One Pipeline to Scale Them All"): a rule
tuned on English text means something else in another language, so each language's settings are
derived from the statistics of clean text in that language (they used Wikipedia among their
references) instead of being copied from English. The placement rules below are ours, one per
setting, each computed the way the filter itself splits and counts:

- `word_tokenizer`: the language's own code (datatrove assigns word tokenizers per language).
- `gopher_quality.stop_words`: Gopher's rule wants 2 of 8 very common English function words. Here:
  the 8 words found in the most reference documents (as the filter splits words, case as written),
  among spaCy's stop-word list for the language when spaCy has one (so that a reference about one
  subject cannot make its topic words "stop words"), else among all alphabetic words.
  `min_stop_words` stays Gopher's 2.
- `gopher_quality.min_avg_word_length` / `max_avg_word_length`: Gopher's bounds (3 and 10
  characters) scaled by how much longer or shorter the language's words are: the ratio of the
  median per-document average word length of the reference to that of the English reference
  (the bundled English Wikipedia leads), rounded to 0.1 character.
- Everything else keeps the default block: the repetition, line, punctuation and symbol rules
  measure layout rather than vocabulary.

The report runs the calibrated block's real filters over the reference and gives the share of it
each rule would drop, so a setting that does not fit the language shows up before any crawl does.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from statistics import median

import pyarrow.parquet as pq
from datatrove.data import Document

from curation.quality import build_filters, gopher_words
from schemas.config import LanguageQuality, QualityConfig, has_word_tokenizer
from scorers.assets import asset_path
from warehouse.files import sha256_file

STOP_WORDS_KEPT = 8  # as many as Gopher's English list
ENGLISH_BOUNDS = (3, 10)  # Gopher's average word length bounds, in characters (datatrove's defaults)
BUNDLED_REFERENCES = {"en": "wiki/summaries_en-us.json", "es": "wiki/summaries_es-es.json", "fr": "wiki/summaries_fr-fr.json"}
LEADS_PER_DOCUMENT = 5


class CalibrationError(ValueError):
    """A reference or language that cannot be calibrated; the message says which and why."""


@dataclass(frozen=True)
class Reference:
    name: str  # what the block records as its source
    sha256: str
    texts: list[str]


def bundled_reference(language: str) -> Reference:
    """The bundled Wikipedia leads of `language` as article-like documents: per topic, in title
    order, LEADS_PER_DOCUMENT leads joined by blank lines (a lead alone is shorter than the five
    sentences C4's rule asks of a page)."""
    if language not in BUNDLED_REFERENCES:
        raise CalibrationError(
            f"no bundled reference text for {language!r} (bundled: {', '.join(sorted(BUNDLED_REFERENCES))}); "
            f"give a Parquet or JSONL file of text you trust in that language"
        )
    path = asset_path(BUNDLED_REFERENCES[language])
    data = json.loads(path.read_text(encoding="utf-8"))
    by_topic: dict[str, list[str]] = {}
    for title in sorted(data):
        extract = (data[title].get("extract") or "").strip()
        if extract:
            by_topic.setdefault(data[title].get("topic") or "", []).append(extract)
    texts = [
        "\n\n".join(leads[start : start + LEADS_PER_DOCUMENT])
        for topic in sorted(by_topic)
        for leads in [by_topic[topic]]
        for start in range(0, len(leads) - LEADS_PER_DOCUMENT + 1, LEADS_PER_DOCUMENT)
    ]
    return Reference(f"bundled:{BUNDLED_REFERENCES[language]}", sha256_file(path), texts)


def read_reference(path: str | Path, text_column: str = "text") -> Reference:
    """Documents from a Parquet or JSONL file's text column; a row without text is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"reference {path} not found")
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        schema = pq.read_schema(path)
        if text_column not in schema.names:
            raise CalibrationError(f"{path}: no column {text_column!r} (columns: {schema.names})")
        values = pq.read_table(path, columns=[text_column]).column(text_column).to_pylist()
        rows = [(f"{path}: row {i}", v) for i, v in enumerate(values)]
    elif suffix in {".jsonl", ".ndjson"}:
        rows = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise CalibrationError(f"{path}: line {number}: not JSON ({err.msg})") from None
                if not isinstance(row, dict) or text_column not in row:
                    raise CalibrationError(f"{path}: line {number}: no field {text_column!r}")
                rows.append((f"{path}: line {number}", row[text_column]))
    else:
        raise CalibrationError(f"{path}: a reference is a .parquet or .jsonl file with a {text_column!r} column")
    for where, value in rows:
        if not isinstance(value, str) or not value.strip():
            raise CalibrationError(f"{where}: {text_column!r} is {value!r:.60}, not a non-empty string")
    if not rows:
        raise CalibrationError(f"{path}: holds no document")
    return Reference(str(path), sha256_file(path), [v for _, v in rows])


# ---------------------------------------------------------------------------------------- statistics


def _average_word_length(words: list[str]) -> float | None:
    return sum(map(len, words)) / len(words) if words else None


def spacy_stop_words(language: str) -> frozenset[str] | None:
    """spaCy's stop-word list for `language`, or None when spaCy has none."""
    import importlib

    try:
        module = importlib.import_module(f"spacy.lang.{language}.stop_words")
    except ImportError:
        return None
    return frozenset(module.STOP_WORDS)


def common_stop_words(split: list[list[str]], language: str) -> tuple[list[str], dict[str, float]]:
    """The STOP_WORDS_KEPT words in the most documents (ties by the word), with their document shares."""
    allowed = spacy_stop_words(language)
    frequency: Counter[str] = Counter()
    for words in split:
        frequency.update({w for w in words if w.isalpha() and (allowed is None or w in allowed)})
    ranked = sorted(frequency.items(), key=lambda item: (-item[1], item[0]))[:STOP_WORDS_KEPT]
    if len(ranked) < 2:
        raise CalibrationError(
            f"the reference has fewer than 2 candidate stop words for {language!r}: too small or not {language}"
        )
    return sorted(w for w, _ in ranked), {w: round(n / len(split), 4) for w, n in ranked}


def median_average_word_length(texts: list[str], tokenizer: str) -> float:
    lengths = [a for a in (_average_word_length(gopher_words(t, tokenizer)) for t in texts) if a is not None]
    if not lengths:
        raise CalibrationError("the reference has no words")
    return median(lengths)


@lru_cache(maxsize=1)
def _bundled_english_median_average_word_length() -> float:
    return median_average_word_length(bundled_reference("en").texts, "eng")


# ---------------------------------------------------------------------------------------- the block


def calibrate(reference: Reference, language: str, english: Reference | None = None) -> LanguageQuality:
    """The quality block for `language` from `reference` (see the module's rules). `english` is the
    reference whose median word length Gopher's bounds are taken to fit (default: the bundled one)."""
    if not has_word_tokenizer(language):
        raise CalibrationError(f"datatrove has no word tokenizer for {language!r}: cannot split its words")
    split = [gopher_words(text, language) for text in reference.texts]
    stop_words, shares = common_stop_words(split, language)
    lengths = [a for a in map(_average_word_length, split) if a is not None]
    language_median = median(lengths)
    english_median = (
        median_average_word_length(english.texts, "eng") if english else _bundled_english_median_average_word_length()
    )
    scale = language_median / english_median
    low, high = (round(bound * scale, 1) for bound in ENGLISH_BOUNDS)
    return LanguageQuality(
        word_tokenizer=language,
        gopher_quality={"params": {"stop_words": stop_words, "min_avg_word_length": low, "max_avg_word_length": high}},
        calibration={
            "method": "curate calibrate (README: per-language quality settings)",
            "reference": reference.name,
            "reference_sha256": reference.sha256,
            "documents": len(reference.texts),
            "median_average_word_length": round(language_median, 3),
            "english_median_average_word_length": round(english_median, 3),
            "stop_word_document_shares": shares,
        },
    )


def drop_shares(block: LanguageQuality, language: str, texts: list[str], default: QualityConfig | None = None) -> dict:
    """What the block's real filters do to `texts`: the share kept and the share each rule drops
    (a document counts under the first rule that drops it, as in a run)."""

    cfg = (default or QualityConfig()).model_copy(update={"languages": {language: block}}).for_language(language)
    filters = build_filters(cfg)
    reasons: Counter[str] = Counter()
    for index, text in enumerate(texts):
        doc = Document(text=text, id=str(index))
        for name, apply, _ in filters:
            result = apply(doc)
            keep, reason = result if isinstance(result, tuple) else (result, None)
            if not keep:
                reasons[f"{name}:{reason or 'rejected'}"] += 1
                break
    total = len(texts)
    return {
        "documents": total,
        "kept": round(1 - sum(reasons.values()) / total, 4) if total else None,
        "dropped_by": {reason: round(count / total, 4) for reason, count in sorted(reasons.items())},
    }


def block_yaml(block: LanguageQuality, language: str) -> str:
    import yaml

    header = (
        f"# quality settings for {language}, written by `curate calibrate` (README: per-language quality settings).\n"
        f"# Use it with quality.languages.{language}: <this file> in a run config.\n"
    )
    return header + yaml.safe_dump(block.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)
