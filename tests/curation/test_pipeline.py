"""The stages on real Parquet shards and a real warehouse, through the serial runner."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import curated_rows, make_config, rejected_rows, write_shard

from curation.runner import finalize_run, prepare_run, run_pipeline, run_steps
from curation.stage import AccountingError, StagePaths, process_shard
from schemas.documents import CURATED_DOCUMENT

NO_FILTERS = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}


def test_exact_duplicates_within_a_run_keep_the_first_copy(tmp_path, wiki_docs):
    a, b, c = wiki_docs[:3]
    write_shard(
        tmp_path / "in/0.parquet", {"id": ["a", "b", "a-copy"], "text": [a, b, "  " + a.upper().replace(" ", "   ") + "\n"]}
    )
    write_shard(tmp_path / "in/1.parquet", {"id": ["b-copy", "c"], "text": [b, c]})
    summary = run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **NO_FILTERS), run_id="r1")

    assert [r["doc_id"] for r in curated_rows(summary)] == ["a", "b", "c"]
    rejected = {r["doc_id"]: r for r in rejected_rows(summary)}
    assert rejected.keys() == {"a-copy", "b-copy"}
    assert rejected["a-copy"]["reason"] == "exact_duplicate" and rejected["a-copy"]["duplicate_of"] == "a"
    assert rejected["b-copy"]["duplicate_of"] == "b" and rejected["b-copy"]["stage"] == "exact_dedup"
    kept = {r["doc_id"]: r for r in curated_rows(summary)}
    assert kept["a"]["duplicate_cluster"] == "a" and kept["c"]["duplicate_cluster"] is None


def test_a_second_crawl_does_not_reenter_what_is_curated(tmp_path, wiki_docs):
    first = wiki_docs[:4]
    write_shard(tmp_path / "crawl1/0.parquet", {"text": first})
    run1 = run_pipeline(make_config(tmp_path, [str(tmp_path / "crawl1/*.parquet")], **NO_FILTERS), run_id="crawl1")
    assert run1["totals"]["docs_out"] == 4

    near_copy = first[1] + " It was updated in the second crawl."
    write_shard(tmp_path / "crawl2/0.parquet", {"text": [first[0], near_copy, wiki_docs[10]]})
    run2 = run_pipeline(make_config(tmp_path, [str(tmp_path / "crawl2/*.parquet")], **NO_FILTERS), run_id="crawl2")

    ids1 = [r["doc_id"] for r in curated_rows(run1)]
    rejected = rejected_rows(run2)
    assert [(r["reason"], r["duplicate_of"]) for r in rejected] == [
        ("exact_duplicate_of_curated", ids1[0]),
        ("near_duplicate_of_curated", ids1[1]),
    ]
    assert [r["text"] for r in curated_rows(run2)] == [wiki_docs[10]]


def test_near_duplicates_cluster_to_the_earliest_document(tmp_path, wiki_docs):
    base = wiki_docs[5]
    words = base.split(" ")
    edited = " ".join(words[:20] + ["remarkably"] + words[20:])  # one word inserted
    write_shard(tmp_path / "in/0.parquet", {"id": ["orig", "other"], "text": [base, wiki_docs[6]]})
    write_shard(
        tmp_path / "in/1.parquet", {"id": ["edited", "appended"], "text": [edited, base + " See also the list of examples."]}
    )
    summary = run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **NO_FILTERS), run_id="near")
    rejected = {r["doc_id"]: r for r in rejected_rows(summary)}
    assert {k: (v["reason"], v["duplicate_of"]) for k, v in rejected.items()} == {
        "edited": ("near_duplicate", "orig"),
        "appended": ("near_duplicate", "orig"),
    }
    kept = {r["doc_id"]: r for r in curated_rows(summary)}
    assert kept["orig"]["duplicate_cluster"] == "orig" and kept["other"]["duplicate_cluster"] is None


def test_filters_annotate_and_reject_with_reasons(tmp_path, wiki_docs, spanish_docs, assets):
    bad_words = [w for w in (assets / "ldnoobw/en.txt").read_text().splitlines() if w and not w.startswith("#") and " " not in w][
        :6
    ]
    toxic = wiki_docs[20] + "\n\n" + " ".join(f"You {w}." for w in bad_words)
    repetitive = "\n".join(["Buy cheap watches now at the best price online today."] * 40)
    with_pii = wiki_docs[21] + "\n\nContact jane.doe@university.edu or call +1 415 555 0137 from 8.8.8.8."
    texts = [
        wiki_docs[22],
        spanish_docs[0],
        toxic,
        repetitive,
        with_pii,
        "This is a short note about the weather in the city of London today.",
    ]
    write_shard(
        tmp_path / "in/0.parquet",
        {"id": [f"d{i}" for i in range(len(texts))], "text": texts, "url": ["https://example.org/x"] * len(texts)},
    )
    summary = run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], pii={"enabled": True}), run_id="filters")

    rejected = {r["doc_id"]: r for r in rejected_rows(summary)}
    assert rejected["d1"]["stage"] == "language" and rejected["d1"]["reason"] == "language_not_allowed"
    assert rejected["d1"]["language"] == "es" and rejected["d1"]["language_score"] > 0.9
    assert rejected["d2"]["stage"] == "toxicity" and rejected["d2"]["reason"] == "toxic_words"
    assert rejected["d3"]["stage"] == "quality" and rejected["d3"]["reason"].startswith("gopher_repetition:")
    assert rejected["d5"]["stage"] == "quality" and rejected["d5"]["reason"].startswith("gopher_")
    kept = {r["doc_id"]: r for r in curated_rows(summary)}
    assert set(kept) == {"d0", "d4"}
    assert kept["d0"]["language"] == "en" and kept["d0"]["toxicity_score"] == 0.0
    assert kept["d4"]["pii_redactions"] == 3
    assert (
        "jane.doe" not in kept["d4"]["text"] and "415 555 0137" not in kept["d4"]["text"] and "8.8.8.8" not in kept["d4"]["text"]
    )


def test_url_blocklist_applies_only_to_documents_with_urls(tmp_path, wiki_docs):
    write_shard(
        tmp_path / "in/0.parquet",
        {
            "id": ["porn", "plain", "nourl"],
            "text": wiki_docs[30:33],
            "url": ["https://www.pornhub.com/a", "https://en.wikipedia.org/wiki/A", None],
        },
    )
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")], language={"enabled": False}, toxicity={"enabled": False})
    summary = run_pipeline(cfg, run_id="urls")
    assert [(r["doc_id"], r["reason"]) for r in rejected_rows(summary)] == [("porn", "url_blocklist:domain")]


def test_gopher_alpha_rule_counts_words_not_punctuation(tmp_path):
    # prose dense in punctuation tokens: under datatrove's token count fewer than 80% of "words"
    # contain a letter, under the word-only rule all of them do
    sentence = "The cat (a tabby, aged 3) sat - quietly - on the mat; then, to the door and back: soundly, deeply, calmly."
    text = "\n".join([sentence.replace("cat", animal) for animal in ("cat", "dog", "fox", "owl", "cow", "elk", "yak", "hen")])
    write_shard(tmp_path / "in/0.parquet", {"text": [text]})
    common = {
        "language": {"enabled": False},
        "toxicity": {"enabled": False},
        "exact_dedup": {"enabled": False},
        "near_dedup": {"enabled": False},
    }
    only_gopher = {"c4": {"enabled": False}, "fineweb": {"enabled": False}, "gopher_repetition": {"enabled": False}}
    words = run_pipeline(
        make_config(
            tmp_path / "w",
            [str(tmp_path / "in/*.parquet")],
            quality={**only_gopher, "gopher_quality": {"alpha_words_rule": "words"}},
            **common,
        ),
        run_id="w",
    )
    tokens = run_pipeline(
        make_config(
            tmp_path / "t",
            [str(tmp_path / "in/*.parquet")],
            quality={**only_gopher, "gopher_quality": {"alpha_words_rule": "tokens"}},
            **common,
        ),
        run_id="t",
    )
    assert words["totals"]["docs_out"] == 1
    assert [r["reason"] for r in rejected_rows(tokens)] == ["gopher_quality:gopher_below_alpha_threshold"]


def test_toxicity_classifier_from_a_fasttext_model_trained_here(tmp_path, wiki_docs):
    import fasttext

    train = tmp_path / "tox.train"
    lines = [f"__label__ok {d.replace(chr(10), ' ')}" for d in wiki_docs[40:80]]
    lines += [f"__label__toxic you are a worthless idiot and a stupid moron number {i} get lost loser" for i in range(40)]
    train.write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(str(train), epoch=10, lr=0.5, wordNgrams=2, minCount=1, bucket=20000, verbose=0)
    model.save_model(str(tmp_path / "tox.bin"))

    insult = wiki_docs[81] + "\n\n" + " ".join(["You are a worthless idiot and a stupid moron, get lost loser."] * 30)
    write_shard(tmp_path / "in/0.parquet", {"id": ["fine", "insult"], "text": [wiki_docs[82], insult]})
    cfg = make_config(
        tmp_path,
        [str(tmp_path / "in/*.parquet")],
        quality={"enabled": False},
        toxicity={"classifier": {"path": str(tmp_path / "tox.bin"), "label": "__label__toxic", "threshold": 0.5}},
    )
    summary = run_pipeline(cfg, run_id="clf")
    rejected = rejected_rows(summary)
    assert [(r["doc_id"], r["reason"]) for r in rejected] == [("insult", "toxic_classifier")]
    assert rejected[0]["toxicity_classifier_score"] >= 0.5
    assert curated_rows(summary)[0]["toxicity_classifier_score"] < 0.5


def test_every_run_balances_and_stats_reach_the_warehouse(tmp_path, wiki_docs):
    write_shard(tmp_path / "in/0.parquet", {"text": wiki_docs[50:60] + [wiki_docs[50], "x"]})
    write_shard(tmp_path / "in/1.parquet", {"text": wiki_docs[60:65] + [None]})
    summary = run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")]), run_id="acc")
    totals = summary["totals"]
    assert totals["docs_in"] == 18 and totals["docs_in"] == totals["docs_out"] + totals["docs_rejected"]
    from warehouse.warehouse import Warehouse

    cols, rows = Warehouse(summary["warehouse"]).query(
        "SELECT stage, sum(docs_in), sum(docs_out), sum(docs_rejected) FROM stage_stats WHERE run_id = 'acc' GROUP BY stage"
    )
    by_stage = {r[0]: r[1:] for r in rows}
    assert by_stage["ingest"] == (18, 17, 1)
    _, count = Warehouse(summary["warehouse"]).query("SELECT count(*) FROM rejected WHERE run_id = 'acc'")
    assert count[0][0] == totals["docs_rejected"]


def _run_until_finalize(tmp_path, docs, tamper_after: str | None = None, tamper=None):
    """Every step of a run, with `tamper(plan)` called right after the step named `tamper_after`."""
    write_shard(tmp_path / "in/0.parquet", {"text": docs[:8] + [docs[0]]})
    write_shard(tmp_path / "in/1.parquet", {"text": docs[8:12] + ["x"]})
    plan = prepare_run(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **NO_FILTERS), run_id="acc")
    for step in run_steps(plan):
        for shard in plan.shards if step.per_shard else [None]:
            step.fn(plan, shard)
        if step.name == tamper_after:
            tamper(plan)
    return plan


def _drop_first_row(path):
    pq.write_table(pq.read_table(path).slice(1), path)


def _edit_stats(path, **changes):
    stats = json.loads(path.read_text())
    path.write_text(json.dumps({**stats, **{k: stats[k] + v for k, v in changes.items()}}))


def test_accounting_catches_a_stage_file_with_a_row_missing(tmp_path, wiki_docs):
    plan = _run_until_finalize(tmp_path, wiki_docs[100:112])
    _drop_first_row(plan.paths("near_dedup", plan.shards[1]).curated)
    with pytest.raises(AccountingError, match=r"near_dedup/shard-00001 .*curated/shard-00001.parquet holds 4 rows, stats say 5"):
        finalize_run(plan)


def test_accounting_catches_stats_that_lie(tmp_path, wiki_docs):
    plan = _run_until_finalize(tmp_path, wiki_docs[100:112])
    # balanced on its own (in = out + rejected), but not what the files hold nor what came in
    _edit_stats(plan.paths("exact_dedup", plan.shards[0]).stats, docs_in=1, docs_rejected=1)
    with pytest.raises(AccountingError) as err:
        finalize_run(plan)
    message = str(err.value)
    assert "exact_dedup/shard-00000 (" in message and "rejected/shard-00000.parquet holds 1 rows, stats say 2" in message
    assert "exact_dedup/shard-00000 (" in message and "in 10 != previous stage's out" in message


def test_accounting_catches_a_run_total_off_by_one(tmp_path, wiki_docs):
    def lose_a_row_consistently(plan):
        shard = plan.shards[0]
        _drop_first_row(plan.paths("ingest", shard).curated)
        _edit_stats(plan.paths("ingest", shard).stats, docs_in=-1, docs_out=-1)

    # every later stage sees one row fewer and balances; only the input files' own counts disagree
    plan = _run_until_finalize(tmp_path, wiki_docs[100:112], tamper_after="ingest", tamper=lose_a_row_consistently)
    with pytest.raises(AccountingError) as err:
        finalize_run(plan)
    assert "ingest/shard-00000" in str(err.value) and "declares 9 rows, ingest read 8" in str(err.value)
    assert "input files hold 14 rows, curated + rejected files hold 13" in str(err.value)


def test_a_stage_that_loses_a_document_stops_the_run(tmp_path):
    rows = pa.Table.from_pylist(
        [
            {"doc_id": "a", "text": "x", "content_hash": "h", "run_id": "r", "input_file": "f", "input_row": 0},
            {"doc_id": "b", "text": "y", "content_hash": "h2", "run_id": "r", "input_file": "f", "input_row": 1},
        ],
        schema=CURATED_DOCUMENT,
    )

    def lossy(batch):
        return batch.slice(0, 1), pa.Table.from_pylist([], schema=CURATED_DOCUMENT.append(pa.field("stage", pa.string())))

    paths = StagePaths.for_shard(tmp_path, "s")
    with pytest.raises(AccountingError, match="2 documents in, 1 kept \\+ 0 rejected"):
        process_shard(stage="lossy", shard="s", run_id="r", batches=[rows], process=lossy, paths=paths)
    # nothing half-written is left looking complete
    assert not paths.curated.exists() and not paths.stats.exists()


def test_metadata_keeps_unmapped_columns(tmp_path, wiki_docs):
    write_shard(
        tmp_path / "in/0.parquet",
        {"body": wiki_docs[70:72], "doc": ["x1", "x2"], "http_status": [200, 301], "metadata": ['{"lang_hint": "en"}', None]},
    )
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")], input={"text_column": "body", "id_column": "doc"}, **NO_FILTERS)
    summary = run_pipeline(cfg, run_id="meta")
    rows = curated_rows(summary)
    assert [r["doc_id"] for r in rows] == ["x1", "x2"]
    assert json.loads(rows[0]["metadata"]) == {"http_status": 200, "lang_hint": "en"}
    assert json.loads(rows[1]["metadata"]) == {"http_status": 301}
    assert rows[0]["source"] == "in"


def test_phone_redaction_needs_nine_digits_and_leaves_ips_to_the_ip_rule():
    from curation.pii import PHONE_REPLACEMENT, redact_phones

    text, count = redact_phones("call (415) 555-0137 or +44 20 7946 0958; in 1901 and 2000; 12 345 people; host 192.168.100.200")
    assert count == 2
    assert text == f"call {PHONE_REPLACEMENT} or {PHONE_REPLACEMENT}; in 1901 and 2000; 12 345 people; host 192.168.100.200"


def test_french_phone_numbers_are_redacted_in_french_documents(tmp_path):
    """French writes numbers as dotted pairs or +33 and nine digits; the generic pattern misses
    both (it refuses dots so that IPs and versions never match), the French one catches them in
    French documents and leaves the same dotted digits alone elsewhere."""
    from curation.pii import PHONE_REPLACEMENT, redact_phones

    french = "Appelez le 01.23.45.67.89 ou le +33 1 23 45 67 89 ; version 10.12.13.14.15, serveur 192.168.10.12."
    text, count = redact_phones(french, "fr")
    assert count == 2
    assert text == f"Appelez le {PHONE_REPLACEMENT} ou le {PHONE_REPLACEMENT} ; version 10.12.13.14.15, serveur 192.168.10.12."
    assert redact_phones(french, "en") == (french, 0)
    assert redact_phones(french) == (french, 0)
