"""Curation runs: `curate init`, `curate run` and `curate serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import reported
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
    report_after(summary["warehouse"], RUN, summary["run_id"])
    show(summary, OutputFormat.json if json_out else fmt, print_run_summary)


def serve(
    config: RunConfigArg,
    name: Annotated[str, typer.Option("--name", help="deployment name")] = "curate",
    cron: Annotated[str | None, typer.Option("--cron", help='cron schedule, e.g. "0 3 * * *"')] = None,
    interval: Annotated[int | None, typer.Option("--interval", help="or: run every N seconds")] = None,
) -> None:
    """Serve the pipeline as a scheduled Prefect deployment (needs a Prefect server)."""
    quiet_prefect(verbose=True)
    with reported():
        load_config(config)  # a bad config fails now, not at the first scheduled run
        from flows.schedule import serve_curation

        serve_curation(config, name=name, cron=cron, interval_seconds=interval)
