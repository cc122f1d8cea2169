"""The mixture's bucket shuffle: rows come back in position order whatever order they went in, in
chunks that do not depend on the buckets, with one bucket's rows in memory at a time; the buckets
DuckDB assigns hold the budget's bytes."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.mixture.shuffle import bucket_sql, read_in_order, spill_by_bucket


def _copies(n: int, buckets: int, seed: int = 0) -> pa.Table:
    """n rows with shuffled positions, texts of varied length and `buckets` consecutive position ranges."""
    rng = np.random.default_rng(seed)
    positions = rng.permutation(n)
    texts = [f"text {p} " + "x" * int(rng.integers(0, 400)) for p in positions]
    return pa.table(
        {
            "bucket": pa.array(positions * buckets // n),
            "position": pa.array(positions),
            "text": pa.array(texts),
            "tokens": pa.array(rng.integers(1, 50, n)),
        }
    )


def _spill(table: pa.Table, path, batch_rows: int) -> list[list[int]]:
    return spill_by_bucket(table.to_batches(max_chunksize=batch_rows), path)


def test_rows_come_back_in_position_order_with_every_column(tmp_path):
    table = _copies(5000, buckets=7)
    pieces = _spill(table, tmp_path / "spill.arrow", batch_rows=333)
    assert len(pieces) == 7
    got = pa.concat_tables(read_in_order(tmp_path / "spill.arrow", pieces, chunk_rows=256))
    expected = table.drop_columns(["bucket"]).sort_by("position")
    assert got.equals(expected)


def test_chunks_are_cut_from_the_first_position_whatever_the_buckets(tmp_path):
    table = _copies(3000, buckets=1)
    one = list(read_in_order(tmp_path / "a.arrow", _spill(table, tmp_path / "a.arrow", 500), chunk_rows=256))
    many = table.set_column(0, "bucket", pa.array(table.column("position").to_numpy() * 11 // 3000))
    eleven = list(read_in_order(tmp_path / "b.arrow", _spill(many, tmp_path / "b.arrow", 500), chunk_rows=256))
    assert [t.num_rows for t in eleven] == [256] * 11 + [3000 - 11 * 256]
    assert all(a.equals(b) for a, b in zip(one, eleven, strict=True))
    assert all(t.column("text").num_chunks == 1 for t in eleven)


def test_a_bucket_is_read_alone(tmp_path):
    """While the rows are read in order, Arrow holds about one bucket's rows (as read and in order),
    a small share of the file."""
    table = _copies(20_000, buckets=20)
    text_bytes = table.column("text").nbytes
    pieces = _spill(table, tmp_path / "spill.arrow", batch_rows=1000)
    del table
    pool = pa.default_memory_pool()
    base = pool.bytes_allocated()
    held = [pool.bytes_allocated() - base for _ in read_in_order(tmp_path / "spill.arrow", pieces, chunk_rows=512)]
    assert max(held) < text_bytes / 4, f"{max(held)} bytes held while reading {text_bytes} bytes of text in 20 buckets"


def test_empty_input_gives_no_rows(tmp_path):
    assert spill_by_bucket([], tmp_path / "none.arrow") == []
    assert list(read_in_order(tmp_path / "none.arrow", [], chunk_rows=10)) == []


@pytest.mark.parametrize("budget", [1, 1000, 50_000, 10**9])
def test_buckets_are_consecutive_and_hold_the_budget_plus_at_most_one_record(tmp_path, budget):
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 3000, 2000)
    # rows stored out of order: the window orders them
    order = rng.permutation(2000)
    pq.write_table(pa.table({"position": order, "text_bytes": lengths[order]}), tmp_path / "copies.parquet")
    sql = f"SELECT {bucket_sql('text_bytes', 'position', budget)} FROM read_parquet('{tmp_path / 'copies.parquet'}') ORDER BY position"
    buckets = np.array([b for (b,) in duckdb.connect().sql(sql).fetchall()])
    assert (np.diff(buckets) >= 0).all()
    for bucket in np.unique(buckets):
        inside = lengths[buckets == bucket]
        # a bucket starts where the bytes before reach a multiple of the budget, so everything
        # but its last record fits in the budget
        assert inside[:-1].sum() < budget
    # and no more buckets than the bytes need
    assert len(np.unique(buckets)) <= lengths.sum() // budget + 1
    if budget >= lengths.sum():
        assert (buckets == 0).all()
