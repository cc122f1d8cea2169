"""The output gates on the labelled evaluation set (tests/data/gate_eval.yaml, benchmarks/gates.py):
the goals the rewrite stage is held to, and the set's own soundness."""

from __future__ import annotations

import pytest

from benchmarks.gates import CATCH_GOAL, CLAIMED_BY, FALSE_REJECT_GOAL, GOOD, PREAMBLE, build_cases, evaluate, load_items
from curation.rewrite.styles import load_registry
from scorers.assets import asset_path


@pytest.fixture(scope="module")
def cases():
    return build_cases(load_items(), load_registry(), asset_path("ldnoobw"))


@pytest.fixture(scope="module")
def report(cases):
    return evaluate(cases)


def test_the_set_covers_every_kind_of_failure_and_every_shape(cases):
    kinds = {c.kind for c in cases}
    assert set(CLAIMED_BY) | {GOOD, PREAMBLE} == kinds
    assert sum(c.kind == GOOD for c in cases) >= 20
    assert {c.style for c in cases if c.kind == GOOD} >= {"wrap_wikipedia", "wrap_qa", "nemotron_knowledge_list"}
    hand_written = [c for c in cases if c.kind in ("meta_description", "invented", "wrong_language", "injection_obeyed")]
    assert len(hand_written) >= 35


def test_bad_outputs_are_caught_and_good_ones_kept_as_the_goals_ask(report):
    assert report["catch_rate"] >= CATCH_GOAL, report["kinds"]
    assert report["false_reject_rate"] <= FALSE_REJECT_GOAL, report["false_rejects"]


def test_every_gate_catches_the_kind_it_is_for(report):
    for gate, entry in report["gates"].items():
        if entry["own_kind_cases"]:
            share = entry["own_kind_caught"] / entry["own_kind_cases"]
            assert share >= 0.9, (gate, entry)


def test_a_preamble_is_stripped_and_the_rewrite_kept(report):
    assert report["kinds"][PREAMBLE]["catch_rate"] == 1.0


def test_what_the_gates_cannot_see_is_reported_as_missed(report):
    # two of the chunk's own years swapped: no new name or number, so no gate can tell
    assert report["kinds"]["invented"]["missed"] == ["louis_xvi/invented-0"]
