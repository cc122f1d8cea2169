"""Continual curation: runs record the input files they read, and `input.skip_curated` leaves out
files whose content a completed run already curated, so batches arriving over time give the same
curated set as one run over all of them."""

from __future__ import annotations

import shutil

import pytest
from conftest import make_config, write_shard

from curation.runner import run_pipeline
from warehouse.warehouse import Warehouse


def _batches(tmp_path, wiki_docs):
    """Four shards in two batches; batch 2 repeats a batch-1 document exactly and another with
    one word changed (a near duplicate), and holds new documents."""
    near = wiki_docs[3].replace(" the ", " a ", 1)
    shards = {
        "0": wiki_docs[0:6],
        "1": wiki_docs[6:12],
        "2": wiki_docs[12:18] + [wiki_docs[0]],
        "3": wiki_docs[18:24] + [near],
    }
    staged = tmp_path / "staged"
    for name, docs in shards.items():
        write_shard(staged / f"{name}.parquet", {"text": docs})
    return staged


def _arrive(staged, inbox, names):
    inbox.mkdir(exist_ok=True)
    for name in names:
        shutil.copy2(staged / f"{name}.parquet", inbox / f"{name}.parquet")


def _curated(warehouse) -> set[tuple[str, str]]:
    _, rows = Warehouse(warehouse).query("SELECT input_file, text FROM documents")
    return {(file.rsplit("/", 1)[-1], text) for file, text in rows}


def _config(root, inbox):
    return make_config(root, [str(inbox / "*.parquet")], input={"skip_curated": True}, language={"enabled": False})


@pytest.mark.slow
def test_two_batches_curate_what_one_run_over_both_curates(tmp_path, wiki_docs):
    staged, inbox = _batches(tmp_path, wiki_docs), tmp_path / "inbox"
    continual = tmp_path / "continual"

    _arrive(staged, inbox, ["0", "1"])
    first = run_pipeline(_config(continual, inbox))
    _arrive(staged, inbox, ["2", "3"])
    second = run_pipeline(_config(continual, inbox))

    assert [s["path"].rsplit("/", 1)[-1] for s in second["skipped_inputs"]] == ["0.parquet", "1.parquet"]
    assert {s["curated_by"] for s in second["skipped_inputs"]} == {first["run_id"]}
    assert second["totals"]["docs_in"] == 14  # only the new files were read

    together = run_pipeline(make_config(tmp_path / "together", [str(inbox / "*.parquet")], language={"enabled": False}))
    assert _curated(continual / "warehouse.duckdb") == _curated(tmp_path / "together" / "warehouse.duckdb")
    # the repeated and the near-duplicate document were dropped in both ways of running
    assert together["totals"]["docs_in"] == 26 and together["totals"]["docs_out"] == 24
    assert ("2.parquet", wiki_docs[0]) not in _curated(continual / "warehouse.duckdb")
    assert not any(
        file == "3.parquet" and text.startswith(wiki_docs[3][:40]) for file, text in _curated(continual / "warehouse.duckdb")
    )

    recorded = Warehouse(continual / "warehouse.duckdb").query(
        "SELECT run_id, path, size, sha256 FROM input_files ORDER BY path"
    )[1]
    assert [(r[0], r[1].rsplit("/", 1)[-1]) for r in recorded] == [
        (first["run_id"], "0.parquet"),
        (first["run_id"], "1.parquet"),
        (second["run_id"], "2.parquet"),
        (second["run_id"], "3.parquet"),
    ]
    assert all(size == (inbox / path.rsplit("/", 1)[-1]).stat().st_size for _, path, size, _ in recorded)


@pytest.mark.slow
def test_nothing_new_records_no_run_and_a_changed_file_is_curated_again(tmp_path, wiki_docs):
    staged, inbox = _batches(tmp_path, wiki_docs), tmp_path / "inbox"
    root = tmp_path / "continual"
    _arrive(staged, inbox, ["0", "1"])
    first = run_pipeline(_config(root, inbox))

    idle = run_pipeline(_config(root, inbox))
    assert idle["nothing_new"] is True
    assert len(idle["skipped_inputs"]) == 2
    assert Warehouse(root / "warehouse.duckdb").query("SELECT count(*) FROM runs")[1] == [(1,)]

    # touched but unchanged: still nothing new (its content was curated)
    (inbox / "0.parquet").touch()
    assert run_pipeline(_config(root, inbox))["nothing_new"] is True

    # shard 1 changes: it is read again, and its old documents are exact duplicates of curated ones
    write_shard(inbox / "1.parquet", {"text": wiki_docs[6:12] + [wiki_docs[40]]})
    changed = run_pipeline(_config(root, inbox))
    assert changed["totals"]["docs_in"] == 7
    assert [s["path"].rsplit("/", 1)[-1] for s in changed["skipped_inputs"]] == ["0.parquet"]
    _, rows = Warehouse(root / "warehouse.duckdb").query(f"SELECT input_row FROM documents WHERE run_id = '{changed['run_id']}'")
    assert rows == [(6,)]  # the one new document; rows 0-5 repeat what the first run curated
    assert first["run_id"] != changed["run_id"]
