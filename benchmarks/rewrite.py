"""Section 6: the rewrite stage against raw `vllm.LLM.generate` on the same prompts.

Both sides use one engine (started once; its start-up is reported, not charged to either side), the
same rendered prompts (our planner's chunks and styles, through the model's chat template) and the
same per-request sampling parameters and seeds. The raw side is one `LLM.generate` call over all
prompts and nothing else; the stage side is a whole `run_rewrite`: selection from the warehouse,
chunking, planning, generation, gates, Parquet parts, finalize and registration. Each side runs
twice, alternating, and its faster pass counts. Target: stage tokens/s >= 0.95 x raw tokens/s.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

RATIO_TARGET = 0.95
STYLES = ("wrap_wikipedia", "wrap_qa")


def _curated_warehouse(files: list[Path], work: Path) -> Path:
    from curation.runner import run_pipeline
    from schemas.config import config_from_dict

    root = work / "rewrite-bench"
    cfg = config_from_dict(
        {
            "input": {"paths": [str(f) for f in files[:1]]},
            "output": {"root": str(root / "out")},
            "warehouse": {"path": str(root / "curated.duckdb")},
            "near_dedup": {"enabled": False},
            "quality": {"enabled": False},
            "toxicity": {"enabled": False},
        }
    )
    run_pipeline(cfg, run_id="bench")
    return root / "curated.duckdb"


def _config(root: Path, warehouse: Path, n_docs: int, label: str):
    from schemas.rewrite import RewriteConfig

    return RewriteConfig.model_validate(
        {
            "rewrite_id": label,
            "warehouse": str(warehouse),
            "output_root": str(root / label),
            "source": {"limit": n_docs},
            "routes": [{"styles": [{"style": s} for s in STYLES]}],
            "batch_size": 1000,  # one engine call, like the raw side
        }
    )


def _raw_requests(cfg, engine):
    """The exact prompts and sampling parameters the stage will send, rendered as text."""
    from curation.rewrite.chunking import TokenCounter
    from curation.rewrite.runner import engine_context, request_for, tokenizer_dir
    from curation.rewrite.styles import load_registry
    from curation.rewrite.work import ModelIdentity, plan_work, selection_sql
    from warehouse.warehouse import Warehouse

    sql, params = selection_sql(cfg.source)
    docs = Warehouse(cfg.warehouse).select(sql, params)
    registry, counter = load_registry(), TokenCounter(tokenizer_dir(cfg))
    plan = plan_work(
        docs,
        cfg.routes,
        registry,
        counter,
        ModelIdentity(engine.model_name, engine.model_hash),
        cfg.sampling,
        engine_context(cfg, registry, counter),
    )
    tokenizer = engine.llm.get_tokenizer()
    prompts, sampling = [], []
    for item in plan.items:
        prompts.append(tokenizer.apply_chat_template(item.messages, tokenize=False, add_generation_prompt=True))
        sampling.append(engine.sampling_params(request_for(item, cfg)))
    return prompts, sampling


def rewrite_vs_raw(files: list[Path], work: Path, n_docs: int = 8) -> dict:
    from curation.rewrite.engines import VLLMEngine
    from curation.rewrite.runner import run_rewrite
    from schemas.rewrite import EngineConfig
    from scorers.models import model_path

    try:
        path = model_path("smollm2-135m-instruct")
    except FileNotFoundError as err:
        return {"skipped": str(err)}
    curated = _curated_warehouse(files, work)
    started = time.perf_counter()
    engine = VLLMEngine(path, EngineConfig(max_model_len=2048))
    start_s = time.perf_counter() - started
    prompts, sampling = _raw_requests(_config(work, curated, n_docs, "plan"), engine)
    engine.llm.generate(prompts[:2], sampling[:2], use_tqdm=False)  # warm up

    raw, ours = [], []
    for attempt in range(2):
        t0 = time.perf_counter()
        outputs = engine.llm.generate(prompts, sampling, use_tqdm=False)
        raw.append((sum(len(o.outputs[0].token_ids) for o in outputs), time.perf_counter() - t0))

        # a fresh copy of the curated warehouse: otherwise the first pass's records would be found
        # there and the second pass would (rightly) generate nothing
        warehouse = work / f"rewrite-pass-{attempt}.duckdb"
        shutil.copy(curated, warehouse)
        t0 = time.perf_counter()
        summary = run_rewrite(_config(work, warehouse, n_docs, f"pass-{attempt}"), engine=engine)
        ours.append((summary["tokens_out"], time.perf_counter() - t0, summary))
    engine.close()

    raw_tokens, raw_s = min(raw, key=lambda r: r[1] / max(r[0], 1))
    our_tokens, our_s, summary = min(ours, key=lambda r: r[1] / max(r[0], 1))
    raw_tps, our_tps = raw_tokens / raw_s, our_tokens / our_s
    return {
        "model": "smollm2-135m-instruct",
        "styles": list(STYLES),
        "docs": n_docs,
        "requests": len(prompts),
        "engine_start_s": round(start_s, 2),
        "raw": {"tokens": raw_tokens, "seconds": round(raw_s, 2), "tokens_per_s": round(raw_tps, 1)},
        "stage": {"tokens": our_tokens, "seconds": round(our_s, 2), "tokens_per_s": round(our_tps, 1)},
        "ratio": round(our_tps / raw_tps, 3),
        "target": RATIO_TARGET,
        "accepted": summary["accepted"],
        "rejected": summary["rejected"],
        "reject_reasons": summary["reject_reasons"],
        "rejected_token_share": round(summary["rejected_token_share"], 3),
    }
