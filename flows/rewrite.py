"""The rewrite stage as a Prefect flow.

One task runs the whole rewrite: the engine holds the model, and every batch is persisted as it
finishes, so Prefect's retry of a crashed task is a resume that generates only what is missing.
Errors that a retry cannot fix (a bad style, a model that does not load) are not retried.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from curation.rewrite.runner import run_rewrite
from flows.artifacts import publish_rewrite, report_of
from flows.retries import retry_unless_final
from schemas.config import load_rewrite_config
from warehouse.warehouse import REWRITE


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2, retry_condition_fn=retry_unless_final)
def rewrite_task(config_path: str) -> dict:
    return run_rewrite(load_rewrite_config(config_path))


@flow(name="rewrite")
def rewrite_flow(config_path: str) -> dict:
    cfg = load_rewrite_config(config_path)  # a config that does not load fails the flow before any task starts
    summary = rewrite_task(config_path)
    get_run_logger().info(
        "rewrite %s: %d records (%d accepted), %d generated now, %d already done, failures %s",
        summary["rewrite_id"],
        summary["records"],
        summary["accepted"],
        summary["generated_now"],
        summary["already_done"],
        summary["failures"],
    )
    summary["report"] = report_of(cfg.warehouse, REWRITE, summary["rewrite_id"])
    publish_rewrite(summary)
    return summary
