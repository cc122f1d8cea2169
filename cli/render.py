"""Everything the command line shows: tables, JSON, the run and rewrite summaries, progress bars.

Commands compute plain data (dicts and lists of numbers and strings) and hand it to `show`, which
prints it as JSON for programs or as tables for people. Keeping the data and its rendering apart is
what lets every table command print JSON with the same values the table shows, unrounded.

Tables and summaries go to stdout, progress bars and errors to stderr, so `--format json` output
can be piped straight into a parser.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class OutputFormat(StrEnum):
    """How a command prints its table or summary."""

    table = "table"
    json = "json"


class RowsFormat(StrEnum):
    """How query results print: flat rows also make sense as CSV."""

    table = "table"
    csv = "csv"
    json = "json"


def _plain(value):
    """A warehouse value as JSON and CSV can hold it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def print_json(data) -> None:
    # print, not rich: rich would wrap long lines and read brackets as markup
    print(json.dumps(data, indent=2, default=lambda v: str(_plain(v))))


def show(data, fmt: OutputFormat, as_table: Callable) -> None:
    """`data` as JSON, or through the command's own table renderer."""
    if fmt == OutputFormat.json:
        print_json(data)
    else:
        as_table(data)


def print_rows(columns: list[str], rows: list[tuple], fmt: RowsFormat | OutputFormat) -> None:
    if fmt == RowsFormat.json:
        print_json([{c: _plain(v) for c, v in zip(columns, r)} for r in rows])
    elif fmt == RowsFormat.csv:
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


