"""Heuristic quality: datatrove's Gopher repetition, Gopher quality, C4 and FineWeb filters, and
its URL blocklist for documents that have a url. The filters get a word tokenizer that splits
each whitespace-separated piece once (scorers/simplified_words.py: spaCy's words and sentences),
and Gopher's repetition rules compute their n-gram statistics over arrays
(scorers/heuristics.py); both give the filters' own decisions, faster.

Each document is judged with the settings of its language (the language stage's code): the word
tokenizer, stop words and thresholds of that language's block over the default (English) block
(schemas/config.py `QualityConfig.for_language`). The URL blocklist does not depend on language.

The filters' own `filter` methods make the decisions; we only feed them documents, turn their
reasons into rejections and keep the order cheap-first. Note that C4's filter rewrites the text
it keeps (drops lines without terminal punctuation): that is why deduplication runs before it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from functools import cache, lru_cache
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
from datatrove.data import Document
from datatrove.utils.text import PUNCTUATION_SET, split_into_words
from datatrove.utils.word_tokenizers import WordTokenizer

from curation.stage import DocumentStage, Rejection
from schemas.config import QualityConfig, UrlBlocklistConfig
from scorers.simplified_words import CachedWordTokenizer, fast_word_tokenizer
from scorers.words import SPACY_LOCK
from warehouse.hashset import StringHashSet

# (name, filter function, whether it splits words with spaCy and so must hold SPACY_LOCK)
NamedFilter = tuple[str, Callable[[Document], bool | tuple[bool, str]], bool]


def gopher_words(text: str, language: str | WordTokenizer) -> list[str]:
    """The words Gopher's rules count: tokens of the language's split with a non-punctuation character."""
    return [w for w in split_into_words(text, language) if any(ch not in PUNCTUATION_SET for ch in w)]


def build_filters(cfg: QualityConfig) -> list[NamedFilter]:
    """The language-dependent filters of one (effective) block, cheap first."""
    from datatrove.pipeline.filters import FineWebQualityFilter

    from scorers.heuristics import FastC4QualityFilter, FastGopherQualityFilter, FastGopherRepetitionFilter

    # the filters take a tokenizer object wherever they take a language code: the same words,
    # each whitespace-separated piece split by spaCy once per process
    language = fast_word_tokenizer(cfg.word_tokenizer)
    filters: list[NamedFilter] = []
    if cfg.gopher_repetition.enabled:
        filters.append(
            ("gopher_repetition", FastGopherRepetitionFilter(language=language, **cfg.gopher_repetition.params).filter, True)
        )
    if cfg.gopher_quality.enabled:
        params = dict(cfg.gopher_quality.params)
        if cfg.gopher_quality.alpha_words_rule == "words":
            # Gopher's letter rule over words rather than every token (see FastGopherQualityFilter)
            ratio = params.pop("max_non_alpha_words_ratio", 0.8)
            gopher = FastGopherQualityFilter(
                max_non_alpha_words_ratio=None, min_alpha_words_share_of_words=ratio, language=language, **params
            )
            filters.append(("gopher_quality", gopher.filter, True))
        else:
            filters.append(("gopher_quality", FastGopherQualityFilter(language=language, **params).filter, True))
    if cfg.c4.enabled:
        filters.append(("c4", FastC4QualityFilter(language=language, **cfg.c4.params).filter, True))
    if cfg.fineweb.enabled:
        filters.append(("fineweb", FineWebQualityFilter(language=language, **cfg.fineweb.params).filter, True))
    return filters


def build_url_filter(cfg: UrlBlocklistConfig) -> NamedFilter | None:
    if not cfg.enabled:
        return None
    import tldextract
    from datatrove.pipeline.filters import URLFilter

    url_filter = URLFilter(**cfg.params)
    # the default extractor tries to download the public suffix list
    url_filter.tldextractor = tldextract.TLDExtract(suffix_list_urls=())
    _load_blocklists(url_filter, cfg)
    return ("url_blocklist", url_filter.filter, False)


def _load_blocklists(url_filter, cfg: UrlBlocklistConfig) -> None:
    """datatrove's lists, its two big sets (4.5M domains, 20k URLs) as memory-mapped hash sets
    cached on disk (warehouse/hashset.py): parsed once per machine rather than once per process
    (~2.5 s and ~0.8 GB each time), and shared by the processes of a machine. The filter's own
    `filter` decides, with the same lists; tests/curation/test_url_blocklist.py holds it to
    datatrove's decisions."""
    if not url_filter.use_integrated_lists:
        return  # no bundled list: the filter holds only what the params gave it
    folder = _blocklist_cache(cfg)
    domains, urls = folder / "domains.npy", folder / "urls.npy"
    if domains.is_file() and urls.is_file():
        _load_small_lists(url_filter)
    else:
        url_filter.download_data()
        StringHashSet.write(domains, url_filter.block_listed_domains)
        StringHashSet.write(urls, url_filter.block_listed_url)
    url_filter.block_listed_domains = StringHashSet.open(domains)
    url_filter.block_listed_url = StringHashSet.open(urls)


