"""The pure core of the PreSelect scorer: predictive strength and labels, selection, ensemble
buckets, a real fastText scorer trained here, and the scorer card. Expected values are worked out
by hand in the comments."""

from __future__ import annotations

import ast
import json
import random
import string
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from schemas.scoring import LABELS, LOSSES, SCORES, BringYourOwnClassifier, FastTextParams, SelectionRule
from scorers import fasttext_scorer as fts
from scorers.card import card_from_training, pair_summary, write_card
from scorers.ensemble import bucket_edges, ensemble_buckets, score_with_classifier, to_buckets
from scorers.labels import LossTableError, TooFewLabelsError, assign_labels, predictive_strength
from scorers.selection import select, threshold_for_rule, threshold_for_top_share
from warehouse.files import sha256_file


def loss_table(rows: list[tuple[str, str, float]], hashes: dict[str, str] | None = None) -> pa.Table:
    """LOSSES rows from (model, doc_id, bits_per_char); doc_hash defaults to "h-<doc_id>"."""
    hashes = hashes or {}
    return pa.table(
        {
            "model": [m for m, _, _ in rows],
            "doc_hash": [hashes.get(d, f"h-{d}") for _, d, _ in rows],
            "doc_id": [d for _, d, _ in rows],
            "n_chars": [100] * len(rows),
            "n_tokens": [25] * len(rows),
            "total_nats": [b * 100 * 0.6931471805599453 for _, _, b in rows],
            "bits_per_char": [b for _, _, b in rows],
        },
        schema=LOSSES,
    )


def doc_losses(doc: str, **bpc: float) -> list[tuple[str, str, float]]:
    return [(model, doc, value) for model, value in bpc.items()]


# A=80 > B=70 = D=70 > C=60: of the 6 pairs, (B, D) ties and is left out; 5 are compared:
# (A,B) (A,D) (A,C) (B,C) (D,C), each agreeing when the first has the strictly lower loss.
BENCH4 = {"A": 80.0, "B": 70.0, "C": 60.0, "D": 70.0}
ROWS4 = (
    doc_losses("d1", A=1.0, B=1.5, D=1.4, C=2.0)  # all 5 agree -> 1.0
    + doc_losses("d2", A=2.0, B=1.5, D=1.5, C=1.0)  # fully reversed -> 0/5
    + doc_losses("d3", A=1.0, B=2.0, D=1.0, C=1.5)  # (A,B) y, (A,D) equal: n, (A,C) y, (B,C) n, (D,C) y -> 3/5
    + doc_losses("d4", A=1.0, B=1.5, D=1.4)  # no loss for C: incomplete
    + doc_losses("d5", A=1.0, B=2.0, D=3.0, C=4.0)  # 5/5; B < D does not matter, B and D tie
    + doc_losses("d6", A=1.0, B=1.1, D=1.2, C=1.05)  # (A,*) y y y, (B,C) n, (D,C) n -> 3/5
    + doc_losses("d1", E=9.0)  # a cached model that is not benchmarked: ignored
)
HASHES4 = {"d3": "f3", "d6": "a6"}  # d3 and d6 tie at 0.6: d6 has the smaller hash


def test_strength_hand_computed_with_benchmark_tie_and_missing_model():
    result = predictive_strength(loss_table(ROWS4, HASHES4), BENCH4)
    rows = {r["doc_id"]: r for r in result.strengths.to_pylist()}
    assert result.strengths.schema == LABELS
    assert {d: (r["agreeing_pairs"], r["total_pairs"]) for d, r in rows.items()} == {
        "d1": (5, 5),
        "d2": (0, 5),
        "d3": (3, 5),
        "d5": (5, 5),
        "d6": (3, 5),
    }
    assert rows["d3"]["strength"] == pytest.approx(0.6)
    assert all(r["label"] is None for r in rows.values())
    assert result.pairs == (("A", "B"), ("A", "D"), ("A", "C"), ("B", "C"), ("D", "C"))
    assert result.tied_pairs == (("B", "D"),)
    # the document without C is reported, not dropped
    assert [(d.doc_id, d.doc_hash, d.missing_models) for d in result.incomplete] == [("d4", "h-d4", ("C",))]


