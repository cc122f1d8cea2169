"""Curation runs: `curate init`, `curate run` and `curate serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import CommandError, reported
from cli.execute import curate, quiet_prefect
from cli.options import FormatOpt, LocalOpt, OverwriteOpt, RunConfigArg, VerboseOpt, write_starter_config
from cli.render import OutputFormat, out, print_run_summary, show
from cli.report import report_after
from schemas.config import DEFAULT_CONFIG_YAML, load_config
from warehouse.warehouse import RUN


def init(
    path: Annotated[Path, typer.Argument(help="where to write the config")] = Path("curate.yaml"),
    force: OverwriteOpt = False,
) -> None:
    """Write a commented default config."""
    with reported():
        write_starter_config(path, DEFAULT_CONFIG_YAML, force)
    out.print(f"wrote {path}; edit input.paths, then: curate run {path}")


def run(
    config: RunConfigArg,
    run_id: Annotated[str | None, typer.Option("--run-id", help="name of the run; an existing one is resumed")] = None,
    force: Annotated[bool, typer.Option("--force", help="discard the run's outputs and recompute")] = False,
    local: LocalOpt = False,
    verbose: VerboseOpt = False,
    fmt: FormatOpt = OutputFormat.table,
    json_out: Annotated[bool, typer.Option("--json", hidden=True, help="the same as --format json")] = False,
) -> None:
    """Run the curation pipeline (resumes RUN_ID if it exists) and print its funnel."""
    quiet_prefect(verbose)
    with reported("run"):
        summary = curate(load_config(config), run_id, force, local)
    if summary.get("nothing_new"):
        out.print(f"no new input: all {len(summary['skipped_inputs'])} files were curated before (input.skip_curated)")
        if json_out or fmt == OutputFormat.json:
            show(summary, OutputFormat.json, print_run_summary)
        return
    report_after(summary["warehouse"], RUN, summary["run_id"], summary)
    show(summary, OutputFormat.json if json_out else fmt, print_run_summary)


def serve(
    config: Annotated[
        Path | None, typer.Option("--config", help="a run config to serve on its own schedule (not with --all)")
    ] = None,
    all_deployments: Annotated[
        bool, typer.Option("--all", help="apply every deployment in prefect.yaml and start a worker (make serve)")
    ] = False,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="with --all: start a worker after applying")] = True,
    port: Annotated[
        int, typer.Option("--port", help="with --all: port of the local server started without PREFECT_API_URL")
    ] = 4200,
    name: Annotated[str, typer.Option("--name", help="deployment name")] = "curate",
    cron: Annotated[str | None, typer.Option("--cron", help='cron schedule, e.g. "0 3 * * *"')] = None,
    interval: Annotated[int | None, typer.Option("--interval", help="or: run every N seconds")] = None,
) -> None:
    """Run the pipeline on a schedule: --all applies the deployments of prefect.yaml (continual
    curation nightly, mixture refresh weekly) on a local or the configured Prefect server and starts
    a worker; with --config, serves that run config alone from this process."""
    quiet_prefect(verbose=True)
    with reported():
        if all_deployments:
            from flows.deployments import serve_all

            serve_all(Path.cwd(), worker=worker, port=port, log=out.print)
            return
        if config is None:
            raise CommandError("give --config RUN_CONFIG, or --all for the deployments of prefect.yaml")
        load_config(config)  # a bad config fails now, not at the first scheduled run
        from flows.schedule import serve_curation

        serve_curation(config, name=name, cron=cron, interval_seconds=interval)
