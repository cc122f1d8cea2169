"""Materialising a mixture as a Prefect flow.

One task does the whole mix: it is deterministic and writes under `.work/` until it publishes, so
a retried task simply starts over and produces the same bytes. Errors a retry cannot fix (a bad
spec, a target no source can meet, a tokenizer that does not load) are not retried.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from curation.mixture.mix import mix
from flows.artifacts import publish_mixture, report_of
from flows.retries import retry_unless_final
from schemas.config import load_mixture_spec
from warehouse.warehouse import MIXTURE


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2, retry_condition_fn=retry_unless_final)
def mix_task(spec_path: str, force: bool) -> dict:
    return mix(load_mixture_spec(spec_path), force=force)


@flow(name="mix")
def mix_flow(spec_path: str, force: bool = False) -> dict:
    spec = load_mixture_spec(spec_path)  # a spec that does not load fails the flow before any task starts
    summary = mix_task(spec_path, force)
    logger = get_run_logger()
    for name, source in summary["sources"].items():
        logger.info(
            "mixture %s source %s: %d tokens (%.1f%% requested, %.1f%% realised), %.2f epochs, decontaminated %s",
            summary["mixture_id"],
            name,
            source["tokens"],
            100 * source["requested_share"],
            100 * source["realised_share"],
            source["epochs"],
            source["decontaminated"],
        )
    summary["report"] = report_of(spec.warehouse, MIXTURE, summary["mixture_id"])
    publish_mixture(summary)
    return summary