def test_strength_with_three_models():
    # X=3 > Y=2 > Z=1: pairs (X,Y) (X,Z) (Y,Z)
    rows = doc_losses("p", X=1.0, Y=1.1, Z=1.2) + doc_losses("q", X=1.0, Y=1.3, Z=1.2) + doc_losses("r", X=1.5, Y=1.1, Z=1.0)
    result = predictive_strength(loss_table(rows), {"X": 3.0, "Y": 2.0, "Z": 1.0})
    got = {r["doc_id"]: r["agreeing_pairs"] for r in result.strengths.to_pylist()}
    assert got == {"p": 3, "q": 2, "r": 0}  # q: (X,Y) y, (X,Z) y, (Y,Z) 1.3 < 1.2 n


def test_balanced_labels_with_deterministic_tie_break():
    strengths = predictive_strength(loss_table(ROWS4, HASHES4), BENCH4).strengths
    labels = {r["doc_id"]: r["label"] for r in assign_labels(strengths, min_positives=2).to_pylist()}
    # positives: strength 1.0; negatives: d2 (0.0), then d6 over d3 (both 0.6) by doc_hash
    assert labels == {"d1": "positive", "d5": "positive", "d2": "negative", "d6": "negative", "d3": None}
    shuffled = strengths.take(pa.array([4, 2, 0, 3, 1]))
    assert {r["doc_id"]: r["label"] for r in assign_labels(shuffled, min_positives=2).to_pylist()} == labels
    with pytest.raises(TooFewLabelsError, match="2 documents with strength 1.0"):
        assign_labels(strengths, min_positives=3)


def test_two_models_single_pair_and_positives_cut_to_balance():
    rows = []
    for doc, (big, small) in {"a": (1.0, 2.0), "b": (1.0, 2.0), "c": (1.0, 2.0), "d": (2.0, 1.0)}.items():
        rows += doc_losses(doc, big=big, small=small)
    result = predictive_strength(loss_table(rows, {"a": "h3", "b": "h1", "c": "h2", "d": "h9"}), {"big": 2.0, "small": 1.0})
    assert set(result.strengths["strength"].to_pylist()) == {0.0, 1.0}
    labels = {r["doc_id"]: r["label"] for r in assign_labels(result.strengths, min_positives=1).to_pylist()}
    # 3 positives, 1 other document: one positive kept, the smallest doc_hash (b: h1)
    assert labels == {"a": None, "b": "positive", "c": None, "d": "negative"}


def test_strength_input_errors_are_named():
    with pytest.raises(LossTableError, match=r"no losses at all for benchmarked model\(s\) \['Q'\]"):
        predictive_strength(loss_table(ROWS4), {**BENCH4, "Q": 1.0})
    with pytest.raises(LossTableError, match="all benchmark scores tie"):
        predictive_strength(loss_table(ROWS4), {"A": 1.0, "B": 1.0})
    with pytest.raises(LossTableError, match="more than one loss row"):
        predictive_strength(loss_table(ROWS4 + [("A", "d1", 1.0)]), BENCH4)
    clash = loss_table(doc_losses("x", A=1.0) + [("B", "x", 2.0)])
    clash = clash.set_column(1, "doc_hash", pa.array(["h1", "h2"]))
    with pytest.raises(LossTableError, match="different texts"):
        predictive_strength(clash, {"A": 2.0, "B": 1.0})
    with pytest.raises(LossTableError, match="non-finite"):
        predictive_strength(loss_table(doc_losses("x", A=float("nan"), B=1.0)), {"A": 2.0, "B": 1.0})


def test_top_share_threshold_hand_computed():
    # 1000 characters; 10% = 100: 0.95 (50 chars) then 0.9 (60) reach 110 >= 100 -> threshold 0.9
    scores = [0.1, 0.95, 0.3, 0.9, 0.8, 0.2, 0.4, 0.5, 0.6, 0.7]
    chars = [100, 50, 100, 60, 100, 90, 100, 100, 100, 200]
    assert threshold_for_top_share(scores, chars, 0.10) == 0.9
    picked = select(scores, chars, SelectionRule())
    assert (picked.threshold, picked.kept_docs, picked.kept_chars, picked.total_chars) == (0.9, 2, 110, 1000)
    assert picked.keep == [s >= 0.9 for s in scores]
    assert threshold_for_top_share(scores, chars, 1.0) == 0.1


