"""The rewrite stage: plan, generate in resumable batches, judge, finalize, register.

Resumability: every batch is written as one part file (atomically) the moment the engine returns,
named by the hash of its keys. A rerun of the same rewrite reads the keys of the existing parts
(and of every completed rewrite in the warehouse) and generates only the rest, so a killed run
loses at most the batch in flight and never produces a record twice. Failed work (timeouts, engine
errors, requests the engine returned no result for) is written to failure parts and tried again by
the next run; nothing stands in for a missing generation.

The near-duplicate gate needs all generations at once, so it runs at finalize, over the accepted
records in key order (deterministic whatever the batch order was) and against the accepted
synthetic records of earlier rewrites.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.rewrite.chunking import TokenCounter, input_tokens, prompt_tokens, sentence_spans, text_budget
from curation.rewrite.engines import (
    MISSING_RESULT,
    Engine,
    EngineResultError,
    GenerationRequest,
    GenerationResult,
    VLLMEngine,
)
from curation.rewrite.gates import (
    append_qa_nemotron_cc,
    append_qa_sample,
    gate_output,
    shuffle_sentences,
)
from curation.rewrite.styles import StyleError, load_registry
from curation.rewrite.work import (
    ModelIdentity,
    Plan,
    WorkItem,
    plan_work,
    selection_sql,
    sha,
)
from curation.stage import StageStats
from schemas import progress
from schemas.config import NearDedupConfig
from schemas.rewrite import GENERATION, REWRITE_FAILURE, EngineConfig, QaAppend, RewriteConfig, StyleSpec
from scorers.assets import asset_path
from scorers.language_id import model_path as lid_model_path
from scorers.minhash import band_keys_of
from scorers.models import resolve_model
from warehouse.files import write_json_atomic
from warehouse.secrets import without_secrets
from warehouse.shards import write_table_atomic
from warehouse.warehouse import REWRITE, Warehouse

STAGE = "rewrite"
FINAL_ROWS_PER_FILE = 50_000
TOO_LONG = "too_long_for_context"


@dataclass
class RewriteContext:
    cfg: RewriteConfig
    rewrite_id: str
    out: Path
    lid_model: str
    wordlists: Path
    engine_name: str
    model: ModelIdentity | None
    registry: dict = field(default_factory=dict)
    counters: Counter = field(default_factory=Counter)
    counter: TokenCounter | None = None  # the model's tokenizer (QA append counts document tokens)
    documents: dict[str, str] = field(default_factory=dict)  # doc_id -> text of the selected documents
    document_tokens: dict[str, int] = field(default_factory=dict)


def rewrite_dir(cfg: RewriteConfig) -> tuple[str, Path]:
    rewrite_id = cfg.rewrite_id or cfg.default_id()
    return rewrite_id, Path(cfg.output_root) / "rewrites" / rewrite_id


def _check_routes(cfg: RewriteConfig, registry: dict) -> None:
    for i, rule in enumerate(cfg.routes):
        for choice in rule.styles:
            if choice.style not in registry:
                raise StyleError(f"routes[{i}] names unknown style {choice.style!r}; known: {sorted(registry)}")


NO_MODEL_CONTEXT = 2048  # routes with no model style start no engine; planning needs some number


def _routed_model_styles(cfg: RewriteConfig, registry: dict) -> list[tuple[str, StyleSpec]]:
    """(where it is routed, style) for each model style a route names, in config order."""
    found = []
    for i, rule in enumerate(cfg.routes):
        for choice in rule.styles:
            style = registry[choice.style]
            if style.kind == "llm":
                found.append((f"routes[{i}]" + (f" ({rule.name})" if rule.name else ""), style))
    return found


def engine_context(cfg: RewriteConfig, registry: dict, counter: TokenCounter) -> int:
    """The engine's context length. A style sends at most `input_tokens` (its prompt and a chunk;
    for a style whose `chunk_tokens` includes the prompt, `chunk_tokens`) and receives at most
    `max_output_tokens`. Unset: the largest such sum over the routed styles. Set: every routed
    style must fit it, or the config is rejected naming the route and the style, before any work."""
    routed = _routed_model_styles(cfg, registry)
    for _, style in routed:
        text_budget(style, counter)  # a prompt that leaves no room for text is an error here
    needs = {style.id: input_tokens(style, counter) + style.max_output_tokens for _, style in routed}
    explicit = cfg.engine.max_model_len
    if explicit is None:
        return max(needs.values(), default=NO_MODEL_CONTEXT)
    for where, style in routed:
        if needs[style.id] > explicit:
            prompt = prompt_tokens(style, counter)
            sent = (
                f"its input (chunk_tokens {style.chunk_tokens}, prompt {prompt} tokens included)"
                if style.input_includes_prompt
                else f"its prompt ({prompt} tokens) plus a {style.chunk_tokens}-token chunk (chunk_tokens)"
            )
            raise StyleError(
                f"{where} style {style.id}: {sent} plus max_output_tokens {style.max_output_tokens} needs "
                f"{needs[style.id]} tokens, more than engine.max_model_len {explicit}; raise max_model_len, leave it unset to "
                f"size the context from the routed styles, or lower them with style_overrides: "
                f"{{{style.id}: {{chunk_tokens: N, max_output_tokens: M}}}}"
            )
    return explicit


def tokenizer_dir(cfg: RewriteConfig) -> Path:
    if cfg.engine.tokenizer:
        return Path(cfg.engine.tokenizer)
    return resolve_model(cfg.engine.model)


def model_identity(cfg: RewriteConfig) -> ModelIdentity:
    """What the work keys name as the model: the weights' fingerprint for a local model; for an
    endpoint only the served name (its weights are not visible from here)."""
    if cfg.engine.kind == "vllm":
        from scorers.losses import weights_fingerprint

        model_dir = resolve_model(cfg.engine.model)
        return ModelIdentity(model_dir.name, weights_fingerprint(model_dir))
    return ModelIdentity(cfg.engine.served_model or cfg.engine.model, None)


def done_keys(out: Path, warehouse: Warehouse, rewrite_id: str) -> set[str]:
    keys: set[str] = set()
    for part in sorted((out / "parts").glob("*.parquet")):
        keys.update(pq.read_table(part, columns=["record_id"]).column("record_id").to_pylist())
    for path in warehouse.completed_files("generations", exclude_run=rewrite_id):
        keys.update(pq.read_table(path, columns=["record_id"]).column("record_id").to_pylist())
    return keys


# ---------------------------------------------------------------- judging one result


def _sampling_json(item: WorkItem, cfg: RewriteConfig) -> str:
    if item.style.kind != "llm":
        return json.dumps({"seed": item.seed})
    s = cfg.sampling
    return json.dumps(
        {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "repetition_penalty": s.repetition_penalty,
            "max_tokens": item.max_tokens,
            "seed": item.seed,
        },
        sort_keys=True,
    )


def qa_appended(item: WorkItem, output: str, qa: QaAppend, ctx: RewriteContext) -> str | None:
    """The record text of a QA style with appending on: its source and a sample of its pairs."""
    if qa.rule == "fixed":
        return append_qa_sample(item.chunk.text, output, qa.pairs, item.seed)
    document = ctx.documents.get(item.doc_id)
    if document is None or ctx.counter is None:
        raise RuntimeError(f"QA append rule nemotron_cc needs the text of document {item.doc_id}, which was not loaded")
    if item.doc_id not in ctx.document_tokens:
        ctx.document_tokens[item.doc_id] = ctx.counter.count(document)
    return append_qa_nemotron_cc(document, output, ctx.document_tokens[item.doc_id], item.seed, qa.max_pairs)


def judge(item: WorkItem, result: GenerationResult, ctx: RewriteContext, batch_seconds: float) -> dict:
    """One GENERATION row: post-processing, gate verdicts, provenance."""
    style = item.style
    raw = result.text or ""
    output, verdicts, reason = gate_output(
        raw,
        style,
        ctx.cfg.gates,
        chunk=item.chunk.text,
        language=item.language,
        finish_reason=result.finish_reason,
        lid_model=ctx.lid_model,
        wordlists=ctx.wordlists,
    )
    text = output
    if reason is None and style.postprocess.qa_append:
        appended = qa_appended(item, output, style.postprocess.qa_append, ctx)
        verdicts["qa_pairs"] = "pass" if appended else "fail: no Question/Answer pair found"
        reason, text = ("qa_pairs", output) if appended is None else (None, appended)
    if reason is None and style.postprocess.shuffle_sentences and style.kind == "llm":
        text = shuffle_sentences(output, item.seed, sentence_spans(output))
        verdicts["shuffled"] = "yes"
    return {
        "record_id": item.key,
        "rewrite_id": ctx.rewrite_id,
        "text": text,
        "raw_output": raw,
        "accepted": reason is None,
        "reject_reason": reason,
        "gate_verdicts": json.dumps(verdicts, sort_keys=True),
        "doc_id": item.doc_id,
        "source_run_id": item.source_run_id,
        "source": item.source,
        "language": item.language,
        "chunk_index": item.chunk.index,
        "chunk_start": item.chunk.start,
        "chunk_end": item.chunk.end,
        "chunk_hash": item.chunk_hash,
        "variant": item.variant,
        "style": style.id,
        "template_version": style.version,
        "template_hash": style.content_hash,
        "template_cites": style.cites,
        "model_name": ctx.model.name if style.kind == "llm" and ctx.model else "none",
        "model_hash": ctx.model.weights_hash if style.kind == "llm" and ctx.model else None,
        "engine": ctx.engine_name if style.kind == "llm" else "none",
        "sampling_params": _sampling_json(item, ctx.cfg),
        "seed": item.seed,
        "tokens_in": result.tokens_in or (item.prompt_tokens if style.kind == "llm" else 0),
        "tokens_out": result.tokens_out,
        "finish_reason": result.finish_reason,
        "generated_at": datetime.now(UTC),
        "batch_seconds": batch_seconds,
    }


def failure_row(item: WorkItem, rewrite_id: str, reason: str, detail: str | None) -> dict:
    return {
        "record_id": item.key,
        "rewrite_id": rewrite_id,
        "doc_id": item.doc_id,
        "chunk_index": item.chunk.index,
        "variant": item.variant,
        "style": item.style.id,
        "reason": reason,
        "detail": without_secrets(detail),  # failure parts do not pass through the warehouse's scrubber
        "failed_at": datetime.now(UTC),
    }


def request_for(item: WorkItem, cfg: RewriteConfig) -> GenerationRequest:
    s = cfg.sampling
    return GenerationRequest(
        key=item.key,
        messages=item.messages,
        max_tokens=item.max_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        repetition_penalty=s.repetition_penalty,
        seed=item.seed,
    )


def shuffled_chunk(item: WorkItem) -> GenerationResult:
    text = item.chunk.text
    return GenerationResult(key=item.key, text=shuffle_sentences(text, item.seed, sentence_spans(text)))


def engine_results(items: list[WorkItem], engine: Engine | None, cfg: RewriteConfig) -> dict[str, GenerationResult]:
    """The engine's results for the batch's LLM work, matched by key. A result for a key not asked
    for, or a key answered twice, means results cannot be told apart: an error, never a guess."""
    requests = [request_for(i, cfg) for i in items if i.style.kind == "llm"]
    if not requests:
        return {}
    asked = {r.key for r in requests}
    results: dict[str, GenerationResult] = {}
    for result in engine.generate(requests):
        if result.key not in asked:
            raise EngineResultError(f"engine {engine.name} returned a result for key {result.key!r}, which was not requested")
        if result.key in results:
            raise EngineResultError(f"engine {engine.name} returned two results for key {result.key!r}")
        results[result.key] = result
    return results


def result_for(item: WorkItem, results: dict[str, GenerationResult]) -> GenerationResult:
    """Only model-free styles are produced here. LLM work the engine left unanswered becomes a
    failure, retried by the next run: a stand-in text would carry the model's provenance."""
    if item.style.kind != "llm":
        return shuffled_chunk(item)
    missing = GenerationResult(
        key=item.key, text=None, error=MISSING_RESULT, detail="the engine returned no result for this request"
    )
    return results.get(item.key, missing)


