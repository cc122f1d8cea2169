"""PreSelect end to end with the real bundled models: losses through vLLM on CPU, labels, a
fastText scorer trained and carded, registered in the warehouse, then applied to a run."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest
from conftest import make_config, write_shard
from test_preselect_core import holdout_metrics_by_counting
from typer.testing import CliRunner

from cli.main import app
from curation.runner import run_pipeline
from scorers import fasttext_scorer as fts

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
    # the held-out numbers are those of the held-out predictions, and the CLI prints the card's
    scorer_dir = tmp_path / "out/preselect/scorers/tiny"
    accuracy, auc = holdout_metrics_by_counting(fts.load(scorer_dir / "model.bin"), scorer_dir / "model.holdout.txt")
    assert (card["holdout"]["accuracy"], card["holdout"]["roc_auc"]) == (pytest.approx(accuracy), pytest.approx(auc))
    assert (
        f"- roc_auc: {card['holdout']['roc_auc']:.4f}" in result.output
        and f"- accuracy: {card['holdout']['accuracy']:.4f}" in result.output
    )
    assert f"- positive: {card['labels']['positive']}" in result.output and card["sha256"]["model"]
    labels = duckdb.sql(
        f"SELECT label, count(*) FROM '{tmp_path}/out/preselect/scorers/tiny/labels.parquet' GROUP BY ALL"
    ).fetchall()
    assert dict(labels)["positive"] == card["labels"]["positive"]

    # the losses are cached: a second pass computes nothing and shows the cached mean of each model
    again = runner.invoke(app, ["preselect", "losses", str(config)], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    cached = duckdb.sql(
        f"SELECT model, count(*), avg(bits_per_char) FROM '{tmp_path}/out/preselect/loss-cache/*/part-*.parquet' GROUP BY ALL ORDER BY model"
    ).fetchall()
    rows = sorted([c.strip() for c in line.split("│")[1:-1]] for line in again.output.splitlines() if "@" in line and "│" in line)
    assert rows == [[model, "0", "60", f"{mean:.4f}"] for model, _, mean in cached], again.output
    assert [(model.split("@")[0], n) for model, n, _ in cached] == [("gemma3", 60), ("smollm2", 60)]

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT scorer_id, positives FROM scorers").fetchall() == [("tiny", card["labels"]["positive"])]
    con.close()

    # apply it to a curated run
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[450:470]})
    cfg = make_config(
        tmp_path,
        [str(tmp_path / "in/*.parquet")],
        warehouse={"path": str(tmp_path / "warehouse.duckdb")},
        quality={"enabled": False},
    )
    run_pipeline(cfg, run_id="later")
    applied = runner.invoke(
        app,
        [
            "preselect",
            "apply",
            str(tmp_path / "out/preselect/scorers/tiny"),
            "--run-id",
            "later",
            "--warehouse",
            str(tmp_path / "warehouse.duckdb"),
            "--top-share",
            "0.5",
        ],
        catch_exceptions=False,
    )
    assert applied.exit_code == 0, applied.output
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    curated = con.execute("SELECT count(*) FROM documents WHERE run_id = 'later'").fetchall()[0][0]
    assert curated > 10
    scored = con.execute(
        "SELECT d.text, s.score FROM scores s JOIN documents d USING (doc_id, run_id) WHERE s.scorer_id = 'tiny'"
    ).fetchall()
    assert len(scored) == curated
    # each score is the trained model's probability of the positive label for that document
    assert [s for _, s in scored] == pytest.approx(fts.score(fts.load(scorer_dir / "model.bin"), [t for t, _ in scored]))
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
    result = runner.invoke(
        app, ["preselect", "apply", str(scorer), "--run-id", "nope", "--warehouse", str(tmp_path / "warehouse.duckdb")]
    )
    assert result.exit_code == 1 and "not a completed run" in result.output


def losses_of(model: str, bits_per_char: dict[str, float], sample) -> pa.Table:
    from schemas.scoring import LOSSES

    rows = [
        {
            "model": model,
            "doc_hash": d.doc_hash,
            "doc_id": d.doc_id,
            "n_chars": len(d.text),
            "n_tokens": len(d.text),
            "total_nats": bits_per_char[d.doc_id] * len(d.text) * 0.6931471805599453,
            "bits_per_char": bits_per_char[d.doc_id],
        }
        for d in sample.documents
    ]
    return pa.Table.from_pylist(rows, schema=LOSSES)


def test_documents_that_are_not_utf8_are_skipped_counted_and_named(tmp_path, wiki_docs, caplog):
    from schemas.scoring import PreSelectTrainingConfig
    from scorers.preselect import ModelLosses, train_scorer, training_documents

    texts = [d.encode() for d in wiki_docs[:10]] + [b"\xff bad", b"  ", "caf\u00e9 ok".encode(), b"cut \xc3"]
    ids = [f"a{i}" for i in range(len(texts))]
    # a string column holding bytes that are not UTF-8, as a careless writer produces
    write_shard(tmp_path / "docs/0.parquet", {"doc_id": ids, "text": pa.array(texts, pa.binary()).view(pa.string())})
    write_shard(tmp_path / "docs/1.parquet", {"doc_id": ["b0", "b1"], "text": wiki_docs[10:12]})
    cfg = PreSelectTrainingConfig(
        documents={"paths": [str(tmp_path / "docs/*.parquet")], "limit": 100},
        models=[{"name": "big", "path": "/models/big"}, {"name": "small", "path": "/models/small"}],
        output_dir=str(tmp_path / "scorers"),
        min_positives=3,
        holdout_fraction=0.2,
        fasttext={"epoch": 20, "lr": 0.5, "bucket": 50000},
    )
    with caplog.at_level("WARNING"):
        sample = training_documents(cfg)
    assert sorted(d.doc_id for d in sample.documents) == sorted([f"a{i}" for i in range(10)] + ["a12", "b0", "b1"])
    assert (sample.skipped_invalid_utf8, sample.skipped_empty) == (2, 1)
    [message] = [r.getMessage() for r in caplog.records]
    assert f"{tmp_path}/docs/0.parquet: 2 document(s) skipped" in message and "not valid UTF-8 (rows 10, 13)" in message

    # the training goes on with the readable documents and its card counts the skipped ones
    big = {d.doc_id: 1.0 for d in sample.documents}
    small = {d.doc_id: 2.0 if i % 2 else 0.5 for i, d in enumerate(sample.documents)}
    losses = [
        ModelLosses("big@x", losses_of("big@x", big, sample), 0),
        ModelLosses("small@y", losses_of("small@y", small, sample), 0),
    ]
    out = train_scorer(cfg, losses, {"big": 2.0, "small": 1.0}, sample)
    card = json.loads((out / "scorer_card.json").read_text())
    assert card["skipped_invalid_utf8_documents"] == 2 and card["skipped_empty_documents"] == 1
    assert card["labels"]["documents"] == 13
