"""What each flow run shows in the Prefect UI: tables and Markdown built from the job's summary,
and a link to its HTML report.

The tables are plain functions of a summary (tested without Prefect); `publish_*` hands them to
Prefect inside a flow run. Artifact keys are stable per kind of table, so the UI's Artifacts page
shows each table's history across runs.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact


def funnel_table(summary: dict) -> list[dict]:
    return [
        {
            "stage": row["stage"],
            "docs in": row["docs_in"],
            "kept": row["docs_out"],
            "dropped": row["docs_rejected"],
            "seconds": row["seconds"],
        }
        for row in summary["funnel"]
    ]


def reasons_table(summary: dict) -> list[dict]:
    return [
        {"stage": row["stage"], "reason": reason, "documents": count}
        for row in summary["funnel"]
        for reason, count in row.get("reasons", {}).items()
    ]


def gates_table(summary: dict) -> list[dict]:
    """Per style, the records the output gates accepted and rejected, then each reject reason."""
    rows = [
        {"style": style, "accepted": counts.get("accepted", 0), "rejected": counts.get("rejected", 0)}
        for style, counts in summary["by_style"].items()
    ]
    return rows + [
        {"style": f"reason: {reason}", "accepted": 0, "rejected": n} for reason, n in summary["reject_reasons"].items()
    ]


def shares_table(summary: dict) -> list[dict]:
    return [
        {
            "source": name,
            "kind": source["kind"],
            "requested share": round(source["requested_share"], 4),
            "realised share": round(source["realised_share"], 4),
            "tokens": source["tokens"],
            "records": source["records"],
            "epochs": round(source["epochs"], 3),
            "decontaminated": sum(source["decontaminated"].values()),
        }
        for name, source in summary["sources"].items()
    ]


def shares_markdown(summary: dict) -> str:
    lines = [
        f"# Mixture {summary['mixture_id']}",
        "",
        f"{summary['tokens']:,} tokens in {summary['records']:,} records, {summary['shards']} shards; "
        f"manifest `{summary['manifest']}`",
        "",
        "| source | requested | realised | tokens |",
        "|---|---:|---:|---:|",
    ]
    for name, source in summary["sources"].items():
        lines.append(
            f"| {name} | {100 * source['requested_share']:.1f}% | {100 * source['realised_share']:.1f}% | {source['tokens']:,} |"
        )
    return "\n".join(lines) + "\n"


def _table(key: str, rows: list[dict], description: str) -> None:
    if rows:
        create_table_artifact(rows, key=key, description=description)


def publish_report(report: str | None) -> None:
    if report:
        create_link_artifact(
            Path(report).resolve().as_uri(), link_text=Path(report).name, key="report", description="HTML report"
        )


def publish_run(summary: dict) -> None:
    _table("curate-funnel", funnel_table(summary), f"Funnel of run {summary['run_id']}")
    _table("curate-reasons", reasons_table(summary), f"Why run {summary['run_id']} dropped documents")
    publish_report(summary.get("report"))


def publish_rewrite(summary: dict) -> None:
    _table("rewrite-gates", gates_table(summary), f"Output gates of rewrite {summary['rewrite_id']}")
    publish_report(summary.get("report"))


def publish_mixture(summary: dict) -> None:
    _table("mixture-shares", shares_table(summary), f"Token shares of mixture {summary['mixture_id']}")
    create_markdown_artifact(shares_markdown(summary), key="mixture-summary", description=f"Mixture {summary['mixture_id']}")
    publish_report(summary.get("report"))


def publish_scorer_card(card_markdown: Path) -> None:
    create_markdown_artifact(card_markdown.read_text(encoding="utf-8"), key="scorer-card", description="PreSelect scorer card")


def report_of(warehouse: str | Path, kind: str, job_id: str) -> str | None:
    """Write the job's HTML report; a report that cannot be written is a warning in the flow's log
    (the job's outputs are complete either way)."""
    from curation.report import write_report

    try:
        return str(write_report(warehouse, kind, job_id))
    except Exception as err:  # noqa: BLE001 - logged, the flow run still succeeds
        get_run_logger().warning("report not written: %s: %s", type(err).__name__, err)
        return None