def _table(title: str | None, columns: tuple[str, ...], left: tuple[str, ...] = (), **column_options) -> Table:
    """A table whose columns are right-aligned (numbers) except those named in `left`."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right", **column_options)
    return table


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ----------------------------------------------------------------------------- curation runs


def print_calibration(summary: dict) -> None:
    table = _table(
        f"{summary['language']}: what the calibrated rules drop of the reference ({summary['documents']} documents)",
        ("rule", "share dropped"),
        left=("rule",),
    )
    for rule, share in summary["dropped_by"].items():
        table.add_row(rule, f"{share:.2%}")
    table.add_row("kept", f"{summary['kept']:.2%}")
    out.print(table)
    if summary["out"]:
        out.print(f"block written to {summary['out']}; use it with quality.languages.{summary['language']}: {summary['out']}")


def print_run_summary(summary: dict) -> None:
    """The funnel of a run, why documents were dropped, and where everything went."""
    columns = ("stage", "docs in", "kept", "dropped", "bytes kept", "bytes dropped", "seconds")
    table = _table(f"Funnel of run {summary['run_id']}", columns, left=("stage",))
    for row in summary["funnel"]:
        table.add_row(
            row["stage"],
            f"{row['docs_in']:,}",
            f"{row['docs_out']:,}",
            f"{row['docs_rejected']:,}",
            _size(row["bytes_out"]),
            _size(row["bytes_rejected"]),
            f"{row['seconds']:.1f}",
        )
    out.print(table)
    reasons = _table("Why documents were dropped", ("stage", "reason", "docs"), left=("stage", "reason"))
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


# ----------------------------------------------------------------------------- PreSelect


def print_losses(report: dict) -> None:
    title = f"Losses of {report['documents']:,} documents ({report['skipped_empty']} empty skipped; cache: {report['cache_dir']})"
    table = Table(title=title)
    for col in ("model", "computed now", "from cache", "mean bits/char"):
        table.add_column(col)
    for row in report["models"]:
        table.add_row(row["model"], f"{row['computed_now']:,}", f"{row['from_cache']:,}", f"{row['mean_bits_per_char']:.4f}")
    out.print(table)


def print_benchmark(rows: list[dict]) -> None:
    table = Table(title="Benchmark scores")
    for col in ("model", "score", "source"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["model"], f"{row['score']:.4f}", row["source"])
    out.print(table)


def print_trained_scorer(scorer_dir: Path) -> None:
    out.print((scorer_dir / "scorer_card.md").read_text())


def print_applied_scorer(report: dict) -> None:
    out.print(
        f"scored {report['documents']:,} documents of run {report['run_id']} with {Path(report['scorer_dir']).name}: "
        f"threshold {report['threshold']:.4f} keeps {report['kept_docs']:,} documents, "
        f"{report['kept_chars']:,} of {report['total_chars']:,} characters"
    )
    out.print(f"scores: {report['scores_path']} (warehouse view `scores`, scorer_id '{report['scorer_id']}')")


# ----------------------------------------------------------------------------- rewriting


def paper_of(citation: str) -> str:
    """The arXiv id a style cites, or the start of its citation when it has none."""
    paper = re.search(r"arXiv:\S+", citation)
    return paper.group(0).rstrip(",") if paper else citation[:40]


def print_styles(rows: list[dict]) -> None:
    table = Table(title="Rewrite styles (full citation in each style file)")
    for col in ("style", "v", "hash", "kind", "tokens in/out", "paper"):
        table.add_column(col, no_wrap=col != "paper")
    for row in rows:
        table.add_row(
            row["style"],
            str(row["version"]),
            row["hash"][:8],
            row["kind"],
            f"{row['chunk_tokens']}/{row['max_output_tokens']}",
            row["paper"],
        )
    out.print(table)


def print_rewrite_summary(summary: dict, warehouse: str) -> None:
    """What a rewrite generated, accepted and rejected (and why), and where to look."""
    out.print(
        f"rewrite [bold]{summary['rewrite_id']}[/bold]: {summary['documents']:,} documents "
        f"({summary['unrouted_documents']:,} matched no route), {summary['chunks']:,} chunks, "
        f"{summary['work_items']:,} work items ({summary['duplicate_work_items']:,} duplicate chunks merged, "
        f"{summary['already_done']:,} already done), {summary['generated_now']:,} generated now"
    )
    styles = _table("Records per style", ("style", "accepted", "rejected"), left=("style",))
    for style, counts in summary["by_style"].items():
        styles.add_row(style, f"{counts.get('accepted', 0):,}", f"{counts.get('rejected', 0):,}")
    out.print(styles)
    gates = _table("Output gates: why records were rejected (kept in synthetic_rejected)", ("gate", "records"), left=("gate",))
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


# ----------------------------------------------------------------------------- mixtures


def print_mixture_summary(summary: dict) -> None:
    """Requested against realised token shares per source, epochs, and what decontamination removed."""
    table = _table(
        f"Mixture {summary['mixture_id']}: {summary['tokens']:,} tokens, {summary['records']:,} records, {summary['shards']} shards",
        ("source", "asked", "got", "tokens", "records", "epochs", "decontam.", "unselected"),
        left=("source",),
    )
    for name, s in summary["sources"].items():
        table.add_row(
            name,
            f"{s['requested_share']:.1%}",
            f"{s['realised_share']:.1%}",
            f"{s['tokens']:,}",
            f"{s['records']:,}",
            f"{s['epochs']:.2f}",
            f"{sum(s['decontaminated'].values()):,}",
            f"{s['unselected_source_records']:,}",
        )
    out.print(table)
    out.print(
        "asked / got: requested and realised share of the tokens; epochs: passes over the source's usable records; "
        "decontam.: records sharing an n-gram with an eval set; unselected: synthetic records whose source document "
        "no documents source selected"
    )
    for name, s in summary["sources"].items():
        for eval_set, count in s["decontaminated"].items():
            out.print(f"  {name}: {count:,} removed for eval set {eval_set}")
    out.print(f"manifest: {summary['manifest']} (views mixtures, mixture_records, decontaminated)")


def print_export_summary(summary: dict) -> None:
    """Per format: where it went, tokens per source (equal to the manifest's, or the export failed), speed."""
    for fmt, report in summary["formats"].items():
        table = _table(f"Export {fmt}: {report['dir']}", ("source", "tokens"), left=("source",))
        for source, tokens in report["tokens_per_source"].items():
            table.add_row(source, f"{tokens:,}")
        out.print(table)
        out.print(
            f"{report['tokens']:,} tokens in {len(report['files'])} files ({_size(report['bytes'])}), {report['tokens_per_s']:,.0f} tokens/s"
        )


# ----------------------------------------------------------------------------- progress


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
        else:  # a stage whose work is found as it goes announces its grown total
            self.progress.update(self.tasks[stage], total=total_shards)

    def shard_done(self, stage: str, shard: str, docs_in: int, docs_out: int) -> None:
        if stage in self.tasks:
            self.docs[stage] += docs_in
            docs = f"{self.docs[stage]:,} docs" if self.docs[stage] else ""
            self.progress.update(self.tasks[stage], advance=1, docs=docs)


@contextmanager
def progress_bars(unit: str) -> Iterator[None]:
    """Progress bars for whatever the work reports through schemas.progress, while it runs."""
    from schemas import progress as progress_hook

    bars = Progress(
        TextColumn("[bold]{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{unit} {{task.fields[docs]}}"),
        TimeElapsedColumn(),
        console=console,
    )
    progress_hook.set_reporter(RichReporter(bars))
    try:
        with bars:
            yield
    finally:
        progress_hook.set_reporter(None)