# ---------------------------------------------------------------- batches


def _part_name(items: list[WorkItem]) -> str:
    return sha("".join(sorted(i.key for i in items)))[:20] + ".parquet"


def run_batch(items: list[WorkItem], engine: Engine | None, ctx: RewriteContext) -> tuple[int, int]:
    """Generate, judge and persist one batch; returns (records written, failures)."""
    started = time.perf_counter()
    results = engine_results(items, engine, ctx.cfg)
    seconds = time.perf_counter() - started
    rows, failures = [], []
    for item in items:
        result = result_for(item, results)
        if result.error:
            failures.append(failure_row(item, ctx.rewrite_id, result.error, result.detail))
            ctx.counters[f"failed:{result.error}"] += 1
            continue
        row = judge(item, result, ctx, seconds)
        rows.append(row)
        ctx.counters["tokens_in"] += row["tokens_in"]
        ctx.counters["tokens_out"] += row["tokens_out"]
    name = _part_name(items)
    if failures:  # failures first: a crash between the two writes then only retries, never loses
        write_table_atomic(ctx.out / "failures" / name, pa.Table.from_pylist(failures, schema=REWRITE_FAILURE))
    write_table_atomic(ctx.out / "parts" / name, pa.Table.from_pylist(rows, schema=GENERATION))
    ctx.counters["generation_seconds"] += seconds
    return len(rows), len(failures)