def _blocklist_cache(cfg: UrlBlocklistConfig) -> Path:
    identity = json.dumps({"scheme": 1, "datatrove": version("datatrove"), "params": cfg.params}, sort_keys=True, default=str)
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cpt-curate" / "url-blocklist"
    return root / hashlib.sha256(identity.encode()).hexdigest()[:16]


def _load_small_lists(url_filter) -> None:
    """What datatrove's `download_data` loads besides the two big sets: the word lists and the
    subword automaton, the same way (the words given as params merged with the bundled ones)."""
    from datatrove.pipeline.filters.url_filter import ASSETS_PATH, get_list

    url_filter.banned_words = get_list(ASSETS_PATH, "banned_words.txt", url_filter.banned_words)
    url_filter.banned_subwords = get_list(ASSETS_PATH, "banned_subwords.txt", url_filter.banned_subwords)
    url_filter.soft_banned_words = get_list(ASSETS_PATH, "soft_banned_words.txt", url_filter.soft_banned_words)
    for word in url_filter.banned_subwords:
        url_filter.banned_subwords_automaton.add_word(word, len(url_filter.banned_subwords_automaton))
    url_filter.banned_subwords_automaton.make_automaton()
    url_filter._downloaded = True


@cache
def _load_word_splitter(word_tokenizer: str) -> None:
    """Load a block's word splitter (spaCy's, loaded on first use) once per process, in set-up
    rather than in the first shard; spaCy is not thread-safe, hence the lock."""
    with SPACY_LOCK:
        split_into_words("Warm up the word splitter.", fast_word_tokenizer(word_tokenizer))


@lru_cache(maxsize=32)
def _filters_for(cfg_json: str) -> tuple[NamedFilter, ...]:
    return tuple(build_filters(QualityConfig.model_validate_json(cfg_json)))


@lru_cache(maxsize=2)
def _url_filter_for(cfg_json: str) -> NamedFilter | None:
    return build_url_filter(UrlBlocklistConfig.model_validate_json(cfg_json))


class Quality(DocumentStage):
    name = "quality"
    config_section = "quality"

    def setup(self) -> None:
        self.url_filter = _url_filter_for(self.config.url_blocklist.model_dump_json())
        self._by_language: dict[str | None, tuple[NamedFilter, ...]] = {}
        self.filters_for(None)  # a broken default block fails before any shard is written
        _load_word_splitter(self.config.word_tokenizer)

    def process(self, batch: pa.Table) -> tuple[pa.Table, pa.Table]:
        self._split_new_pieces(batch)
        return super().process(batch)

    def _split_new_pieces(self, batch: pa.Table) -> None:
        """Split the batch's new pieces in a few spaCy calls before any document is judged: each
        call creates spaCy's lexemes for its pieces once (and frees them after), where a call per
        document would create the common ones again for every document."""
        texts = batch.column("text").to_pylist()
        languages = batch.column("language").to_pylist() if "language" in batch.column_names else [None] * len(texts)
        by_language: dict[str | None, list[str]] = {}
        for text, language in zip(texts, languages, strict=True):
            by_language.setdefault(language if language in self.config.languages else None, []).append(text)
        for language, group in by_language.items():
            tokenizer = fast_word_tokenizer(self.config.for_language(language).word_tokenizer)
            if isinstance(tokenizer, CachedWordTokenizer):
                with SPACY_LOCK:
                    tokenizer.learn([piece for text in group for piece in text.split()])

    def filters_for(self, language: str | None) -> tuple[NamedFilter, ...]:
        key = language if language in self.config.languages else None
        if key not in self._by_language:
            self._by_language[key] = _filters_for(self.config.for_language(key).model_dump_json())
        return self._by_language[key]

    def check(self, row: dict) -> Rejection | None:
        doc = Document(text=row["text"], id=row["doc_id"], metadata={"url": row["url"]} if row["url"] else {})
        filters = self.filters_for(row.get("language"))
        if self.url_filter is not None and row["url"]:
            filters = (self.url_filter, *filters)
        for name, apply, uses_spacy in filters:
            if uses_spacy:
                with SPACY_LOCK:
                    result = apply(doc)
            else:
                result = apply(doc)
            keep, reason = result if isinstance(result, tuple) else (result, None)
            if not keep:
                return Rejection(f"{name}:{reason or 'rejected'}", None)
        if doc.text != row["text"]:
            row["text"] = doc.text  # C4 drops lines it keeps out of the document
            row["n_chars"] = len(doc.text)
            row["n_words"] = len(doc.text.split())
            row["n_lines"] = doc.text.count("\n") + 1
        return None