def test_top_share_ties_order_and_edge_cases():
    # the two 0.5s are kept together even though the first alone reaches 10%
    assert threshold_for_top_share([0.5, 0.1, 0.5], [10, 80, 10], 0.1) == 0.5
    assert select([0.1, 0.5, 0.5], [80, 10, 10], SelectionRule(top_share=0.1)).kept_chars == 20
    # exact arithmetic: 30% of 10 characters is 3, reached by the first document alone
    assert threshold_for_top_share([0.9, 0.8, 0.7], [3, 3, 4], 0.3) == 0.9
    assert threshold_for_top_share([], [], 0.1) == float("inf")
    assert select([], [], SelectionRule()).kept_docs == 0
    with pytest.raises(ValueError, match="NaN"):
        threshold_for_top_share([float("nan")], [1], 0.1)


def test_fixed_threshold_rule_and_rule_validation():
    rule = SelectionRule(threshold=0.5)
    assert rule.top_share is None
    assert threshold_for_rule([0.9, 0.1], [1, 1], rule) == 0.5
    assert select([0.9, 0.5, 0.1], [5, 5, 5], rule).keep == [True, True, False]
    assert SelectionRule().top_share == 0.10
    for bad in ({"top_share": 0.2, "threshold": 0.5}, {"top_share": 0.0}, {"top_share": 1.5}, {"share": 0.1}):
        with pytest.raises(ValidationError):
            SelectionRule(**bad)


def test_bucket_edges_token_weighted_hand_computed():
    # ranked low to high: 0.1 (40 tokens), 0.3 (20), 0.5 (30), 0.9 (10); running 40, 60, 90, 100.
    # quarters of 100 tokens are reached at 25 -> 0.1, 50 -> 0.3, 75 -> 0.5
    scores, tokens = [0.9, 0.1, 0.5, 0.3], [10, 40, 30, 20]
    edges = bucket_edges(scores, tokens, n_buckets=4)
    assert edges == [0.1, 0.3, 0.5]
    assert to_buckets(scores, edges) == [3, 0, 2, 1]
    # unweighted case: ten equal documents, five buckets of two
    ten = [i / 10 for i in range(10)]
    assert to_buckets(ten, bucket_edges(ten, [7] * 10, n_buckets=5)) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(bucket_edges(ten, [1] * 10)) == 19
    assert to_buckets([-1.0, 2.0], edges) == [0, 3]  # outside the fitted range: end buckets
    with pytest.raises(ValueError, match="at least one token"):
        bucket_edges([0.5], [0])


def test_ensemble_takes_the_max_bucket():
    assert ensemble_buckets({"edu": [0, 5, 19, 7], "dclm": [3, 2, 19, 0]}) == [3, 5, 19, 7]
    assert ensemble_buckets([[1, 2], [2, 1], [0, 0]]) == [2, 2]
    with pytest.raises(ValueError, match="same documents"):
        ensemble_buckets([[1, 2], [1]])


