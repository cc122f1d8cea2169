"""The per-text fact cache: keys computed in Python and in DuckDB meet."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.record_cache import (
    TEXT_HASH,
    CachePart,
    cached_relation,
    find_missing,
    text_hash,
    text_hash_sql,
    text_hashes,
)

TEXTS = ["", "plain ascii", "héllo wörld ✓", "tab\tnew\nline", "nul \x00 inside", "emoji 🙂 and 中文", "plain ascii "]
COUNT = pa.schema([TEXT_HASH, pa.field("tokens", pa.int64(), nullable=False)])


def test_python_and_sql_hashes_are_the_same_key():
    con = duckdb.connect()
    for text in TEXTS:
        assert con.execute(f"SELECT {text_hash_sql('?')}", [text]).fetchone()[0] == text_hash(text)
    assert len({text_hash(t) for t in TEXTS}) == len(TEXTS)


def test_a_column_hashed_from_its_buffer_gives_each_text_its_own_key():
    column = pa.array(["before", *TEXTS], pa.string()).slice(1)  # an offset into the buffers, as a batch's slice has
    hashes = text_hashes(column)
    assert hashes.type == pa.string() and hashes.null_count == 0
    assert hashes.to_pylist() == [text_hash(t) for t in TEXTS]
    assert text_hashes(pa.array([], pa.string())).to_pylist() == []


def test_facts_computed_for_sql_hashed_texts_are_found_for_python_hashed_ones(tmp_path):
    texts = tmp_path / "texts.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT text, {text_hash_sql('text')} AS text_hash FROM (SELECT unnest(?) AS text)) TO '{texts}'", [TEXTS])
    cache = tmp_path / "cache"
    missing = find_missing(con, cache, COUNT, [texts])
    assert missing.count == len(TEXTS)

    def computed():
        for batch in missing.batches(batch_size=3):
            yield pa.table({"text_hash": batch.column("text_hash"), "tokens": [len(t) for t in batch.column("text").to_pylist()]})

    with CachePart(cache, COUNT) as part:
        for table in computed():
            part.write(table)
    assert part.rows == len(TEXTS)
    assert find_missing(con, cache, COUNT, [texts]).count == 0
    stored = dict(con.execute(f"SELECT text_hash, tokens FROM {cached_relation(con, cache, COUNT)}").fetchall())
    assert {text: stored[text_hash(text)] for text in TEXTS} == {text: len(text) for text in TEXTS}


def test_missing_texts_are_each_text_once_at_its_first_row_in_file_order(tmp_path):
    """Across files and within one, a repeated text is computed once, where it first occurs; texts
    the cache holds and rows the condition leaves out are not read; row groups smaller than a
    batch make no difference."""
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    a_texts = ["x", "y", "x", "z", "w"]
    b_texts = ["y", "v", "v", "u", "z", "t"]
    for path, texts in ((first, a_texts), (second, b_texts)):
        table = pa.table({"text": texts, "text_hash": [text_hash(t) for t in texts], "keep": [t != "w" for t in texts]})
        pq.write_table(table, path, row_group_size=2)
    cache = tmp_path / "cache"
    with CachePart(cache, COUNT) as part:
        part.write(pa.table({"text_hash": [text_hash("z")], "tokens": [1]}, schema=COUNT))
    con = duckdb.connect()
    missing = find_missing(con, cache, COUNT, [first, second], where="keep")
    assert [rows.tolist() for rows in missing.rows] == [[0, 1], [1, 3, 5]]
    streamed = [t for batch in missing.batches(batch_size=2) for t in batch.column("text").to_pylist()]
    assert streamed == ["x", "y", "v", "u", "t"]
    hashes = [h for batch in missing.batches(batch_size=4) for h in batch.column("text_hash").to_pylist()]
    assert hashes == [text_hash(t) for t in streamed]
