"""`python -m benchmarks [--quick | --docs N] [--sections stages,chain,memory,scoring,losses,rewrite,mix,gates,languages,toxicity,scale,minhash,plan,whole]`

Generates the benchmark corpus, runs each measurement in a child process, prints a table and
writes benchmarks/results/latest.json. See benchmarks/README.md for what every number means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import gates, languages, measure, mixture, near_dedup, rewrite, scale, scoring, toxicity, whole
from benchmarks.corpus import generate_corpus
from benchmarks.report import render

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECTIONS = (
    "stages",
    "chain",
    "memory",
    "scoring",
    "losses",
    "rewrite",
    "mix",
    "gates",
    "languages",
    "toxicity",
    "scale",
    "minhash",
    "plan",
    "whole",
)
DEFAULT_DOCS, QUICK_DOCS, SHARDS = 2000, 200, 8


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    p.add_argument("--docs", type=int, default=None, help=f"documents in the 1x corpus (default {DEFAULT_DOCS})")
    p.add_argument("--quick", action="store_true", help=f"smoke run on {QUICK_DOCS} documents")
    p.add_argument("--shard-docs", type=int, default=None, help=f"documents per shard (default: docs / {SHARDS})")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--memory-base-docs",
        type=int,
        default=None,
        help="documents of the memory section's 1x corpus; its 4x corpus has 4x the shards of the same size "
        "(default: a quarter of --docs, so the 4x run is the stage run; --memory-base-docs DOCS runs DOCS vs 4*DOCS)",
    )
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ",".join(SECTIONS))
    p.add_argument("--work-dir", type=Path, default=None, help="where corpora and run outputs go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (corpora, run outputs, child logs)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json")
    args = p.parse_args(argv)
    if args.docs is None:
        args.docs = QUICK_DOCS if args.quick else DEFAULT_DOCS
    if args.docs < 1:
        p.error("--docs must be at least 1")
    args.shard_docs = args.shard_docs or max(1, args.docs // SHARDS)
    if args.memory_base_docs is None:
        # a quarter of the corpus (whole shards), so that the 4x run is the corpus's own run
        args.memory_base_docs = max(args.shard_docs, args.docs // 4 // args.shard_docs * args.shard_docs)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; choose from {list(SECTIONS)}")
    return args


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _environment() -> dict:
    from importlib.metadata import version

    def v(name: str) -> str | None:
        try:
            return version(name)
        except Exception:  # noqa: BLE001
            return None

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "datatrove": v("datatrove"),
        "pyarrow": v("pyarrow"),
        "duckdb": v("duckdb"),
        "spacy": v("spacy"),
    }


def run(args: argparse.Namespace) -> dict:
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="cpt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {
            "docs": args.docs,
            "shard_docs": args.shard_docs,
            "seed": args.seed,
            "quick": args.quick,
            "sections": args.sections,
            "memory_base_docs": args.memory_base_docs,
        },
        "environment": _environment(),
    }
    try:
        _log(f"generating the corpus ({args.docs} docs) in {work}")
        corpus = generate_corpus(work / f"corpus-{args.docs}", args.docs, args.shard_docs, args.seed)
        results["corpus"] = corpus.as_dict()

        runs: dict[int, tuple] = {}  # docs -> (corpus info, child result) of whole-pipeline runs

        def whole_pipeline(docs: int):
            if docs not in runs:
                info = (
                    corpus if docs == corpus.docs else generate_corpus(work / f"corpus-{docs}", docs, args.shard_docs, args.seed)
                )
                _log(f"whole pipeline on {docs} docs in {len(info.files)} shards (child process)")
                runs[docs] = (info, measure.run_full_pipeline(info.root, work, f"pipeline-{docs}"))
            return runs[docs]

        if "stages" in args.sections:
            results["stages"] = measure.stage_table(whole_pipeline(corpus.docs)[1])

        if "chain" in args.sections:
            _log("heuristic chain: datatrove, then ours (alpha rule tokens, then words)")
            results["chain"] = measure.chain_comparison(corpus.root, corpus.files, work)

        if "memory" in args.sections:
            entries = {}
            for label, docs in (("1x", args.memory_base_docs), ("4x", 4 * args.memory_base_docs)):
                info, child = whole_pipeline(docs)
                entries[label] = measure.memory_entry(child, info.docs, len(info.files))
            results["memory"] = measure.memory_comparison(entries["1x"], entries["4x"])

        if "scoring" in args.sections:
            _log("scoring stage vs a bare fastText predict loop")
            results["scoring"] = scoring.apply_vs_bare(corpus.root, corpus.files, work)

        if "losses" in args.sections:
            _log("loss throughput: vLLM vs transformers (SmolLM2-135M)")
            results["losses"] = scoring.loss_throughput(corpus.files)

        if "rewrite" in args.sections:
            _log("rewrite stage vs raw vllm.LLM.generate on the same prompts (SmolLM2-135M)")
            results["rewrite"] = rewrite.rewrite_vs_raw(corpus.files, work, n_docs=4 if args.quick else 8)

        if "mix" in args.sections:
            _log("mixtures: curate mix and the exports vs the bare tokenizers batch API")
            results["mix"] = mixture.mixture_benchmark(work, args.docs, args.seed, log=_log)

        if "gates" in args.sections:
            results["gates"] = gates.gates_benchmark(log=_log)

        if "languages" in args.sections:
            results["languages"] = languages.quality_by_language(min(args.docs, 400), log=_log)

        if "toxicity" in args.sections:
            results["toxicity"] = toxicity.toxicity_match(log=_log)

        if "scale" in args.sections:
            results["scale"] = scale.scale_benchmark(corpus.docs, args.shard_docs, work, args.seed, log=_log)

        if "minhash" in args.sections:
            results["minhash"] = near_dedup.minhash_benchmark(corpus, work, args.seed, log=_log)

        if "plan" in args.sections:
            sizes = (100_000, 400_000) if args.quick else (1_000_000, 4_000_000)
            results["plan"] = near_dedup.plan_benchmark(work, sizes, args.seed, log=_log)

        if "whole" in args.sections:
            results["whole"] = whole.whole_run(corpus, work, log=_log)
    finally:
        if args.keep or args.work_dir:
            _log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    results = run(args)
    print(render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
