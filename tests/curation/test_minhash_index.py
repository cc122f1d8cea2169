"""The warehouse's MinHash index records how its keys were made: a later run that signs another way
(other parameters, or an index written before the signature was recorded) re-signs the earlier
run from its documents instead of comparing keys that can never match."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from conftest import make_config, rejected_rows, write_shard

from curation.runner import run_pipeline
from schemas.config import NearDedupConfig
from scorers.minhash import signature_id
from warehouse.warehouse import Warehouse

OTHER = {"num_buckets": 20, "hashes_per_bucket": 4}


def _near(doc: str) -> str:
    return doc.replace(" the ", " a ", 1)


def _run(root, name, docs, **near_dedup):
    write_shard(root / "in" / f"{name}.parquet", {"text": docs})
    config = make_config(root, [str(root / "in" / f"{name}.parquet")], language={"enabled": False}, near_dedup=near_dedup)
    return run_pipeline(config)


def _index_signatures(warehouse) -> set[tuple[str, str | None]]:
    return set(Warehouse(warehouse).query("SELECT DISTINCT run_id, signature FROM minhash_index")[1])


@pytest.mark.slow
def test_runs_signed_another_way_are_re_signed_not_compared(tmp_path, wiki_docs):
    first = _run(tmp_path, "a", wiki_docs[0:8])
    warehouse = first["warehouse"]
    default, other = signature_id(NearDedupConfig()), signature_id(NearDedupConfig(**OTHER))
    assert _index_signatures(warehouse) == {(first["run_id"], default)}
    doc_ids = dict(Warehouse(warehouse).query("SELECT input_row, doc_id FROM documents")[1])  # by row of shard a

    # other LSH parameters: the first run is re-signed, and the near copy is found against it
    second = _run(tmp_path, "b", wiki_docs[8:12] + [_near(wiki_docs[2])], **OTHER)
    dropped = rejected_rows(second)
    assert [(r["reason"], r["duplicate_of"]) for r in dropped] == [("near_duplicate_of_curated", doc_ids[2])]
    assert _index_signatures(warehouse) == {(first["run_id"], default), (first["run_id"], other), (second["run_id"], other)}

    # an index from before the signature was recorded: the column dropped from the first run's
    # own file; a default run re-signs that run again and finds its near copy
    original = next(
        p
        for p in Warehouse(warehouse).completed_files("minhash_index")
        if p.endswith("/minhash_index.parquet") and first["run_id"] in p
    )
    pq.write_table(pq.read_table(original).drop_columns(["signature"]), original)
    third = _run(tmp_path, "c", wiki_docs[12:14] + [_near(wiki_docs[4])])
    assert [(r["reason"], r["duplicate_of"]) for r in rejected_rows(third)] == [("near_duplicate_of_curated", doc_ids[4])]
    assert (first["run_id"], None) in _index_signatures(warehouse)
    assert (first["run_id"], default) in _index_signatures(warehouse)

    # nothing re-signed twice: a fourth default run adds no index file to earlier runs
    before = Warehouse(warehouse).completed_files("minhash_index")
    fourth = _run(tmp_path, "d", wiki_docs[14:16])
    after = Warehouse(warehouse).completed_files("minhash_index")
    assert sorted(set(after) - set(before)) == [p for p in after if fourth["run_id"] in p]
