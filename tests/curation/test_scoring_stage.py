"""Model-based scoring inside a pipeline run: PreSelect selection and classifier buckets."""

from __future__ import annotations

import json

import pytest
from conftest import NO_FILTERS, curated_rows, junk_text, make_config, rejected_rows, write_shard

from curation.runner import run_pipeline
from warehouse.warehouse import Warehouse


def test_preselect_keeps_the_top_share_and_rejects_the_rest_with_scores(tmp_path, wiki_docs, scorer_dir, classifier):
    docs = wiki_docs[300:330]
    write_shard(tmp_path / "in/0.parquet", {"id": [f"w{i}" for i in range(20)], "text": docs[:20]})
    write_shard(
        tmp_path / "in/1.parquet",
        {"id": [f"w{i}" for i in range(20, 30)] + ["j1", "j2"], "text": docs[20:] + [junk_text(1), junk_text(5)]},
    )
    scoring = {
        "enabled": True,
        "preselect": {"scorer_dir": str(scorer_dir), "rule": {"top_share": 0.5}},
        "classifiers": [{"path": str(classifier), "label": "__label__positive", "name": "science"}],
        "buckets": 5,
    }
    summary = run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], scoring=scoring, **NO_FILTERS), run_id="sc")

    totals = summary["totals"]
    assert totals["docs_in"] == 32 == totals["docs_out"] + totals["docs_rejected"]
    kept, rejected = curated_rows(summary), rejected_rows(summary)
    threshold = json.loads((tmp_path / "out/runs/sc/06_score/stats/shard-00000.json").read_text())
    threshold = json.loads(threshold["extra"])["threshold"]
    assert all(r["preselect_score"] >= threshold for r in kept)
    assert all(r["reason"] == "preselect_below_threshold" and r["preselect_score"] < threshold for r in rejected)
    assert {"j1", "j2"} <= {r["doc_id"] for r in rejected}  # junk scores lowest
    kept_chars = sum(r["n_chars"] for r in kept)
    all_chars = kept_chars + sum(r["n_chars"] for r in rejected)
    assert 0.5 <= kept_chars / all_chars < 0.5 + max(r["n_chars"] for r in kept) / all_chars
    assert all(0 <= r["quality_bucket"] < 5 for r in kept + rejected)

    cols, rows = Warehouse(summary["warehouse"]).query(
        "SELECT scorer_id, count(*), min(bucket), max(bucket) FROM scores GROUP BY ALL ORDER BY 1"
    )
    assert rows == [("preselect", 32, None, None), ("science", 32, 0, 4)]  # PreSelect is no quality classifier
    _, bucket_check = Warehouse(summary["warehouse"]).query(
        """SELECT count(*) FROM (SELECT doc_id, max(bucket) AS b FROM scores WHERE scorer_id != 'preselect' GROUP BY doc_id) s
           JOIN (SELECT doc_id, quality_bucket FROM documents UNION ALL SELECT doc_id, quality_bucket FROM rejected WHERE stage = 'score') d
           USING (doc_id) WHERE s.b = d.quality_bucket"""
    )
    assert bucket_check == [(32,)]  # the document's bucket is the max over its quality classifiers


def test_fixed_threshold_and_classifiers_alone(tmp_path, wiki_docs, scorer_dir, classifier):
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[330:340] + [junk_text(2)]})
    fixed = {"enabled": True, "preselect": {"scorer_dir": str(scorer_dir), "rule": {"threshold": 0.5}}}
    summary = run_pipeline(
        make_config(tmp_path / "a", [str(tmp_path / "in/*.parquet")], scoring=fixed, **NO_FILTERS), run_id="fixed"
    )
    assert [r["preselect_score"] < 0.5 for r in rejected_rows(summary)] == [True] * len(rejected_rows(summary))
    assert all(r["preselect_score"] >= 0.5 for r in curated_rows(summary))

    only = {"enabled": True, "classifiers": [{"path": str(classifier), "label": "__label__positive"}]}
    summary = run_pipeline(
        make_config(tmp_path / "b", [str(tmp_path / "in/*.parquet")], scoring=only, **NO_FILTERS), run_id="byo"
    )
    assert summary["totals"]["docs_rejected"] == 0
    assert all(r["preselect_score"] is None and r["quality_bucket"] is not None for r in curated_rows(summary))


def test_scoring_config_errors(tmp_path):
    from schemas.config import ConfigError

    with pytest.raises(ConfigError, match="names neither a preselect scorer nor classifiers"):
        make_config(tmp_path, ["x"], scoring={"enabled": True})
    with pytest.raises(ConfigError, match="either top_share or threshold"):
        make_config(
            tmp_path,
            ["x"],
            scoring={"enabled": True, "preselect": {"scorer_dir": "d", "rule": {"top_share": 0.1, "threshold": 0.2}}},
        )


def test_missing_scorer_folder_fails_before_output(tmp_path, wiki_docs):
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[:2]})
    cfg = make_config(
        tmp_path,
        [str(tmp_path / "in/*.parquet")],
        scoring={"enabled": True, "preselect": {"scorer_dir": str(tmp_path / "none")}},
        **NO_FILTERS,
    )
    with pytest.raises(FileNotFoundError, match="not a scorer folder"):
        run_pipeline(cfg, run_id="noscorer")
