"""Which task failures are worth another try: one retry condition for every flow's tasks.

Transient failures (an I/O error, an endpoint timeout, a lost Dask worker, a crash mid-write)
are retried: every step resumes from what it persisted, so a retry redoes only the unfinished
part and writes the same bytes. Deterministic ones are not: a bad config or spec, bad input the
run cannot read, a model or style that does not load, an accounting error. Retrying them would
fail the same way, later.
"""

from __future__ import annotations

from curation.mixture.select import MixtureError
from curation.rewrite.styles import StyleError
from curation.runner import RunError
from curation.stage import AccountingError
from schemas.config import ConfigError
from scorers.models import ModelLoadError
from warehouse.shards import ShardError

FINAL = (ConfigError, ModelLoadError, StyleError, MixtureError, RunError, AccountingError, ShardError, FileNotFoundError)


def retry_unless_final(task, task_run, state) -> bool:
    try:
        state.result()
    except FINAL:
        return False
    except Exception:  # noqa: BLE001 - anything else is worth another try
        return True
    return False
