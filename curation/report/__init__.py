"""Run, rewrite and mixture reports: one self-contained HTML page each, from the warehouse.

`numbers.py` reads what every chart and table shows; `page.py` draws it. `write_report` puts the
page beside the job's outputs (or where asked), written atomically.
"""

from __future__ import annotations

from pathlib import Path

from curation.report.numbers import ReportError, mixture_numbers, rewrite_numbers, run_numbers
from warehouse.files import write_text_atomic
from warehouse.warehouse import MIXTURE, REWRITE, RUN, Warehouse

REPORT_NAME = "report.html"
_NUMBERS = {RUN: run_numbers, REWRITE: rewrite_numbers, MIXTURE: mixture_numbers}

__all__ = ["REPORT_NAME", "ReportError", "write_report"]


def write_report(warehouse: str | Path, kind: str, job_id: str, out: str | Path | None = None) -> Path:
    """Write the report of one run, rewrite or mixture; returns its path (default: `report.html`
    in the job's output folder)."""
    from curation.report.page import render_page

    numbers = _NUMBERS[kind](Warehouse(warehouse), job_id)
    path = Path(out) if out is not None else Path(numbers["job"]["output_dir"]) / REPORT_NAME
    write_text_atomic(path, render_page(numbers))
    return path
