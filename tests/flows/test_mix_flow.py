"""The mixture as a Prefect flow: the same bytes as the plain function, and a spec that does not
load fails the flow run before any task starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import artifacts_of, make_config, write_shard
from prefect.testing.utilities import prefect_test_harness

from curation.mixture.mix import mix
from curation.runner import run_pipeline
from flows.mix import mix_flow
from schemas.config import ConfigError, load_mixture_spec

NO_FILTERS = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=60):
        yield


def _spec(root: Path, mixture_id: str) -> Path:
    path = root / f"{mixture_id}.yaml"
    spec = {
        "mixture_id": mixture_id,
        "warehouse": "warehouse.duckdb",
        "output_root": "out",
        "target_tokens": 8_000,
        "decontamination": {"enabled": False},
        "sources": [{"name": "curated", "kind": "documents", "weight": 1.0}],
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def test_mix_flow_writes_what_the_function_writes(tmp_path, wiki_docs, harness):
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:20]})
    run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **NO_FILTERS), run_id="crawl1")
    spec = _spec(tmp_path, "m")
    state = mix_flow(str(spec), return_state=True)
    flowed = state.result()
    shards = lambda summary: [p.read_bytes() for p in sorted(Path(summary["manifest"]).parent.glob("shard-*.parquet"))]  # noqa: E731
    by_flow = shards(flowed)
    direct = mix(load_mixture_spec(spec), force=True)
    assert flowed["tokens"] == direct["tokens"] > 0 and flowed["sources"] == direct["sources"]
    assert shards(direct) == by_flow

    # the run's artifacts: the token shares as a table and Markdown, and the report's link
    from flows.artifacts import shares_table

    artifacts = artifacts_of(state)
    assert set(artifacts) == {"mixture-shares", "mixture-summary", "report"}
    assert json.loads(artifacts["mixture-shares"].data) == shares_table(flowed)
    assert shares_table(flowed)[0]["source"] == "curated" and shares_table(flowed)[0]["realised share"] == 1.0
    assert "| curated | 100.0% | 100.0% |" in artifacts["mixture-summary"].data
    assert Path(flowed["report"]).is_file() and Path(flowed["report"]).as_uri() in artifacts["report"].data


def test_a_spec_that_does_not_load_fails_the_flow_before_any_task(tmp_path, harness):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"mixture_id": "x", "target_tokens": 10, "sources": [{"name": "a", "kind": "documents", "weight": 0.3}]})
    )
    state = mix_flow(str(bad), return_state=True)
    assert state.is_failed()
    with pytest.raises(ConfigError, match="sum to 0.3"):
        state.result()
    from prefect import get_client

    async def task_runs():
        async with get_client() as client:
            return await client.read_task_runs()

    import asyncio

    runs = asyncio.run(task_runs())
    assert not [r for r in runs if r.flow_run_id == state.state_details.flow_run_id]


def test_a_project_with_a_bad_step_config_fails_the_pipeline_before_any_step(tmp_path, wiki_docs, harness):
    """The end-to-end flow loads every step's config first: a mixture spec that does not load
    fails the flow run with the error naming its file, and nothing was curated."""
    from flows.pipeline import pipeline_flow

    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:3]})
    (tmp_path / "curate.yaml").write_text(yaml.safe_dump({"input": {"paths": ["in/*.parquet"]}}))
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump({"mixture_id": "m", "target_tokens": 10, "sources": []}))
    (tmp_path / "project.yaml").write_text(yaml.safe_dump({"curate": "curate.yaml", "mix": "mix.yaml"}))
    state = pipeline_flow(str(tmp_path / "project.yaml"), return_state=True)
    assert state.is_failed()
    with pytest.raises(ConfigError, match="mix.yaml"):
        state.result()
    assert not (tmp_path / "warehouse").exists() and not (tmp_path / "out").exists()