def batches(items: list[WorkItem], size: int) -> list[list[WorkItem]]:
    """Length-sorted batches: requests of similar length finish together, so no batch waits on one
    long straggler, and requests of one style sit together and share their template prefix."""
    ordered = sorted(items, key=lambda i: (i.style.id, i.prompt_tokens, i.key))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


# ---------------------------------------------------------------- finalize


def _gated_texts(table: pa.Table, registry: dict) -> list[str]:
    """What the near-duplicate gate compares: the record text, except for QA-appended records,
    whose source text would make every record of one document look alike: their generated pairs."""
    appended = {s for s, style in registry.items() if style.postprocess.qa_append}
    return [
        raw if style in appended else text
        for text, raw, style in zip(
            table.column("text").to_pylist(),
            table.column("raw_output").to_pylist(),
            table.column("style").to_pylist(),
            strict=True,
        )
    ]


def _near_duplicate_marks(table: pa.Table, warehouse: Warehouse, ctx: RewriteContext) -> dict[str, str]:
    """record_id -> the earlier record it nearly duplicates (earlier rewrites first, then key order).
    Styles that switch the gate off (sentence shuffles are near-duplicates by design) take no part.
    The variants of one chunk in one style (Physics of LMs' k paraphrases) are meant to say the same
    thing, so they are never gated against one another, only against other chunks' records and
    earlier rewrites. No two kept records of different chunks share a band key (the later one would
    have been marked), so the first owner of a key is the only one that needs remembering."""
    cfg = NearDedupConfig()
    owner: dict[tuple[int, int], tuple[str, tuple | None]] = {}  # band key -> (record, its chunk and style)
    prior = warehouse.completed_files("generations", exclude_run=ctx.rewrite_id)
    if prior:
        columns = ["record_id", "text", "raw_output", "style", "accepted"]
        earlier = pa.concat_tables([pq.read_table(p, columns=columns) for p in prior]).filter(pc.field("accepted"))
        earlier_keys = band_keys_of(_gated_texts(earlier, ctx.registry), cfg)
        for rec, keys in zip(earlier.column("record_id").to_pylist(), earlier_keys, strict=True):
            for band, key in enumerate(keys):
                owner.setdefault((band, key), (rec, None))
    marks: dict[str, str] = {}
    checked = [s for s, style in ctx.registry.items() if style.gate_settings(ctx.cfg.gates).near_duplicates]
    accepted = table.filter(pc.field("accepted") & pc.field("style").isin(checked)).sort_by("record_id")
    siblings = zip(accepted.column("chunk_hash").to_pylist(), accepted.column("style").to_pylist(), strict=True)
    record_keys = band_keys_of(_gated_texts(accepted, ctx.registry), cfg)
    records = zip(accepted.column("record_id").to_pylist(), record_keys, siblings, strict=True)
    for rec, band_keys, group in records:
        keys = list(enumerate(band_keys))
        match = next((owner[k][0] for k in keys if k in owner and owner[k][0] != rec and owner[k][1] != group), None)
        if match:
            marks[rec] = match
            continue
        for k in keys:
            owner.setdefault(k, (rec, group))
    return marks