def test_roc_auc_hand_computed():
    assert fts.roc_auc([0.9, 0.8, 0.7, 0.6], [True, True, False, False]) == 1.0
    assert fts.roc_auc([0.9, 0.8, 0.7, 0.6], [False, False, True, True]) == 0.0
    # positives 0.9, 0.7 vs negatives 0.8, 0.6: 3 of 4 pairs ordered right
    assert fts.roc_auc([0.9, 0.8, 0.7, 0.6], [True, False, True, False]) == 0.75
    # positives 0.5, 0.5 vs negatives 0.5, 0.2: ties count 1/2 -> (0.5 + 1 + 0.5 + 1) / 4
    assert fts.roc_auc([0.5, 0.5, 0.5, 0.2], [True, False, True, False]) == 0.75
    assert fts.roc_auc([0.3] * 4, [True, False, True, False]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        fts.roc_auc([0.1, 0.2], [True, True])


def test_schemas_and_params():
    assert LOSSES.names == ["model", "doc_hash", "doc_id", "n_chars", "n_tokens", "total_nats", "bits_per_char"]
    assert LABELS.field("agreeing_pairs").type == pa.int32() and LABELS.field("label").nullable
    assert SCORES.field("bucket").type == pa.int8() and SCORES.field("bucket").nullable
    assert FastTextParams().model_dump() == {
        "epoch": 3,
        "lr": 0.1,
        "wordNgrams": 2,
        "dim": 100,
        "minCount": 1,
        "bucket": 2_000_000,
    }
    with pytest.raises(ValidationError):
        FastTextParams(epochs=3)
    source = (Path(__file__).parents[2] / "schemas" / "scoring.py").read_text()
    imported = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    ours = {"schemas", "curation", "scorers", "warehouse", "flows", "cli"}
    assert not {m.split(".")[0] for m in imported} & ours  # schemas/ imports nothing of ours


# --- a real fastText scorer -------------------------------------------------------------------


_rng = random.Random(7)
JUNK = ["".join(_rng.choices(string.ascii_lowercase + string.digits, k=_rng.randint(3, 9))) for _ in range(300)]


def junk_text(words: list[str], rng: random.Random) -> str:
    """A document's words shuffled, every third replaced by a token of a fixed junk vocabulary:
    the words of real text without its word order, plus junk a classifier can learn."""
    out = words[:]
    rng.shuffle(out)
    for i in range(0, len(out), 3):
        out[i] = rng.choice(JUNK)
    return " ".join(out)


# The paper's defaults are meant for far more examples: on 240, 3 epochs at lr 0.1 leave every
# probability within 0.001 of 0.5 (the ranking is already right, the accuracy is not).
# Fewer n-gram buckets than the default 2M, which make an 800 MB model file.
PARAMS = FastTextParams(epoch=20, lr=0.5, bucket=50_000)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, wiki_docs):
    rng = random.Random(7)
    # alternate documents, so that positives and negatives come from the same topics
    positives = wiki_docs[0:300:2]
    negatives = [junk_text(doc.split(), rng) for doc in wiki_docs[1:300:2]]
    positives[0] = positives[0] + " __label__negative"  # must not become a second label
    out = tmp_path_factory.mktemp("scorer") / "preselect.bin"
    result = fts.train(positives, negatives, PARAMS, holdout_fraction=0.2, seed=0, out_path=out)
    return result, positives, negatives


def test_fasttext_train_save_reload_score(trained, wiki_docs):
    result, positives, negatives = trained
    assert result.n_train == {"positive": 120, "negative": 120}
    assert result.n_holdout == {"positive": 30, "negative": 30}
    assert result.roc_auc > 0.9 and result.accuracy > 0.9  # separable classes: real text vs junk
    lines = result.train_path.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(lines) == 240  # one example per line: the newlines of the documents became spaces
    assert all(line.split(" ", 1)[0] in (fts.POSITIVE, fts.NEGATIVE) for line in lines)
    assert sum(line.count("__label__") for line in lines) == 240

    model = fts.load(result.model_path)
    assert sorted(model.get_labels()) == [fts.NEGATIVE, fts.POSITIVE]
    fresh = wiki_docs[300:320]
    fresh_junk = [junk_text(doc.split(), random.Random(1)) for doc in wiki_docs[320:325]]
    scores = fts.score(model, fresh + fresh_junk)
    # unseen documents of both kinds land on their own side of 0.5
    assert [s > 0.5 for s in scores] == [True] * 20 + [False] * 5
    neg_scores = fts.score(model, fresh, label=fts.NEGATIVE)
    assert all(p + n == pytest.approx(1.0, abs=1e-4) for p, n in zip(scores, neg_scores))
    with pytest.raises(ValueError, match="not one of the model's labels"):
        fts.score(model, fresh, label="__label__hq")
    assert fts.score(model, []) == []


