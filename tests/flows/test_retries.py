"""The retry policy every flow's tasks share, under a real Prefect engine: a transient failure
is tried again, a deterministic one (here a model that does not load) is not."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow, task
from prefect.testing.utilities import prefect_test_harness

from flows.retries import retry_unless_final
from scorers.models import ModelLoadError


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=60):
        yield


def _attempt(marker: Path) -> int:
    attempt = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempt))
    return attempt


@task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_unless_final)
def flaky(marker: str) -> int:
    attempt = _attempt(Path(marker))
    if attempt == 1:
        raise OSError("the shared filesystem dropped the connection")  # the fault a retry fixes
    return attempt


@task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_unless_final)
def broken(marker: str) -> int:
    _attempt(Path(marker))
    raise ModelLoadError("model /models/missing does not load: no config.json")


@flow
def both(flaky_marker: str, broken_marker: str) -> tuple:
    return flaky(flaky_marker), broken(broken_marker, return_state=True)


def test_transient_errors_are_retried_and_final_ones_are_not(tmp_path, harness):
    done, failed = both(str(tmp_path / "flaky"), str(tmp_path / "broken"))
    assert done == 2  # failed once, succeeded on the retry
    assert failed.is_failed()
    with pytest.raises(ModelLoadError, match="does not load"):
        failed.result()
    assert (tmp_path / "broken").read_text() == "1"  # never tried again