def _apply_marks(table: pa.Table, marks: dict[str, str]) -> pa.Table:
    if not marks:
        return table
    rows = table.to_pylist()
    for row in rows:
        if row["record_id"] in marks:
            verdicts = json.loads(row["gate_verdicts"])
            verdicts["near_duplicate"] = f"fail: of {marks[row['record_id']]}"
            row.update(accepted=False, reject_reason="near_duplicate", gate_verdicts=json.dumps(verdicts, sort_keys=True))
    return pa.Table.from_pylist(rows, schema=GENERATION)


def finalize(ctx: RewriteContext, warehouse: Warehouse, plan: Plan) -> tuple[list[Path], list[Path], pa.Table, pa.Table]:
    parts = sorted((ctx.out / "parts").glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(p, schema=GENERATION) for p in parts]) if parts else GENERATION.empty_table()
    table = table.sort_by("record_id")
    if ctx.cfg.gates.near_duplicates:
        table = _apply_marks(table, _near_duplicate_marks(table, warehouse, ctx))

    done = set(table.column("record_id").to_pylist())
    failure_parts = sorted((ctx.out / "failures").glob("*.parquet"))
    failures = (
        pa.concat_tables([pq.read_table(p, schema=REWRITE_FAILURE) for p in failure_parts])
        if failure_parts
        else REWRITE_FAILURE.empty_table()
    )
    too_long = [
        failure_row(i, ctx.rewrite_id, TOO_LONG, f"prompt of {i.prompt_tokens} tokens leaves {i.max_tokens} for the output")
        for i in plan.too_long
    ]
    failures = pa.concat_tables([failures, pa.Table.from_pylist(too_long, schema=REWRITE_FAILURE)])
    # only the latest failure of work that never succeeded
    latest: dict[str, dict] = {}
    for row in failures.sort_by("failed_at").to_pylist():
        if row["record_id"] not in done:
            latest[row["record_id"]] = row
    failures = pa.Table.from_pylist([latest[k] for k in sorted(latest)], schema=REWRITE_FAILURE)

    final = ctx.out / "final"
    generation_files = []
    for i, offset in enumerate(range(0, max(table.num_rows, 1), FINAL_ROWS_PER_FILE)):
        path = final / f"generations-{i:05d}.parquet"
        write_table_atomic(path, table.slice(offset, FINAL_ROWS_PER_FILE))
        generation_files.append(path)
    failure_file = final / "failures.parquet"
    write_table_atomic(failure_file, failures)
    return generation_files, [failure_file], table, failures


