"""`curate mix init | mix SPEC`, `curate manifest verify` and `curate export` as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import make_config, write_shard
from typer.testing import CliRunner

from cli.main import app
from curation.runner import run_pipeline

runner = CliRunner()
NO_FILTERS = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def spec_path(tmp_path, wiki_docs) -> Path:
    """The starter spec, edited as a user would: one curated run and a replay file, no synthetic source."""
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:30]})
    run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **NO_FILTERS), run_id="crawl1")
    (tmp_path / "replay").mkdir()
    with open(tmp_path / "replay/sample.jsonl", "w") as f:
        for text in wiki_docs[200:230]:
            f.write(json.dumps({"text": text}) + "\n")
    path = tmp_path / "mixture.yaml"
    assert _invoke("mix", "init", path).exit_code == 0
    spec = yaml.safe_load(path.read_text())
    assert [s["kind"] for s in spec["sources"]] == ["documents", "synthetic", "replay"]
    assert spec["sources"][2]["weight"] == 0.05 and spec["sources"][0]["max_epochs"] == 4
    spec.update(warehouse="warehouse.duckdb", output_root="out", target_tokens=20_000, shard_tokens=5_000)
    spec["sources"] = [
        {**spec["sources"][0], "weight": 0.9},
        {**spec["sources"][2], "weight": 0.1, "paths": ["replay/sample.jsonl"]},
    ]
    path.write_text(yaml.safe_dump(spec))
    return path


def test_mix_verify_and_export_from_the_command_line(spec_path):
    result = _invoke("mix", spec_path, "--local", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary["sources"]) == {"curated", "replay"}
    manifest = Path(summary["manifest"])
    assert manifest == spec_path.parent / "out/mixtures/my-mixture/manifest.json"

    verified = _invoke("manifest", "verify", manifest)
    assert verified.exit_code == 0 and "ok" in verified.output

    out = spec_path.parent / "exports"
    exported = _invoke("export", manifest, "--format", "hf", "--out", out)
    assert exported.exit_code == 0, exported.output
    again = _invoke("export", manifest, "--format", "hf", "--out", out)
    assert again.exit_code == 1 and str(out) in again.output and "--force" in again.output
    assert _invoke("export", manifest, "--format", "hf", "--out", out, "--force").exit_code == 0
    assert _invoke("export", manifest, "--format", "xml", "--out", out).exit_code == 1

    shard = sorted(manifest.parent.glob("shard-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    broken = _invoke("manifest", "verify", manifest)
    assert broken.exit_code == 1 and shard.name in broken.output


def test_a_bad_spec_exits_2_naming_the_key(spec_path):
    spec = yaml.safe_load(spec_path.read_text())
    spec["sources"][0]["weight"] = 0.5
    spec_path.write_text(yaml.safe_dump(spec))
    result = _invoke("mix", spec_path, "--local")
    assert result.exit_code == 2 and "sum to 0.6" in result.output and "normalize" in result.output


def test_mix_init_presets(tmp_path):
    assert _invoke("mix", "init", tmp_path / "strong.yaml", "--preset", "strong").exit_code == 0
    weights = {s["name"]: s["weight"] for s in yaml.safe_load((tmp_path / "strong.yaml").read_text())["sources"]}
    assert weights == {"curated": 0.375, "synthetic": 0.375, "replay": 0.25}
    assert _invoke("mix", "init", tmp_path / "x.yaml", "--preset", "medium").exit_code == 1
