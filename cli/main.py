"""`curate`: the command line. It starts flows and reads the warehouse; nothing imports it."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from schemas.config import (
    DEFAULT_CONFIG_YAML,
    ConfigError,
    RunConfig,
    config_from_dict,
    load_config,
    load_training_config,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Curate Parquet corpora for continual pre-training.")
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DEFAULT_WAREHOUSE = "warehouse/curation.duckdb"


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def _quiet_prefect(verbose: bool) -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def _load(config: Path, loader=load_config):
    """A config through `loader`; a bad one ends the command with exit code 2."""
    try:
        return loader(config)
    except ConfigError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None


class RichReporter:
    """Progress bars per step, counting shards and documents."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}
        self.docs: dict[str, int] = {}

    def stage_started(self, stage: str, total_shards: int) -> None:
        if stage not in self.tasks:
            self.docs[stage] = 0
            self.tasks[stage] = self.progress.add_task(stage, total=total_shards, docs="")

    def shard_done(self, stage: str, shard: str, docs_in: int, docs_out: int) -> None:
        if stage in self.tasks:
            self.docs[stage] += docs_in
            docs = f"{self.docs[stage]:,} docs" if self.docs[stage] else ""
            self.progress.update(self.tasks[stage], advance=1, docs=docs)


@contextmanager
def _progress_bars(unit: str) -> Iterator[None]:
    """Progress bars for whatever the work reports through curation.progress, while it runs."""
    from curation import progress as progress_hook

    bars = Progress(
        TextColumn("[bold]{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
        TextColumn(f"{unit} {{task.fields[docs]}}"), TimeElapsedColumn(), console=console,
    )
    progress_hook.set_reporter(RichReporter(bars))
    try:
        with bars:
            yield
    finally:
        progress_hook.set_reporter(None)


def _execute(cfg: RunConfig, run_id: str | None, force: bool, local: bool) -> dict:
    with _progress_bars("shards"):
        if local:
            from curation.runner import run_pipeline

            return run_pipeline(cfg, run_id=run_id, force=force)
        from flows.curate import run_curate_flow
        from flows.server import prefect_api

        with prefect_api():
            return run_curate_flow(cfg, run_id=run_id, force=force)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def print_summary(summary: dict) -> None:
    table = Table(title=f"Funnel of run {summary['run_id']}")
    for col in ("stage", "docs in", "kept", "dropped", "bytes kept", "bytes dropped", "seconds"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for row in summary["funnel"]:
        table.add_row(
            row["stage"], f"{row['docs_in']:,}", f"{row['docs_out']:,}", f"{row['docs_rejected']:,}",
            _size(row["bytes_out"]), _size(row["bytes_rejected"]), f"{row['seconds']:.1f}",
        )
    out.print(table)
    reasons = Table(title="Why documents were dropped")
    for col in ("stage", "reason", "docs"):
        reasons.add_column(col, justify="right" if col == "docs" else "left")
    for row in summary["funnel"]:
        for reason, count in row["reasons"].items():
            reasons.add_row(row["stage"], reason, f"{count:,}")
    if reasons.row_count:
        out.print(reasons)
    totals = summary["totals"]
    out.print(
        f"[bold]{totals['docs_in']:,}[/bold] documents in, [green]{totals['docs_out']:,} curated[/green], "
        f"[yellow]{totals['docs_rejected']:,} rejected[/yellow] (kept in the rejected table with stage and reason)"
    )
    if "pii_redactions" in summary:
        pii = summary["pii_redactions"]
        out.print(f"PII: {pii['redactions']:,} redactions in {pii['documents']:,} curated documents")
    for err in summary["input_errors"]:
        out.print(f"[red]input error[/red] {err['input_file']}: {err['error']}")
    out.print(f"curated shards: {summary['documents_dir']}")
    out.print(f"run folder:     {summary['run_dir']}")
    out.print(f"warehouse:      {summary['warehouse']}")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the config")] = Path("curate.yaml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented default config."""
    if path.exists() and not force:
        console.print(f"[red]{path} exists; use --force to overwrite[/red]")
        raise typer.Exit(1)
    path.write_text(DEFAULT_CONFIG_YAML, encoding="utf-8")
    out.print(f"wrote {path}; edit input.paths, then: curate run {path}")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="run config YAML")],
    run_id: Annotated[str | None, typer.Option("--run-id", help="name of the run; an existing one is resumed")] = None,
    force: Annotated[bool, typer.Option("--force", help="discard the run's outputs and recompute")] = False,
    local: Annotated[bool, typer.Option("--local", help="run without Prefect, serially")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Prefect's logs")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
) -> None:
    """Run the curation pipeline (resumes RUN_ID if it exists)."""
    _quiet_prefect(verbose)
    cfg = _load(config)
    try:
        summary = _execute(cfg, run_id, force, local)
    except Exception as err:  # noqa: BLE001 - the CLI reports, the run itself recorded the failure
        console.print(f"[red]run failed: {type(err).__name__}: {err}[/red]")
        raise typer.Exit(1) from None
    if json_out:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)


def _warehouse_path(config: Path | None, warehouse: Path | None) -> Path:
    if warehouse:
        return warehouse
    if config:
        return Path(_load(config).warehouse.path)
    return Path(DEFAULT_WAREHOUSE)


def _plain(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _print_rows(columns: list[str], rows: list[tuple], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        print(json.dumps([{c: _plain(v) for c, v in zip(columns, r)} for r in rows], indent=2, default=str))
    elif fmt is OutputFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows([[_plain(v) for v in r] for r in rows])
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table()
        for c in columns:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*["" if v is None else str(_plain(v))[:200] for v in r])
        out.print(table)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views documents, rejected, runs, stage_stats, input_errors")],
    config: Annotated[Path | None, typer.Option("--config", help="take the warehouse path from this config")] = None,
    warehouse: Annotated[Path | None, typer.Option("--warehouse", help="warehouse DuckDB file")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, csv or json")] = OutputFormat.table,
) -> None:
    """Query the warehouse (opened read-only)."""
    import duckdb

    from warehouse.warehouse import Warehouse

    try:
        columns, rows = Warehouse(_warehouse_path(config, warehouse)).query(query)
    except (FileNotFoundError, duckdb.Error) as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from None
    _print_rows(columns, rows, fmt)


@app.command()
def status(
    config: Annotated[Path | None, typer.Option("--config", help="take the warehouse path from this config")] = None,
    warehouse: Annotated[Path | None, typer.Option("--warehouse", help="warehouse DuckDB file")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table, csv or json")] = OutputFormat.table,
) -> None:
    """List runs: status, documents in/out/rejected, input errors."""
    from warehouse.warehouse import Warehouse

    try:
        columns, rows = Warehouse(_warehouse_path(config, warehouse)).query(
            """SELECT run_id, status, started_at, finished_at, docs_in, docs_out, docs_rejected, input_errors, output_dir
               FROM runs ORDER BY started_at"""
        )
    except FileNotFoundError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from None
    _print_rows(columns, rows, fmt)


def _demo_run_config(workdir: Path, shards: list[Path], crawl: str, scorer_dir: Path | None) -> RunConfig:
    data = {
        "input": {"paths": [str(p) for p in shards]},
        "output": {"root": str(workdir / "output")},
        "warehouse": {"path": str(workdir / "warehouse.duckdb")},
        "pii": {"enabled": True},
    }
    if scorer_dir is not None:
        # keep the best 80% of characters: enough to show the selection without emptying the demo
        data["scoring"] = {"enabled": True, "preselect": {"scorer_dir": str(scorer_dir), "rule": {"top_share": 0.8}}}
    return config_from_dict(data, source=f"demo {crawl}")


def _demo_training_config(workdir: Path):
    from schemas.scoring import PreSelectTrainingConfig

    return PreSelectTrainingConfig.model_validate(
        {
            "scorer_id": "demo-preselect",
            "documents": {"warehouse_query": "SELECT doc_id, text FROM documents WHERE run_id = 'demo-crawl1'", "limit": 60},
            "models": [{"name": "smollm2-135m-instruct", "path": "smollm2-135m-instruct"}, {"name": "gemma3-270m", "path": "gemma3-270m"}],
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


def _demo_rewrite_config(workdir: Path) -> dict:
    return {
        "rewrite_id": "demo-rewrite",
        "warehouse": str(workdir / "warehouse.duckdb"),
        "output_root": str(workdir),
        "source": {"runs": ["demo-crawl2"], "limit": 10},
        "routes": [{"name": "all", "styles": [{"style": "wrap_wikipedia"}, {"style": "wrap_qa"}]}],
        # a 135M model drifts off its source at higher temperatures; the gates still catch plenty
        "sampling": {"temperature": 0.2, "top_p": 0.9, "repetition_penalty": 1.1, "seed": 0},
        "batch_size": 32,
    }


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option("--workdir", help="where the demo corpus, outputs and warehouse go")] = Path("out/demo"),
    local: Annotated[bool, typer.Option("--local", help="run without Prefect, serially")] = False,
    preselect: Annotated[bool, typer.Option("--preselect/--no-preselect", help="train and apply a PreSelect scorer (needs `make models`)")] = True,
    rewrite: Annotated[bool, typer.Option("--rewrite/--no-rewrite", help="rewrite a sample of crawl2 with the bundled model (needs `make models`)")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Prefect's logs")] = False,
) -> None:
    """Build the bundled demo corpus and curate two crawls of it end to end; between them, train a
    PreSelect scorer on the first crawl with the bundled models and select the second with it."""
    _quiet_prefect(verbose)
    from contextlib import nullcontext

    from flows.server import prefect_api

    with nullcontext() if local else prefect_api():
        _run_demo(workdir.resolve(), local, preselect, rewrite)


def _run_demo(workdir: Path, local: bool, preselect: bool, rewrite: bool) -> None:
    import shutil

    import yaml

    from curation.demo_corpus import build_demo_corpus
    from warehouse.warehouse import Warehouse

    # a fresh warehouse each time: an earlier demo's runs would otherwise deduplicate this one away
    for stale in ("output", "preselect", "rewrites"):
        shutil.rmtree(workdir / stale, ignore_errors=True)
    (workdir / "warehouse.duckdb").unlink(missing_ok=True)
    corpus = build_demo_corpus(workdir / "corpus")
    out.print(f"demo corpus in {workdir / 'corpus'}; planted: {corpus.planted}")
    scorer_dir = None
    for crawl, shards in (("crawl1", corpus.crawl1), ("crawl2", corpus.crawl2)):
        out.rule(f"[bold]{crawl}")
        try:
            summary = _execute(_demo_run_config(workdir, shards, crawl, scorer_dir), f"demo-{crawl}", force=True, local=local)
        except Exception as err:  # noqa: BLE001
            console.print(f"[red]demo run {crawl} failed: {type(err).__name__}: {err}[/red]")
            raise typer.Exit(1) from None
        print_summary(summary)
        if crawl == "crawl1" and preselect:
            out.rule("[bold]PreSelect scorer trained on crawl1 (SmolLM2-135M and Gemma-3-270M, MMLU measured)")
            training = _demo_training_config(workdir)
            config_path = workdir / "preselect.yaml"
            config_path.write_text(yaml.safe_dump(training.model_dump(mode="json"), sort_keys=False))
            try:
                scorer_dir = _train_scorer(config_path, training, local)
            except Exception as err:  # noqa: BLE001
                console.print(f"[red]PreSelect training failed: {type(err).__name__}: {err}[/red]")
                raise typer.Exit(1) from None
            out.print((scorer_dir / "scorer_card.md").read_text())
    if rewrite:
        out.rule("[bold]rewrite: a sample of crawl2 in the WRAP Wikipedia and QA styles (SmolLM2-135M on vLLM-CPU)")
        config_path = workdir / "rewrite.yaml"
        config_path.write_text(yaml.safe_dump(_demo_rewrite_config(workdir), sort_keys=False))
        try:
            summary = _execute_rewrite(config_path, local)
        except Exception as err:  # noqa: BLE001
            console.print(f"[red]rewrite failed: {type(err).__name__}: {err}[/red]")
            raise typer.Exit(1) from None
        print_rewrite_summary(summary, str(workdir / "warehouse.duckdb"))
        query = "SELECT style, chunk_index, tokens_out, left(text, 200) AS text FROM synthetic ORDER BY record_id LIMIT 5"
        out.print(f"curate sql --warehouse {workdir / 'warehouse.duckdb'} \"{query}\"")
        columns, rows = Warehouse(workdir / "warehouse.duckdb").query(query)
        _print_rows(columns, rows, OutputFormat.table)
    out.rule("[bold]warehouse")
    query = "SELECT stage, reason, count(*) AS docs FROM rejected GROUP BY ALL ORDER BY stage, docs DESC"
    out.print(f"curate sql --warehouse {workdir / 'warehouse.duckdb'} \"{query}\"")
    columns, rows = Warehouse(workdir / "warehouse.duckdb").query(query)
    _print_rows(columns, rows, OutputFormat.table)


@app.command()
def serve(
    config: Annotated[Path, typer.Argument(help="run config YAML")],
    name: Annotated[str, typer.Option("--name", help="deployment name")] = "curate",
    cron: Annotated[str | None, typer.Option("--cron", help='cron schedule, e.g. "0 3 * * *"')] = None,
    interval: Annotated[int | None, typer.Option("--interval", help="or: run every N seconds")] = None,
) -> None:
    """Serve the pipeline as a scheduled Prefect deployment (needs a Prefect server)."""
    _quiet_prefect(verbose=True)
    _load(config)
    from flows.schedule import serve_curation

    serve_curation(config, name=name, cron=cron, interval_seconds=interval)


preselect_app = typer.Typer(no_args_is_help=True, help="PreSelect scorer: losses, benchmark scores, training, applying.")
app.add_typer(preselect_app, name="preselect")


def _fail(err: Exception) -> typer.Exit:
    console.print(f"[red]{type(err).__name__}: {err}[/red]")
    return typer.Exit(1)


def _train_scorer(config_path: Path, cfg, local: bool) -> Path:
    with _progress_bars("batches"):
        if local:
            from flows.preselect import register
            from scorers.preselect import run_training

            scorer_dir = run_training(cfg)
            register(cfg, scorer_dir)
            return scorer_dir
        from flows.preselect import preselect_flow
        from flows.server import prefect_api

        with prefect_api():
            return Path(preselect_flow(str(config_path.resolve())))


@preselect_app.command("losses")
def preselect_losses(config: Annotated[Path, typer.Argument(help="PreSelect training config YAML")]) -> None:
    """Compute (or reuse from the cache) every model's loss on the training documents."""
    from scorers.preselect import model_losses, training_documents

    cfg = _load(config, load_training_config)
    try:
        sample = training_documents(cfg)
        documents = sample.documents
        table = Table(title=f"Losses of {len(documents):,} documents ({sample.skipped_empty} empty skipped; cache: {cfg.cache_dir})")
        for col in ("model", "computed now", "from cache", "mean bits/char"):
            table.add_column(col)
        for model in cfg.models:
            with _progress_bars("documents"):
                losses = model_losses(cfg, model, documents)
            bpc = losses.table.column("bits_per_char").to_pylist()
            table.add_row(losses.model, f"{losses.computed:,}", f"{len(bpc) - losses.computed:,}", f"{sum(bpc) / max(len(bpc), 1):.4f}")
    except Exception as err:  # noqa: BLE001
        raise _fail(err) from None
    out.print(table)


@preselect_app.command("benchmark")
def preselect_benchmark(config: Annotated[Path, typer.Argument(help="PreSelect training config YAML")]) -> None:
    """Measure each model's benchmark accuracy (models with a typed-in score keep it)."""
    from scorers.preselect import benchmark_score

    cfg = _load(config, load_training_config)
    table = Table(title="Benchmark scores")
    for col in ("model", "score", "source"):
        table.add_column(col)
    try:
        for model in cfg.models:
            source = "given" if model.benchmark_score is not None else f"measured, {cfg.benchmark.questions} questions"
            table.add_row(model.name, f"{benchmark_score(cfg, model):.4f}", source)
    except Exception as err:  # noqa: BLE001
        raise _fail(err) from None
    out.print(table)


@preselect_app.command("train")
def preselect_train(
    config: Annotated[Path, typer.Argument(help="PreSelect training config YAML")],
    local: Annotated[bool, typer.Option("--local", help="run without Prefect")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Prefect's logs")] = False,
) -> None:
    """Losses, benchmark scores, labels, fastText training and the scorer card, in one go."""
    _quiet_prefect(verbose)
    cfg = _load(config, load_training_config)
    try:
        scorer_dir = _train_scorer(config, cfg, local)
    except Exception as err:  # noqa: BLE001
        raise _fail(err) from None
    out.print((scorer_dir / "scorer_card.md").read_text())
    out.print(f"scorer folder: {scorer_dir}")
    out.print(f"use it in a run config: scoring: {{enabled: true, preselect: {{scorer_dir: {scorer_dir}}}}}")


@preselect_app.command("apply")
def preselect_apply(
    scorer_dir: Annotated[Path, typer.Argument(help="a trained scorer folder")],
    run_id: Annotated[str, typer.Option("--run-id", help="a completed run whose documents to score")],
    config: Annotated[Path | None, typer.Option("--config", help="take the warehouse path from this config")] = None,
    warehouse: Annotated[Path | None, typer.Option("--warehouse", help="warehouse DuckDB file")] = None,
    top_share: Annotated[float | None, typer.Option("--top-share", help="keep this share of characters (default 0.1)")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="or keep scores at or above this")] = None,
) -> None:
    """Score a completed run's curated documents: scores go to the warehouse `scores` view and the
    selection the rule would make is reported (the run's documents are not changed; to select
    while curating, enable `scoring` in the run config)."""
    from schemas.scoring import SelectionRule
    from scorers.apply import apply_to_run

    try:
        rule = SelectionRule(top_share=top_share, threshold=threshold)
        result = apply_to_run(scorer_dir, Path(_warehouse_path(config, warehouse)), run_id, rule)
    except Exception as err:  # noqa: BLE001
        raise _fail(err) from None
    out.print(
        f"scored {result.documents:,} documents of run {run_id} with {scorer_dir.name}: threshold {result.threshold:.4f} "
        f"keeps {result.kept_docs:,} documents, {result.kept_chars:,} of {result.total_chars:,} characters"
    )
    out.print(f"scores: {result.scores_path} (warehouse view `scores`, scorer_id '{result.scorer_id}')")


rewrite_app = typer.Typer(no_args_is_help=True, help="Rewrite curated documents with a language model (WRAP, Nemotron-CC, Physics of LMs styles).")
app.add_typer(rewrite_app, name="rewrite")


@rewrite_app.command("init")
def rewrite_init(
    path: Annotated[Path, typer.Argument(help="where to write the rewrite config")] = Path("rewrite.yaml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented rewrite config with every default."""
    from schemas.rewrite import DEFAULT_REWRITE_YAML

    if path.exists() and not force:
        console.print(f"[red]{path} exists; use --force to overwrite[/red]")
        raise typer.Exit(1)
    path.write_text(DEFAULT_REWRITE_YAML, encoding="utf-8")
    out.print(f"wrote {path}")


@rewrite_app.command("styles")
def rewrite_styles(
    config: Annotated[Path | None, typer.Option("--config", help="also list this config's own styles")] = None,
) -> None:
    """The style registry: bundled styles plus those a config adds."""
    from curation.rewrite.styles import load_registry
    from schemas.config import load_rewrite_config

    try:
        cfg = _load(config, load_rewrite_config) if config else None
        registry = load_registry(cfg.styles_dirs, cfg.styles, cfg.style_overrides) if cfg else load_registry()
    except ValueError as err:
        raise _fail(err) from None
    import re

    table = Table(title="Rewrite styles (full citation in each style file)")
    for col in ("style", "v", "hash", "kind", "tokens in/out", "paper"):
        table.add_column(col, no_wrap=col != "paper")
    for style in sorted(registry.values(), key=lambda s: s.id):
        paper = re.search(r"arXiv:\S+", style.cites)
        table.add_row(style.id, str(style.version), style.content_hash[:8], style.kind,
                      f"{style.chunk_tokens}/{style.max_output_tokens}", paper.group(0).rstrip(",") if paper else style.cites[:40])
    out.print(table)


def print_rewrite_summary(summary: dict, warehouse: str) -> None:
    out.print(
        f"rewrite [bold]{summary['rewrite_id']}[/bold]: {summary['documents']:,} documents "
        f"({summary['unrouted_documents']:,} matched no route), {summary['chunks']:,} chunks, "
        f"{summary['work_items']:,} work items ({summary['duplicate_work_items']:,} duplicate chunks merged, "
        f"{summary['already_done']:,} already done), {summary['generated_now']:,} generated now"
    )
    styles = Table(title="Records per style")
    for col in ("style", "accepted", "rejected"):
        styles.add_column(col, justify="left" if col == "style" else "right")
    for style, counts in summary["by_style"].items():
        styles.add_row(style, f"{counts.get('accepted', 0):,}", f"{counts.get('rejected', 0):,}")
    out.print(styles)
    gates = Table(title="Output gates: why records were rejected (kept in synthetic_rejected)")
    for col in ("gate", "records"):
        gates.add_column(col, justify="left" if col == "gate" else "right")
    for reason, count in sorted(summary["reject_reasons"].items(), key=lambda kv: -kv[1]):
        gates.add_row(reason, f"{count:,}")
    if gates.row_count:
        out.print(gates)
    share = summary["rejected_token_share"]
    speed = summary["tokens_out_per_second_now"]
    out.print(
        f"[green]{summary['accepted']:,} accepted[/green], [yellow]{summary['rejected']:,} rejected[/yellow]; "
        f"{summary['tokens_out']:,} tokens generated, {share:.0%} of them in rejected records"
        + (f"; {speed:,.0f} tokens/s, engine start {summary['engine_start_seconds']:.1f} s" if speed else "")
    )
    for reason, count in summary["failures"].items():
        out.print(f"[red]{count:,} work items failed: {reason}[/red] (see rewrite_failures; retried by the next run)")
    out.print(f"warehouse: {warehouse} (views synthetic, synthetic_rejected, generations, rewrite_failures, rewrites)")


def _execute_rewrite(config_path: Path, local: bool) -> dict:
    from schemas.config import load_rewrite_config

    with _progress_bars("batches"):
        if local:
            from curation.rewrite.runner import run_rewrite

            return run_rewrite(load_rewrite_config(config_path))
        from flows.rewrite import rewrite_flow
        from flows.server import prefect_api

        with prefect_api():
            return rewrite_flow(str(config_path.resolve()))


@rewrite_app.command("run")
def rewrite_run(
    config: Annotated[Path, typer.Argument(help="rewrite config YAML (see `curate rewrite init`)")],
    local: Annotated[bool, typer.Option("--local", help="run without Prefect")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Prefect's and vLLM's logs")] = False,
) -> None:
    """Rewrite curated documents in the routed styles. Rerunning the same config resumes: only
    work without a record is generated."""
    from schemas.config import load_rewrite_config

    _quiet_prefect(verbose)
    cfg = _load(config, load_rewrite_config)
    try:
        summary = _execute_rewrite(config, local)
    except Exception as err:  # noqa: BLE001
        raise _fail(err) from None
    print_rewrite_summary(summary, cfg.warehouse)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