def gate_stats(rows: list[dict]) -> dict[str, StageStats]:
    """Per style: records judged (in), accepted (out), rejected with the first failing gate as the
    reason; the same stats object a curation stage keeps, so they add up the same way."""
    stats: dict[str, StageStats] = {}
    for row in rows:
        style = stats.setdefault(row["style"], StageStats())
        style.docs_in += 1
        if row["accepted"]:
            style.docs_out += 1
        else:
            style.docs_rejected += 1
            style.reasons[row["reject_reason"]] += 1
    return stats


def _accepted_rejected(stats: StageStats) -> dict[str, int]:
    return {name: n for name, n in (("accepted", stats.docs_out), ("rejected", stats.docs_rejected)) if n}


def summarize(ctx: RewriteContext, plan: Plan, table: pa.Table, failures: pa.Table, skipped: int, engine_seconds: float) -> dict:
    rows = table.select(["accepted", "reject_reason", "style", "tokens_out"]).to_pylist()
    tokens_out = sum(r["tokens_out"] for r in rows)
    rejected_tokens = sum(r["tokens_out"] for r in rows if not r["accepted"])
    by_style = gate_stats(rows)
    total = sum(by_style.values(), StageStats())
    generation_seconds = ctx.counters["generation_seconds"]
    return {
        "rewrite_id": ctx.rewrite_id,
        "documents": plan.documents,
        "unrouted_documents": plan.unrouted,
        "routes": dict(plan.routes),
        "chunks": plan.chunks,
        "work_items": len(plan.items) + len(plan.too_long),
        "duplicate_work_items": plan.duplicate_keys,
        "already_done": skipped,
        "generated_now": ctx.counters["generated_now"],
        "records": total.docs_in,
        "accepted": total.docs_out,
        "rejected": total.docs_rejected,
        "reject_reasons": dict(total.reasons),
        "by_style": {style: _accepted_rejected(stats) for style, stats in sorted(by_style.items())},
        "failures": dict(Counter(failures.column("reason").to_pylist())),
        "tokens_out": tokens_out,
        "rejected_token_share": rejected_tokens / tokens_out if tokens_out else 0.0,
        "engine_start_seconds": round(engine_seconds, 3),
        "generation_seconds": round(generation_seconds, 3),
        "tokens_out_per_second_now": round(ctx.counters["tokens_out"] / generation_seconds, 1) if generation_seconds else None,
    }


