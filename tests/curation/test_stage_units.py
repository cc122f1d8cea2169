"""Each stage on a tiny in-memory table, through the stage contract alone (no runner): what it
keeps, what it rejects and why, and what it writes on the rows it keeps. A toy stage added to the
registry in one line runs end to end with the real runner."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import make_config, write_shard

from curation.dedup import ExactDedup, NearDedup
from curation.ingest import Ingest
from curation.language import LanguageId
from curation.pii import PHONE_REPLACEMENT, PiiRedaction
from curation.quality import Quality
from curation.registry import STAGES
from curation.runner import run_pipeline
from curation.scoring import Score
from curation.stage import DocumentStage, PlanContext, Rejection, ShardContext, StageStats
from curation.toxicity import Toxicity
from schemas.documents import CURATED_DOCUMENT
from schemas.scoring import FastTextParams
from scorers import fasttext_scorer
from scorers.normalize import content_hash
from warehouse.warehouse import Warehouse


def documents(texts: list[str], **columns: list) -> pa.Table:
    rows = [
        {
            "doc_id": f"d{i}",
            "text": text,
            "content_hash": content_hash(text),
            "run_id": "unit",
            "input_file": "mem.parquet",
            "input_row": i,
            "n_chars": len(text),
            "n_words": len(text.split()),
            "n_lines": text.count("\n") + 1,
            **{name: values[i] for name, values in columns.items()},
        }
        for i, text in enumerate(texts)
    ]
    return pa.Table.from_pylist(rows, schema=CURATED_DOCUMENT)


def ready(stage_class, tmp_path, **sections):
    stage = stage_class(make_config(tmp_path, ["unused"], **sections))
    stage.setup()
    return stage


def by_id(table: pa.Table) -> dict[str, dict]:
    return {row["doc_id"]: row for row in table.to_pylist()}


def test_language_keeps_allowed_languages_and_records_them(tmp_path, wiki_docs, spanish_docs):
    stage = ready(LanguageId, tmp_path, language={"allowed": ["en"]})
    kept, rejected = stage.process(documents([wiki_docs[0], spanish_docs[0]]))
    assert [r["language"] for r in kept.to_pylist()] == ["en"]
    assert kept.column("language_score")[0].as_py() > 0.5
    assert rejected.to_pylist()[0]["reason"] == "language_not_allowed"
    assert rejected.to_pylist()[0]["detail"].startswith("es")


def test_quality_rejects_with_the_filter_and_rule_that_fired(tmp_path, wiki_docs):
    stage = ready(Quality, tmp_path)
    spam = "buy now " * 200
    kept, rejected = stage.process(documents([wiki_docs[1], spam]))
    assert kept.column("doc_id").to_pylist() == ["d0"]
    assert rejected.column("reason").to_pylist()[0].startswith("gopher_repetition:")
    assert rejected.column("stage").to_pylist() == ["quality"]


def test_toxicity_scores_every_kept_row_and_drops_dense_profanity(tmp_path, wiki_docs):
    stage = ready(Toxicity, tmp_path, toxicity={"min_matches": 2, "max_score": 0.01})
    bad_words = [w for w in (stage.lists / "en.txt").read_text().splitlines() if w.isalpha()][:6]
    toxic = " ".join(bad_words + ["and"] * 10)
    kept, rejected = stage.process(documents([wiki_docs[2], toxic], language=["en", "en"]))
    assert kept.column("toxicity_score").to_pylist() == [0.0]
    row = rejected.to_pylist()[0]
    assert row["reason"] == "toxic_words" and row["detail"].startswith(f"{len(bad_words)} flagged of 16 words")


def test_pii_redacts_and_counts_without_rejecting(tmp_path):
    stage = ready(PiiRedaction, tmp_path)
    kept, rejected = stage.process(documents(["mail jane.doe@example.com or call +44 20 7946 0958 today", "nothing here"]))
    rows = by_id(kept)
    assert rejected.num_rows == 0
    assert "jane.doe@example.com" not in rows["d0"]["text"] and PHONE_REPLACEMENT in rows["d0"]["text"]
    assert rows["d0"]["pii_redactions"] == 2 and rows["d1"]["pii_redactions"] == 0


def test_ingest_reads_its_input_file_and_quarantines_bad_rows(tmp_path):
    path = write_shard(tmp_path / "in.parquet", {"id": ["a", "b", "c"], "text": ["one text", None, "  "]})
    stage = ready(Ingest, tmp_path)
    stage.begin_shard(ShardContext("unit", "shard-0", str(path), tmp_path / "00_ingest"))
    results = [stage.process(batch) for batch in stage.batches(None)]
    kept = pa.concat_tables([k for k, _ in results])
    rejected = pa.concat_tables([r for _, r in results])
    assert kept.column("doc_id").to_pylist() == ["a"]
    assert dict(zip(rejected.column("doc_id").to_pylist(), rejected.column("reason").to_pylist())) == {
        "b": "null_text",
        "c": "empty_text",
    }
    assert stage.shard_extra() == {"input_rows": 3}


def _plan(stage, tmp_path, previous: list) -> None:
    ctx = PlanContext(
        "unit", tmp_path / "stage", [tmp_path / "stage/map/shard-0.parquet"], previous, Warehouse(tmp_path / "w.duckdb")
    )
    stage.plan(ctx)
    stage.begin_shard(ShardContext("unit", "shard-0", "mem.parquet", tmp_path / "stage"))


def test_exact_dedup_keeps_the_first_copy_and_names_it(tmp_path):
    table = documents(["The same text.", "Another text.", "the  SAME text."])
    pq.write_table(table, tmp_path / "prev.parquet")
    stage = ready(ExactDedup, tmp_path, exact_dedup={"against_warehouse": False})
    _plan(stage, tmp_path, [tmp_path / "prev.parquet"])
    kept, rejected = stage.process(table)
    assert kept.column("doc_id").to_pylist() == ["d0", "d1"]
    row = rejected.to_pylist()[0]
    assert (row["doc_id"], row["reason"], row["duplicate_of"]) == ("d2", "exact_duplicate", "d0")
    assert by_id(kept)["d0"]["duplicate_cluster"] == "d0"


def test_near_dedup_maps_bands_then_drops_the_later_near_copy(tmp_path, wiki_docs):
    original = wiki_docs[3]
    words = original.split()
    near_copy = " ".join(words[:-1] + ["changed"])
    table = documents([original, wiki_docs[4], near_copy])
    stage = ready(NearDedup, tmp_path, near_dedup={"against_warehouse": False})
    (tmp_path / "stage/map").mkdir(parents=True)
    pq.write_table(stage.map(table), tmp_path / "stage/map/shard-0.parquet")
    _plan(stage, tmp_path, [])
    kept, rejected = stage.process(table)
    assert kept.column("doc_id").to_pylist() == ["d0", "d1"]
    assert rejected.to_pylist()[0]["reason"] == "near_duplicate" and rejected.to_pylist()[0]["duplicate_of"] == "d0"


def test_score_cuts_at_the_preselect_threshold_and_preselect_alone_gives_no_quality_bucket(tmp_path, wiki_docs):
    scorer = tmp_path / "scorer"
    junk = [" ".join(["click here buy now free offer"] * 10) + f" {i}" for i in range(60)]
    fasttext_scorer.train(
        wiki_docs[100:160], junk, FastTextParams(epoch=20, lr=0.5, bucket=50_000), 0.1, 0, out_path=scorer / "model.bin"
    )
    (scorer / "scorer_card.json").write_text(json.dumps({"scorer_id": "unit", "label": fasttext_scorer.POSITIVE}))
    rule = {"threshold": 0.5}
    stage = ready(Score, tmp_path, scoring={"enabled": True, "preselect": {"scorer_dir": str(scorer), "rule": rule}})
    table = documents([wiki_docs[200], junk[0] + " extra", wiki_docs[201]])
    (tmp_path / "stage/map").mkdir(parents=True)
    pq.write_table(stage.map(table), tmp_path / "stage/map/shard-0.parquet")
    plan = stage.plan(
        PlanContext("unit", tmp_path / "stage", [tmp_path / "stage/map/shard-0.parquet"], [], Warehouse(tmp_path / "w.duckdb"))
    )
    (tmp_path / "stage/decisions.json").write_text(json.dumps(plan))
    stage.begin_shard(ShardContext("unit", "shard-0", "mem.parquet", tmp_path / "stage"))
    kept, rejected = stage.process(table)
    assert kept.column("doc_id").to_pylist() == ["d0", "d2"]
    assert rejected.to_pylist()[0]["reason"] == "preselect_below_threshold"
    assert all(b is None for b in kept.column("quality_bucket").to_pylist())  # PreSelect is no quality classifier
    assert stage.shard_extra()["threshold"] == 0.5


def test_stats_add_up_per_field():
    a = StageStats(docs_in=3, docs_out=2, docs_rejected=1, bytes_in=30, seconds=1.0, reasons={"x": 1})
    b = StageStats(docs_in=5, docs_out=5, bytes_in=50, seconds=0.5)
    total = sum([a, b], StageStats())
    assert (total.docs_in, total.docs_out, total.docs_rejected, total.bytes_in, total.seconds) == (8, 7, 1, 80, 1.5)
    assert total.reasons == {"x": 1} and total.balances()
    assert StageStats.from_record(a.record("r", "s", "shard")) == StageStats(**{**a.__dict__, "reasons": a.reasons})


# ---------------------------------------------------------------- a stage added in one file + one line


class NoShouting(DocumentStage):
    """Drops documents written in capitals and marks the rest: the whole of a new stage."""

    name = "no_shouting"

    def check(self, row: dict) -> Rejection | None:
        letters = [c for c in row["text"] if c.isalpha()]
        if letters and sum(c.isupper() for c in letters) / len(letters) > 0.5:
            return Rejection("shouting", f"{sum(c.isupper() for c in letters)} of {len(letters)} letters are capitals")
        return None


@pytest.fixture
def shouting_input(tmp_path):
    texts = ["A calm sentence about rivers and hills.", "THIS IS ALL CAPITALS AND LOUD.", "Another calm line of prose."]
    return write_shard(tmp_path / "in/0.parquet", {"id": ["calm", "loud", "calm2"], "text": texts})


def test_a_toy_stage_needs_one_class_and_one_registry_line(tmp_path, shouting_input):
    registry = (*STAGES, NoShouting)  # the one line
    cfg = make_config(
        tmp_path, [str(shouting_input)], quality={"enabled": False}, language={"enabled": False}, toxicity={"enabled": False}
    )
    summary = run_pipeline(cfg, run_id="toy", registry=registry)
    assert [row["stage"] for row in summary["funnel"]][-1] == "no_shouting"
    assert summary["funnel"][-1]["reasons"] == {"shouting": 1}
    _, rows = Warehouse(tmp_path / "warehouse.duckdb").query("SELECT doc_id, stage, reason FROM rejected WHERE run_id = 'toy'")
    assert rows == [("loud", "no_shouting", "shouting")]
    _, kept = Warehouse(tmp_path / "warehouse.duckdb").query("SELECT doc_id FROM documents WHERE run_id = 'toy' ORDER BY doc_id")
    assert kept == [("calm",), ("calm2",)]
