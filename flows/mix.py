"""Materialising a mixture as a Prefect flow.

One task does the whole mix: it is deterministic and writes under `.work/` until it publishes, so
a retried task simply starts over and produces the same bytes. Errors a retry cannot fix (a bad
spec, a target no source can meet, a tokenizer that does not load) are not retried.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from curation.mixture.mix import mix
from curation.mixture.select import MixtureError
from flows.artifacts import publish_mixture, report_of
from schemas.config import ConfigError, load_mixture_spec
from scorers.models import ModelLoadError
from warehouse.warehouse import MIXTURE

_FINAL = (MixtureError, ConfigError, ModelLoadError, FileNotFoundError)


def _retry_unless_final(task, task_run, state) -> bool:
    try:
        state.result()
    except _FINAL:
        return False
    except Exception:  # noqa: BLE001 - anything else (an I/O error mid-mix) is worth another try
        return True
    return False


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2, retry_condition_fn=_retry_unless_final)
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
