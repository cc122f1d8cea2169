"""`curate report`, and the report every run, rewrite and mixture command writes when it ends."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import CommandError, reported
from cli.options import WarehouseConfigOpt, WarehouseOpt, warehouse_path
from cli.render import console, out


def report(
    run_id: Annotated[str | None, typer.Argument(help="a curation run's id")] = None,
    rewrite_id: Annotated[str | None, typer.Option("--rewrite", help="a rewrite's id instead")] = None,
    mixture_id: Annotated[str | None, typer.Option("--mixture", help="a mixture's id instead")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="where to write it (default: the job's folder)")] = None,
    config: WarehouseConfigOpt = None,
    warehouse: WarehouseOpt = None,
) -> None:
    """Write a self-contained HTML report (works offline) of a run, a rewrite or a mixture."""
    from curation.report import write_report
    from warehouse.warehouse import MIXTURE, REWRITE, RUN

    with reported():
        chosen = [(kind, job) for kind, job in ((RUN, run_id), (REWRITE, rewrite_id), (MIXTURE, mixture_id)) if job]
        if len(chosen) != 1:
            raise CommandError("name one job: RUN_ID, --rewrite ID or --mixture ID")
        kind, job = chosen[0]
        path = write_report(warehouse_path(config, warehouse), kind, job, out_file)
    out.print(f"report: {path}")


def report_after(warehouse: str | Path, kind: str, job_id: str, summary: dict | None = None) -> str | None:
    """The report of a job that just finished, its path printed on stderr. A report that cannot be
    written is a warning, not a failure: the job's outputs are complete either way. A job run as a
    Prefect flow wrote its report already (`summary["report"]`, linked from the flow run)."""
    from curation.report import write_report

    if summary and summary.get("report"):
        console.print(f"report: {summary['report']}")
        return summary["report"]

    try:
        path = write_report(warehouse, kind, job_id)
    except Exception as err:  # noqa: BLE001 - reported, and the command still succeeds
        console.print(f"[yellow]report not written: {type(err).__name__}: {err}[/yellow]")
        return None
    console.print(f"report: {path}")
    return str(path)
