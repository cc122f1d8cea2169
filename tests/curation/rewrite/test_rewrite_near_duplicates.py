"""The near-duplicate gate of the rewrite stage, over real Wikipedia chunks and the real runner.

The engine here returns texts the test chooses (a reworded chunk, or a near copy of one), because
which outputs are near copies of each other is what the gate decides and a real model cannot be
made to produce them on demand.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from test_rewrite_run import curate_six_documents, records, rewrite_config

from curation.rewrite.engines import GenerationResult
from curation.rewrite.runner import run_rewrite


@pytest.fixture()
def curated(tmp_path, wiki_docs):
    return curate_six_documents(tmp_path, wiki_docs)


class ChosenTexts:
    name = "chosen"
    model_name = "chosen"
    model_hash = None

    def __init__(self, near_copies: bool):
        self.near_copies = near_copies

    def generate(self, requests):
        return [
            GenerationResult(key=r.key, text=self.answer(r), finish_reason="stop", tokens_in=1, tokens_out=1) for r in requests
        ]

    def answer(self, request) -> str:
        """The chunk without every fourth word: it shares no 5-gram with the chunk (so it passes the
        copy gate) yet keeps its words and language. A near copy also loses one word picked by the
        request's seed among its last three, so two variants of a chunk differ in a word or two near
        the end: a 5-gram Jaccard well above the LSH threshold (~0.72) however short the chunk (a
        word dropped mid-text from a 50-word chunk would put the pair near the threshold, where
        LSH finds a pair only about half the time)."""
        words = [w for i, w in enumerate(chunk_of(request).split()) if i % 4 != 3]
        if self.near_copies:
            del words[-1 - request.seed % min(3, len(words))]
        return " ".join(words)

    def close(self):
        pass


def chunk_of(request) -> str:
    user = request.messages[-1]["content"]
    return user.split("<document>\n", 1)[1].rsplit("\n</document>", 1)[0]


WIKIPEDIA = [{"styles": [{"style": "wrap_wikipedia"}]}]
# two styles, one template: the same chunks, two records each. (The variants of one style are
# siblings and never gate each other: test_method_rules.)
TWO_STYLES = [{"styles": [{"style": "wrap_wikipedia"}, {"style": "wrap_wikipedia_again"}]}]


def wrap_wikipedia_again() -> dict:
    from curation.rewrite.styles import load_registry

    return {**load_registry()["wrap_wikipedia"].model_dump(), "id": "wrap_wikipedia_again"}


def generations(root, rewrite_id: str) -> list[dict]:
    return records(root, f"SELECT * FROM generations WHERE rewrite_id = '{rewrite_id}' ORDER BY record_id")


def by_chunk(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups = defaultdict(list)
    for row in rows:
        groups[(row["doc_id"], row["chunk_index"])].append(row)
    return groups


def near_duplicate_verdict(row: dict) -> str | None:
    return json.loads(row["gate_verdicts"]).get("near_duplicate")


def test_of_two_near_copies_in_one_rewrite_the_later_key_is_rejected_naming_the_earlier(curated):
    cfg = rewrite_config(curated, rewrite_id="rw", routes=TWO_STYLES, styles=[wrap_wikipedia_again()])
    run_rewrite(cfg, engine=ChosenTexts(near_copies=True))
    groups = by_chunk(generations(curated, "rw"))
    assert len(groups) > 6 and all(len(pair) == 2 for pair in groups.values())
    for first, later in groups.values():  # rows are in record_id order
        assert first["accepted"] and near_duplicate_verdict(first) is None
        assert later["reject_reason"] == "near_duplicate" and not later["accepted"]
        assert near_duplicate_verdict(later) == f"fail: of {first['record_id']}"


def test_a_near_copy_of_an_earlier_rewrites_record_is_rejected_naming_it(curated):
    run_rewrite(rewrite_config(curated, rewrite_id="rw1", routes=WIKIPEDIA), engine=ChosenTexts(near_copies=False))
    # another seed: new work keys, so the same chunks are generated again, as near copies
    run_rewrite(
        rewrite_config(curated, rewrite_id="rw2", routes=WIKIPEDIA, sampling={"seed": 1}), engine=ChosenTexts(near_copies=True)
    )
    earlier = {chunk: rows[0] for chunk, rows in by_chunk(generations(curated, "rw1")).items()}
    later = generations(curated, "rw2")
    assert len(later) == len(earlier) > 6 and all(r["accepted"] for r in earlier.values())
    for row in later:
        assert row["reject_reason"] == "near_duplicate"
        assert near_duplicate_verdict(row) == f"fail: of {earlier[(row['doc_id'], row['chunk_index'])]['record_id']}"


def test_styles_that_switch_the_gate_off_are_not_marked(curated):
    cfg = rewrite_config(
        curated,
        rewrite_id="off",
        routes=[{"styles": [{"style": "wrap_wikipedia", "variants": 2}, {"style": "sentence_shuffle", "variants": 2}]}],
        style_overrides={"wrap_wikipedia": {"gates": {"near_duplicates": False}}},
    )
    run_rewrite(cfg, engine=ChosenTexts(near_copies=True))
    rows = generations(curated, "off")
    assert {r["style"] for r in rows} == {"wrap_wikipedia", "sentence_shuffle"} and len(rows) > 24
    assert all(r["accepted"] and near_duplicate_verdict(r) is None for r in rows)


def test_distinct_outputs_are_not_marked(curated):
    run_rewrite(rewrite_config(curated, rewrite_id="rw", routes=WIKIPEDIA), engine=ChosenTexts(near_copies=False))
    rows = generations(curated, "rw")
    assert len(rows) > 6 and all(r["accepted"] and near_duplicate_verdict(r) is None for r in rows)
