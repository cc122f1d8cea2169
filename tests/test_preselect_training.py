"""PreSelect end to end with the real bundled models: losses through vLLM on CPU, labels, a
fastText scorer trained and carded, registered in the warehouse, then applied to a run."""

from __future__ import annotations

import json

import duckdb
import pytest
from conftest import make_config, write_shard
from typer.testing import CliRunner

from cli.main import app
from curation.runner import run_pipeline

runner = CliRunner()


@pytest.mark.slow
def test_train_through_the_flow_then_apply(tmp_path, wiki_docs, spanish_docs):
    texts = [d[:700] for d in wiki_docs[400:440]] + [d[:700] for d in spanish_docs[:20]] + ["  ", None]
    write_shard(tmp_path / "docs/0.parquet", {"doc_id": [f"d{i}" for i in range(len(texts))], "text": texts})
    config = tmp_path / "preselect.yaml"
    config.write_text(
        """
scorer_id: tiny
documents: {paths: [docs/*.parquet], limit: 100}
models:
  - {name: smollm2, path: smollm2-135m-instruct, benchmark_score: 0.30}
  - {name: gemma3, path: gemma3-270m, benchmark_score: 0.25}
engine: vllm
max_len: 512
warehouse: warehouse.duckdb
min_positives: 3
loss_normalization: rank
fasttext: {epoch: 20, lr: 0.5, bucket: 50000}
"""
    )
    result = runner.invoke(app, ["preselect", "train", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "out/preselect/scorers/tiny/scorer_card.json").read_text())
    assert card["n_pairs"] == 1 and "single pair" in (tmp_path / "out/preselect/scorers/tiny/scorer_card.md").read_text()
    assert card["labels"]["positive"] == card["labels"]["negative"] >= 3
    assert card["skipped_empty_documents"] == 2  # recorded, not silently dropped
    assert card["labels"]["documents"] == 60 and card["engine"] == "vllm" and card["loss_normalization"] == "rank"
    assert "loss_normalization: rank" in (tmp_path / "out/preselect/scorers/tiny/scorer_card.md").read_text()
    assert 0.0 <= card["holdout"]["roc_auc"] <= 1.0 and card["sha256"]["model"]
    labels = duckdb.sql(f"SELECT label, count(*) FROM '{tmp_path}/out/preselect/scorers/tiny/labels.parquet' GROUP BY ALL").fetchall()
    assert dict(labels)["positive"] == card["labels"]["positive"]

    # the losses are cached: a second pass computes nothing
    again = runner.invoke(app, ["preselect", "losses", str(config)], catch_exceptions=False)
    assert again.exit_code == 0 and again.output.count("│ 0 ") >= 2, again.output

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT scorer_id, positives FROM scorers").fetchall() == [("tiny", card["labels"]["positive"])]
    con.close()

    # apply it to a curated run
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[450:470]})
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")], warehouse={"path": str(tmp_path / "warehouse.duckdb")}, quality={"enabled": False})
    run_pipeline(cfg, run_id="later")
    applied = runner.invoke(
        app, ["preselect", "apply", str(tmp_path / "out/preselect/scorers/tiny"), "--run-id", "later", "--warehouse", str(tmp_path / "warehouse.duckdb"), "--top-share", "0.5"],
        catch_exceptions=False,
    )
    assert applied.exit_code == 0, applied.output
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    curated = con.execute("SELECT count(*) FROM documents WHERE run_id = 'later'").fetchall()[0][0]
    assert curated > 10
    assert con.execute("SELECT count(*), min(score) >= 0, max(score) <= 1 FROM scores WHERE scorer_id = 'tiny'").fetchall() == [(curated, True, True)]
    assert f"scored {curated} documents" in applied.output


def test_training_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("documents: {paths: [x]}\nmodels: [{name: a, path: b}]\nengine: tpu\n")
    result = runner.invoke(app, ["preselect", "train", str(bad)])
    assert result.exit_code == 2
    assert "models: List should have at least 2 items" in result.output and "engine" in result.output


def test_apply_needs_a_completed_run(tmp_path, wiki_docs):
    from scorers import fasttext_scorer

    scorer = tmp_path / "s"
    fasttext_scorer.train(wiki_docs[:20], ["buy now cheap"] * 20, None, 0.0, 0, out_path=scorer / "model.bin")
    (scorer / "scorer_card.json").write_text(json.dumps({"scorer_id": "s", "label": "__label__positive"}))
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:3]})
    run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], quality={"enabled": False}), run_id="r")
    result = runner.invoke(app, ["preselect", "apply", str(scorer), "--run-id", "nope", "--warehouse", str(tmp_path / "warehouse.duckdb")])
    assert result.exit_code == 1 and "not a completed run" in result.output
