"""Planning the rewrite: which documents, which styles, which chunks, and each unit of work's key.

A work key is a hash of everything that determines the output: the style's content hash, the
chunk text, the model and its weights, the sampling parameters and the variant number. Two runs that
would generate the same thing share a key, so a key already in the warehouse or in this rewrite's
part files is never generated again, and identical chunks in two documents cost one generation.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from curation.rewrite.chunking import Chunk, TokenCounter, chunk_text, text_budget
from curation.rewrite.styles import StyleError, language_name, names_language, render_messages
from schemas.rewrite import (
    RouteRule,
    RouteWhen,
    SamplingConfig,
    SourceSelection,
    StyleSpec,
)

SOURCE_COLUMNS = ["doc_id", "run_id", "text", "source", "language", "quality_bucket", "preselect_score"]
MIN_OUTPUT_TOKENS = 16  # below this a generation cannot be a rewrite of anything
OUTPUT_MARGIN = 16


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    weights_hash: str | None


@dataclass(frozen=True)
class WorkItem:
    key: str
    doc_id: str
    source_run_id: str
    source: str | None
    language: str | None
    chunk: Chunk
    chunk_hash: str
    style: StyleSpec
    variant: int
    seed: int
    messages: list[dict[str, str]] | None  # None for styles that need no model
    prompt_tokens: int
    max_tokens: int


@dataclass
class Plan:
    items: list[WorkItem] = field(default_factory=list)
    too_long: list[WorkItem] = field(default_factory=list)  # prompt leaves no room for an output
    documents: int = 0
    unrouted: int = 0
    chunks: int = 0
    duplicate_keys: int = 0
    routes: Counter = field(default_factory=Counter)


def selection_sql(selection: SourceSelection) -> tuple[str, list]:
    conditions, params = [], []
    if selection.runs:
        conditions.append(f"run_id IN ({', '.join('?' for _ in selection.runs)})")
        params.extend(selection.runs)
    if selection.where:
        conditions.append(f"({selection.where})")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    # md5 of (id, seed) is a stable pseudo-random order: the same sample on every run
    order = "ORDER BY md5(doc_id || ':' || ?)"
    limit = f"LIMIT {selection.limit}" if selection.limit else ""
    return f"SELECT {', '.join(SOURCE_COLUMNS)} FROM documents {where} {order} {limit}", [*params, str(selection.sample_seed)]


def _between(value, low, high) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def matches(when: RouteWhen, doc: dict) -> bool:
    return (
        (when.sources is None or doc.get("source") in when.sources)
        and (when.languages is None or doc.get("language") in when.languages)
        and _between(doc.get("quality_bucket"), when.min_quality_bucket, when.max_quality_bucket)
        and _between(doc.get("preselect_score"), when.min_preselect_score, when.max_preselect_score)
    )


class RouteError(StyleError):
    """A route that cannot decide for a document: a configuration problem, raised before any generation."""


def route(doc: dict, rules: list[RouteRule]) -> RouteRule | None:
    """The first rule whose conditions hold; a rule that requires a quality bucket stops at a document without one."""
    for i, rule in enumerate(rules):
        if rule.when.require_quality_bucket and doc.get("quality_bucket") is None:
            raise RouteError(
                f"document {doc.get('doc_id')} (run {doc.get('run_id')}) has no quality_bucket, which route "
                f"{rule.name or f'routes[{i}]'} needs: curate the run with a quality classifier (scoring.classifiers; "
                "PreSelect gives no bucket), select scored documents only (source.where: quality_bucket IS NOT NULL), "
                "or use routes: wrap"
            )
        if matches(rule.when, doc):
            return rule
    return None


def sha(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def work_key(
    style: StyleSpec,
    chunk_hash: str,
    model: ModelIdentity | None,
    sampling: SamplingConfig,
    variant: int,
    language: str | None = None,
) -> str:
    payload = {
        "style": style.id,
        "template": style.content_hash,
        "chunk": chunk_hash,
        # styles without a model (sentence shuffle) do not depend on the engine
        "model": [model.name, model.weights_hash] if model and style.kind == "llm" else None,
        "sampling": sampling.model_dump() if style.kind == "llm" else {"seed": sampling.seed},
        "variant": variant,
    }
    if names_language(style):  # the prompt names it; styles that do not keep their keys
        payload["language"] = language_name(language)
    return sha(json.dumps(payload, sort_keys=True))[:32]


def seed_for(key: str) -> int:
    return int(key[:8], 16) & 0x7FFFFFFF


def max_output_tokens(style: StyleSpec, chunk_tokens: int, prompt_tokens: int, max_model_len: int) -> int:
    """Enough for the style's expected output length, within its limit and the context window."""
    wanted = min(style.max_output_tokens, math.ceil(style.output_ratio * chunk_tokens) + OUTPUT_MARGIN)
    return min(wanted, max_model_len - prompt_tokens)


def plan_work(
    docs: pa.Table,
    rules: list[RouteRule],
    registry: dict[str, StyleSpec],
    counter: TokenCounter,
    model: ModelIdentity | None,
    sampling: SamplingConfig,
    max_model_len: int,
) -> Plan:
    plan = Plan()
    seen: set[str] = set()
    text_budgets: dict[tuple[str, str], int] = {}
    for doc in docs.to_pylist():
        plan.documents += 1
        rule = route(doc, rules)
        if rule is None:
            plan.unrouted += 1
            continue
        plan.routes[rule.name or "unnamed"] += 1
        by_budget: dict[int, list[Chunk]] = {}
        for choice in rule.styles:
            style = registry[choice.style]
            language = doc["language"]
            budget_key = (style.id, language_name(language))
            if budget_key not in text_budgets:
                text_budgets[budget_key] = text_budget(style, counter, language)
            budget_tokens = text_budgets[budget_key]
            if budget_tokens not in by_budget:
                by_budget[budget_tokens] = [c for c in chunk_text(doc["text"], budget_tokens, counter) if c.text.strip()]
                plan.chunks += len(by_budget[budget_tokens])
            for chunk in by_budget[budget_tokens]:
                chunk_hash = sha(chunk.text)[:32]
                messages = render_messages(style, chunk.text, language) if style.kind == "llm" else None
                prompt_tokens = counter.chat_tokens(messages) if messages else 0
                budget = max_output_tokens(style, chunk.tokens, prompt_tokens, max_model_len) if messages else 0
                for variant in range(choice.variants):
                    key = work_key(style, chunk_hash, model, sampling, variant, language)
                    if key in seen:
                        plan.duplicate_keys += 1
                        continue
                    seen.add(key)
                    item = WorkItem(
                        key=key,
                        doc_id=doc["doc_id"],
                        source_run_id=doc["run_id"],
                        source=doc["source"],
                        language=language,
                        chunk=chunk,
                        chunk_hash=chunk_hash,
                        style=style,
                        variant=variant,
                        seed=seed_for(key),
                        messages=messages,
                        prompt_tokens=prompt_tokens,
                        max_tokens=budget,
                    )
                    if messages and budget < MIN_OUTPUT_TOKENS:
                        plan.too_long.append(item)
                    else:
                        plan.items.append(item)
    return plan
