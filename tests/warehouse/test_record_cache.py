"""The per-text fact cache: keys computed in Python and in DuckDB meet."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.record_cache import TEXT_HASH, add_part, cached_relation, count_missing, missing_texts, text_hash, text_hash_sql

TEXTS = ["", "plain ascii", "héllo wörld ✓", "tab\tnew\nline", "nul \x00 inside", "emoji 🙂 and 中文", "plain ascii "]
COUNT = pa.schema([TEXT_HASH, pa.field("tokens", pa.int64(), nullable=False)])


def test_python_and_sql_hashes_are_the_same_key():
    con = duckdb.connect()
    for text in TEXTS:
        assert con.execute(f"SELECT {text_hash_sql('?')}", [text]).fetchone()[0] == text_hash(text)
    assert len({text_hash(t) for t in TEXTS}) == len(TEXTS)


def test_facts_computed_for_sql_hashed_texts_are_found_for_python_hashed_ones(tmp_path):
    texts = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"text": TEXTS}), texts)
    con = duckdb.connect()
    relation = f"(SELECT text, {text_hash_sql('text')} AS text_hash FROM read_parquet('{texts}'))"
    cache = tmp_path / "cache"
    assert count_missing(con, cache, COUNT, relation) == len(TEXTS)

    def computed():
        for batch in missing_texts(con, cache, COUNT, relation, batch_size=3):
            yield pa.table({"text_hash": batch.column("text_hash"), "tokens": [len(t) for t in batch.column("text").to_pylist()]})

    assert add_part(cache, COUNT, computed()) == len(TEXTS)
    assert count_missing(con, cache, COUNT, relation) == 0
    stored = dict(con.execute(f"SELECT text_hash, tokens FROM {cached_relation(con, cache, COUNT)}").fetchall())
    assert {text: stored[text_hash(text)] for text in TEXTS} == {text: len(text) for text in TEXTS}