def holdout_metrics_by_counting(model, holdout_path: Path) -> tuple[float, float]:
    """Accuracy and ROC-AUC from the held-out file, counted directly: every (positive, negative)
    pair ordered right counts 1, a tie 1/2."""
    examples = [line.split(" ", 1) for line in holdout_path.read_text(encoding="utf-8").splitlines()]
    probs = fts.score(model, [text for _, text in examples])
    truth = [label == fts.POSITIVE for label, _ in examples]
    pos = [p for p, t in zip(probs, truth) if t]
    neg = [p for p, t in zip(probs, truth) if not t]
    pairs = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    correct = sum((p >= 0.5) == t for p, t in zip(probs, truth))
    return correct / len(truth), pairs / (len(pos) * len(neg))


def test_holdout_metrics_are_those_of_the_held_out_predictions(wiki_docs, tmp_path):
    # one label in five is wrong, so the held-out ranking is imperfect and the check can tell
    rng = random.Random(3)
    real, junk = wiki_docs[0:200:2], [junk_text(doc.split(), rng) for doc in wiki_docs[1:200:2]]
    positives, negatives = real[:80] + junk[80:], junk[:80] + real[80:]
    params = FastTextParams(epoch=50, lr=0.5, bucket=50_000)
    result = fts.train(positives, negatives, params, holdout_fraction=0.3, seed=0, out_path=tmp_path / "noisy.bin")
    accuracy, auc = holdout_metrics_by_counting(fts.load(result.model_path), result.holdout_path)
    assert 0.6 < auc < 1.0 and 0.6 < accuracy < 1.0
    assert (result.accuracy, result.roc_auc) == (pytest.approx(accuracy), pytest.approx(auc))


def test_preprocessing_identical_in_training_and_scoring(trained, wiki_docs):
    result, _, _ = trained
    model = fts.load(result.model_path)
    doc = wiki_docs[400]
    assert "\n" in doc
    assert fts.preprocess("a\nb\r\nc\rd") == "a b c d"
    assert fts.score(model, [doc]) == fts.score(model, [doc.replace("\n", " ")])
    # the training file holds exactly the preprocessed text
    first_positive = next(line for line in result.train_path.read_text().split("\n") if line.startswith(fts.POSITIVE))
    assert "\r" not in first_positive


def test_training_is_deterministic(trained, tmp_path):
    # Repeated trainings in one process: with this fastText build they reused uninitialised memory
    # and differed (or hit "Encountered NaN") unless fasttext_scorer zero-fills allocations.
    result, positives, negatives = trained
    for i in range(2):
        again = fts.train(positives, negatives, PARAMS, holdout_fraction=0.2, seed=0, out_path=tmp_path / f"again{i}.bin")
        assert sha256_file(again.train_path) == sha256_file(result.train_path)
        assert sha256_file(again.model_path) == sha256_file(result.model_path)
        assert again.roc_auc == result.roc_auc


def test_top_features_and_bring_your_own_classifier(trained, wiki_docs):
    result, _, _ = trained
    model = fts.load(result.model_path)
    feats = fts.top_features(model, k=10)
    assert set(feats) == {fts.POSITIVE, fts.NEGATIVE}
    for words in feats.values():
        assert len(words) == 10
        weights = [w for _, w in words]
        assert weights == sorted(weights, reverse=True) and weights[0] > 0
        assert "</s>" not in [w for w, _ in words]
    assert {w for w, _ in feats[fts.NEGATIVE]} <= set(JUNK)
    assert not {w for w, _ in feats[fts.POSITIVE]} & set(JUNK)
    # with two labels, the push towards one is the push away from the other
    best_positive, weight = feats[fts.POSITIVE][0]
    assert -weight == pytest.approx(min(w for _, w in fts.top_features(model, k=10**6)[fts.NEGATIVE]))

    byo = BringYourOwnClassifier(path=str(result.model_path), label=fts.POSITIVE, threshold=0.5)
    assert byo.scorer_id == "preselect"
    texts = wiki_docs[300:305]
    assert score_with_classifier(byo, texts) == fts.score(model, texts)
    with pytest.raises(ValidationError):
        BringYourOwnClassifier(path="x.bin", label="__label__hq", threshold=1.5)