# ---------------------------------------------------------------- entry point


def run_rewrite(cfg: RewriteConfig, engine: Engine | None = None) -> dict:
    """Rewrite the selected curated documents; returns the summary. `engine` lets a caller reuse a
    running engine (benchmarks, tests); otherwise one is started only if there is work for it."""
    rewrite_id, out = rewrite_dir(cfg)
    registry = load_registry(cfg.styles_dirs, cfg.styles, cfg.style_overrides)
    _check_routes(cfg, registry)
    warehouse = Warehouse(cfg.warehouse)
    warehouse.job_started(REWRITE, rewrite_id, out, cfg.model_dump(mode="json"))
    owns_engine = False
    try:
        model = model_identity(cfg) if engine is None else ModelIdentity(engine.model_name, engine.model_hash)
        ctx = RewriteContext(
            cfg=cfg,
            rewrite_id=rewrite_id,
            out=out,
            lid_model=lid_model_path(),
            wordlists=asset_path("ldnoobw"),
            engine_name=engine.name if engine else _engine_name(cfg),
            model=model,
            registry=registry,
        )
        sql, params = selection_sql(cfg.source)
        docs = warehouse.select(sql, params)
        counter = TokenCounter(tokenizer_dir(cfg))
        context = engine_context(cfg, registry, counter)
        ctx.counter = counter
        ctx.documents = dict(zip(docs.column("doc_id").to_pylist(), docs.column("text").to_pylist(), strict=True))
        plan = plan_work(docs, cfg.routes, registry, counter, model, cfg.sampling, context)
        done = done_keys(out, warehouse, rewrite_id)
        pending = [i for i in plan.items if i.key not in done]
        engine_seconds = 0.0
        if engine is None and any(i.style.kind == "llm" for i in pending):
            started = time.perf_counter()
            engine, owns_engine = make_engine(cfg.engine.model_copy(update={"max_model_len": context})), True
            engine_seconds = time.perf_counter() - started
        work = batches(pending, cfg.batch_size)
        progress.stage_started(STAGE, len(work))
        for n, batch in enumerate(work):
            written, _ = run_batch(batch, engine, ctx)
            ctx.counters["generated_now"] += written
            progress.shard_done(STAGE, f"batch {n + 1}/{len(work)}", len(batch), written)
        generation_files, failure_files, table, failures = finalize(ctx, warehouse, plan)
        summary = summarize(ctx, plan, table, failures, len(plan.items) - len(pending), engine_seconds)
        write_json_atomic(out / "summary.json", summary)
        warehouse.job_completed(
            REWRITE,
            rewrite_id,
            {"generations": generation_files, "rewrite_failures": failure_files},
            summary,
            config=cfg.model_dump(mode="json"),
        )
        return summary
    except BaseException as err:
        warehouse.job_failed(REWRITE, rewrite_id, f"{type(err).__name__}: {err}")
        raise
    finally:
        if owns_engine:
            engine.close()


def make_engine(cfg: EngineConfig) -> Engine:
    """The engine the config names. It lives here, beside the runner that owns engines, so that
    neither engine module imports the other."""
    if cfg.kind == "vllm":
        return VLLMEngine(resolve_model(cfg.model), cfg)
    from curation.rewrite.endpoint import EndpointEngine

    return EndpointEngine(cfg)


def _engine_name(cfg: RewriteConfig) -> str:
    if cfg.engine.kind == "vllm":
        return "vllm"
    from curation.rewrite.endpoint import engine_name

    return engine_name(cfg.engine.base_url)
