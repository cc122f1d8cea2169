"""The near-dedup plan on planted band keys: it decides exactly the planted clusters, in the run
and against an earlier run's index, whatever the input's size (benchmarks/ section 13 runs the
same at 1M and 4M documents)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.near_dedup import synthetic_bands
from curation.dedup import plan_near_dedup
from schemas.documents import MINHASH_BANDS


def test_plan_decides_exactly_the_planted_clusters(tmp_path):
    made = synthetic_bands(tmp_path / "bands", 30_000, 14, seed=3)
    summary = plan_near_dedup([Path(f) for f in made["files"]], [], tmp_path / "d.parquet")
    decisions = pq.read_table(tmp_path / "d.parquet")
    dropped = decisions.filter(pc.field("reason") == "near_duplicate")
    survivors = decisions.filter(pc.field("reason").is_null())
    assert summary["clusters"] == made["originals_with_copies"] == survivors.num_rows
    assert dropped.num_rows == made["copies"]
    # every dropped copy names its cluster's survivor, which comes before it (ids are d<row>)
    assert set(dropped.column("duplicate_of").to_pylist()) == set(survivors.column("duplicate_cluster").to_pylist())
    assert all(
        int(of[1:]) < row for of, row in zip(dropped.column("duplicate_of").to_pylist(), dropped.column("input_row").to_pylist())
    )


def test_clusters_touching_an_earlier_index_lose_every_member(tmp_path):
    made = synthetic_bands(tmp_path / "bands", 20_000, 14, seed=4)
    first = pq.read_table(made["files"][0])
    # an earlier run curated the first 50 documents: its index holds their keys under other ids
    earlier = first.filter(pc.field("input_row") < 50)
    index = pa.table(
        {
            "doc_id": pc.binary_join_element_wise("old-", earlier.column("doc_id"), ""),
            "run_id": pa.array(["earlier"] * earlier.num_rows),
            "band": earlier.column("band"),
            "band_key": earlier.column("band_key"),
            "signature": pa.array(["same"] * earlier.num_rows),
        }
    ).cast(MINHASH_BANDS)
    pq.write_table(index, tmp_path / "index.parquet")
    plan_near_dedup([Path(f) for f in made["files"]], [str(tmp_path / "index.parquet")], tmp_path / "d.parquet")
    decisions = pq.read_table(tmp_path / "d.parquet")
    of_curated = decisions.filter(pc.field("reason") == "near_duplicate_of_curated")
    firsts = {f"old-{doc}" for doc in earlier.column("doc_id").to_pylist()}
    # each of the 50 and every copy of them is dropped, naming the earlier run's document
    assert {row["input_row"] for row in of_curated.to_pylist() if row["input_file"] == "shard-00000.parquet"} >= set(range(50))
    assert set(of_curated.column("duplicate_of").to_pylist()) <= firsts
    # and the copies of those 50 that are not among them: their whole clusters went
    assert of_curated.num_rows > 50