def test_scorer_card_written_with_expected_fields(trained, tmp_path):
    result, _, _ = trained
    model = fts.load(result.model_path)
    labels = pa.table(
        {
            "doc_id": ["a", "b", "c"],
            "doc_hash": ["1", "2", "3"],
            "strength": [1.0, 0.0, 0.0],
            "agreeing_pairs": [1, 0, 0],
            "total_pairs": [1, 1, 1],
            "label": ["positive", "negative", None],
        },
        schema=LABELS,
    )
    models = [
        {"name": "small", "path": "/models/small", "benchmark_score": 30.0},
        {"name": "large", "path": "/models/large", "benchmark_score": 45.5},
    ]
    card = card_from_training(
        models=models, labels=labels, result=result, top_features=fts.top_features(model, k=5), incomplete_documents=2
    )
    json_path, md_path = write_card(tmp_path / "card", card)
    data = json.loads(json_path.read_text())
    assert data["n_models"] == 2 and data["n_pairs"] == 1 and data["n_compared_pairs"] == 1
    assert "single pair" in data["pairs_note"] and "0 or 1" in data["pairs_note"]
    assert data["labels"] == {"documents": 3, "positive": 1, "negative": 1, "unlabelled": 1, "incomplete_documents": 2}
    assert data["fasttext_params"] == PARAMS.model_dump()
    assert data["holdout"]["roc_auc"] == result.roc_auc and data["holdout"]["accuracy"] == result.accuracy
    assert data["sha256"]["model"] == sha256_file(result.model_path)
    assert data["sha256"]["training_data"] == sha256_file(result.train_path)
    assert [m["name"] for m in data["models"]] == ["small", "large"]
    assert len(data["top_features"][fts.POSITIVE]) == 5
    md = md_path.read_text()
    for needle in ("| large | /models/large | 45.5 |", "single pair", "roc_auc", data["sha256"]["model"], f"### {fts.POSITIVE}"):
        assert needle in md
    with pytest.raises(KeyError, match="sha256"):
        write_card(tmp_path / "bad", {k: v for k, v in card.items() if k != "sha256"})


def test_pair_summary_with_ties():
    summary = pair_summary([{"name": m, "benchmark_score": s} for m, s in BENCH4.items()])
    assert (summary["n_models"], summary["n_pairs"], summary["n_compared_pairs"], summary["n_tied_pairs"]) == (4, 6, 5, 1)
    assert "tied" in summary["pairs_note"] and "single pair" not in summary["pairs_note"]


def test_rank_normalize_removes_each_models_offset():
    import pyarrow as pa

    from schemas.scoring import LOSSES
    from scorers.labels import predictive_strength, rank_normalize

    rows = []
    # model "big" is lower on every document; relative to itself it does best on d3, worst on d1
    for doc, small, big in [("d1", 1.0, 0.9), ("d2", 2.0, 0.5), ("d3", 3.0, 0.2), ("d4", 4.0, 0.7)]:
        for model, bpc in (("small", small), ("big", big)):
            rows.append(
                {
                    "model": model,
                    "doc_hash": doc,
                    "doc_id": doc,
                    "n_chars": 10,
                    "n_tokens": 3,
                    "total_nats": 1.0,
                    "bits_per_char": bpc,
                }
            )
    table = pa.Table.from_pylist(rows, schema=LOSSES)
    raw = predictive_strength(table, {"big": 0.6, "small": 0.3}).strengths
    assert raw.column("strength").to_pylist() == [1.0, 1.0, 1.0, 1.0]  # degenerate: nothing to contrast
    ranked = rank_normalize(table)
    by = {(r["model"], r["doc_id"]): r["bits_per_char"] for r in ranked.to_pylist()}
    assert [by[("small", d)] for d in ("d1", "d2", "d3", "d4")] == [0.0, 1 / 3, 2 / 3, 1.0]
    assert [by[("big", d)] for d in ("d1", "d2", "d3", "d4")] == [1.0, 1 / 3, 0.0, 2 / 3]
    strengths = dict(
        zip(
            *[
                predictive_strength(ranked, {"big": 0.6, "small": 0.3}).strengths.column(c).to_pylist()
                for c in ("doc_id", "strength")
            ]
        )
    )
    assert strengths == {"d1": 0.0, "d2": 0.0, "d3": 1.0, "d4": 1.0}
