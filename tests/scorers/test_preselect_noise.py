"""Benchmark noise in PreSelect training: each measured accuracy's binomial standard error, the
pairs whose order noise could flip (two-proportion z-test at the two-sided 95% level), the
warning `preselect train` gives before the losses, and the method notes on the scorer card.
Expected numbers are worked out by hand in the comments."""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pytest
from conftest import write_shard

from schemas.scoring import LOSSES, PreSelectTrainingConfig
from scorers import preselect
from scorers.benchmark import NOISE_Z, noise_warning, pair_noise, standard_error
from scorers.models import ModelLoadError


def test_standard_error_hand_computed():
    # sqrt(0.21 * 0.79 / 100) = sqrt(0.001659) = 0.0407308...
    assert standard_error(0.21, 100) == pytest.approx(0.0407308, abs=1e-7)
    # sqrt(0.28 * 0.72 / 100) = sqrt(0.002016) = 0.0448999...
    assert standard_error(0.28, 100) == pytest.approx(0.0448999, abs=1e-7)
    assert standard_error(0.5, 4) == 0.25 and standard_error(1.0, 50) == 0.0
    with pytest.raises(ValueError, match="at least 1 question"):
        standard_error(0.5, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        standard_error(45.5, 100)


def test_the_bundled_pair_is_within_noise_and_a_clear_pair_is_not():
    assert NOISE_Z == 1.96
    # bundled pair, 100 questions each: combined se = sqrt(0.001659 + 0.002016) = 0.0606218,
    # z = 0.07 / 0.0606218 = 1.1547 < 1.96, so noise could flip it
    [close] = pair_noise(
        {"gemma3": 0.21, "smollm2": 0.28}, {"gemma3": standard_error(0.21, 100), "smollm2": standard_error(0.28, 100)}
    )
    assert (close.better, close.worse) == ("smollm2", "gemma3")
    assert close.difference == pytest.approx(0.07) and close.combined_se == pytest.approx(0.0606218, abs=1e-7)
    assert close.z == pytest.approx(1.1547, abs=1e-4) and close.within_noise is True
    # 0.30 vs 0.60 on 1000 questions: se 0.0144914 and 0.0154919, combined 0.0212132, z = 14.14
    [clear] = pair_noise({"a": 0.3, "b": 0.6}, {"a": standard_error(0.3, 1000), "b": standard_error(0.6, 1000)})
    assert (clear.better, clear.worse, clear.within_noise) == ("b", "a", False) and clear.z == pytest.approx(14.142, abs=1e-3)
    # the same 0.07 gap on 1000 questions: combined se 0.0191703, z = 3.65, separated
    [more] = pair_noise({"x": 0.21, "y": 0.28}, {"x": standard_error(0.21, 1000), "y": standard_error(0.28, 1000)})
    assert more.within_noise is False and more.z == pytest.approx(3.6515, abs=1e-4)

    warning = noise_warning([close, clear], {"gemma3": 100, "smollm2": 100})
    assert "1 model pair(s)" in warning and "smollm2 +0.070 over gemma3" in warning and "z = 1.15" in warning
    assert noise_warning([clear], {}) is None


def test_a_pair_with_a_given_score_is_not_assessed():
    [pair] = pair_noise({"given": 0.9, "measured": 0.2}, {"given": None, "measured": 0.04})
    assert pair.within_noise is None and pair.z is None and pair.combined_se is None
    assert "no standard error for given" in pair.note
    assert noise_warning([pair], {}) is None


def _mmlu(path, answers: str) -> str:
    rows = [
        {
            "question": f"q{i}",
            "answer_a": "w",
            "answer_b": "x",
            "answer_c": "y",
            "answer_d": "z",
            "correct_answer": a,
            "topic": "t",
        }
        for i, a in enumerate(answers)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _config(tmp_path, models, answers: str = "AAABBCCCCC", **extra) -> PreSelectTrainingConfig:
    return PreSelectTrainingConfig(
        documents={"paths": [str(tmp_path / "docs/*.parquet")], "limit": 100},
        models=models,
        benchmark={"path": _mmlu(tmp_path / "mmlu.jsonl", answers), "questions": len(answers)},
        output_dir=str(tmp_path / "scorers"),
        cache_dir=str(tmp_path / "cache"),
        min_positives=3,
        holdout_fraction=0.2,
        fasttext={"epoch": 20, "lr": 0.5, "bucket": 50000},
        **extra,
    )


def test_given_scores_have_no_question_count_and_no_error(tmp_path):
    cfg = _config(
        tmp_path, [{"name": "a", "path": "/m/a", "benchmark_score": 0.21}, {"name": "b", "path": "/m/b", "benchmark_score": 0.28}]
    )
    report = preselect.benchmark_noise(cfg, {"a": 0.21, "b": 0.28})
    assert [(m["questions"], m["standard_error"], m["score_source"]) for m in report["models"]] == [(None, None, "given")] * 2
    assert all("no question count" in m["note"] for m in report["models"])
    assert report["pairs"][0]["within_noise"] is None and report["pairs_within_noise"] == [] and report["warning"] is None


def _losses(sample, bits_per_char: dict[str, dict[str, float]]) -> list[preselect.ModelLosses]:
    out = []
    for key, per_doc in bits_per_char.items():
        rows = [
            {
                "model": key,
                "doc_hash": d.doc_hash,
                "doc_id": d.doc_id,
                "n_chars": len(d.text),
                "n_tokens": len(d.text),
                "total_nats": per_doc[d.doc_id] * len(d.text) * 0.6931471805599453,
                "bits_per_char": per_doc[d.doc_id],
            }
            for d in sample.documents
        ]
        out.append(preselect.ModelLosses(key, pa.Table.from_pylist(rows, schema=LOSSES), 0))
    return out


def test_the_card_of_a_training_carries_errors_flags_and_method_notes(tmp_path, wiki_docs):
    write_shard(tmp_path / "docs/0.parquet", {"doc_id": [f"d{i}" for i in range(16)], "text": wiki_docs[:16]})
    cfg = _config(
        tmp_path,
        [{"name": "a", "path": "/m/a"}, {"name": "b", "path": "/m/b"}, {"name": "c", "path": "/m/c", "benchmark_score": 0.9}],
    )
    sample = preselect.training_documents(cfg)
    # even documents: c < a < b, every pair agrees (strength 1); odd ones: the reverse (strength 0)
    order = {d.doc_id: i % 2 == 0 for i, d in enumerate(sample.documents)}
    bpc = {
        "a@1": dict.fromkeys(order, 1.0),
        "b@1": {k: 2.0 if agree else 0.5 for k, agree in order.items()},
        "c@1": {k: 0.5 if agree else 2.0 for k, agree in order.items()},
    }
    # a and b measured on the 10 questions: se_a = sqrt(0.3 * 0.7 / 10) = 0.144914,
    # se_b = sqrt(0.2 * 0.8 / 10) = 0.126491, z = 0.1 / 0.192354 = 0.5199: within noise
    out = preselect.train_scorer(cfg, _losses(sample, bpc), {"a": 0.3, "b": 0.2, "c": 0.9}, sample)
    card = json.loads((out / "scorer_card.json").read_text())

    models = {m["name"]: m for m in card["models"]}
    assert models["a"]["questions"] == models["b"]["questions"] == 10
    assert models["a"]["standard_error"] == pytest.approx(0.144914, abs=1e-6)
    assert models["b"]["standard_error"] == pytest.approx(0.126491, abs=1e-6)
    assert (models["c"]["questions"], models["c"]["standard_error"], models["c"]["score_source"]) == (None, None, "given")

    noise = card["benchmark_noise"]
    assert noise["pairs_within_noise"] == [["a", "b"]]
    verdicts = {(p["better"], p["worse"]): p["within_noise"] for p in noise["pairs"]}
    assert verdicts == {("c", "a"): None, ("c", "b"): None, ("a", "b"): True}
    [ab] = [p for p in noise["pairs"] if p["better"] == "a"]
    assert ab["z"] == pytest.approx(0.5199, abs=1e-4)
    assert "a +0.100 over b" in noise["warning"] and "1.96" in noise["rule"]

    notes = card["method_notes"]
    assert any("BOS" in n and "packed stream" in n for n in notes)
    assert any("Held-out split: 0.2" in n and "every labelled document" in n for n in notes)

    md = (out / "scorer_card.md").read_text()  # what `preselect train` prints
    assert "| a | /m/a | 0.3 | 10 | 0.1449 |" in md and "| c | /m/c | 0.9 | none (score given) | none (score given, no n) |" in md
    assert "## Benchmark noise" in md and "**Warning:** benchmark order within noise" in md
    assert "| a | b | 0.1000 | 0.1924 | 0.52 | within noise |" in md
    assert "## Method notes: deliberate differences from PreSelect" in md and "packed stream" in md


class FixedLetterScorer:
    """Always answers the same letter: a model whose accuracy is the share of that letter."""

    engine, max_len, bos_id = "fixed", 512, None

    def __init__(self, letter: int):
        self.letter, self.vocab = letter, {}

    def encode(self, text):
        return [self.vocab.setdefault(w, len(self.vocab) + 1) for w in text.split()]

    def choose(self, contexts, candidates):
        return [self.letter] * len(contexts)


def test_train_warns_before_computing_losses(tmp_path, wiki_docs, monkeypatch, caplog):
    write_shard(tmp_path / "docs/0.parquet", {"doc_id": ["x", "y"], "text": wiki_docs[:2]})
    cfg = _config(tmp_path, [{"name": "a", "path": "/nowhere/a"}, {"name": "b", "path": "/nowhere/b"}])
    # the engines are stand-ins (no model runs here); "a" always answers A (3 of 10 right), "b" B (2 of 10)
    monkeypatch.setattr(preselect.LazyEngine, "scorer", property(lambda self: FixedLetterScorer("ab".index(self.model.name))))
    # the models' folders do not exist, so the loss step fails on its first model: any warning
    # logged by then was given before the losses
    with caplog.at_level(logging.WARNING, logger="scorers.preselect"), pytest.raises(ModelLoadError, match="/nowhere/a does not"):
        preselect.run_training(cfg)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.name == "scorers.preselect"
    assert "benchmark order within noise for 1 model pair(s): a +0.100 over b" in warning.getMessage()
    assert "10 and 10 questions" in warning.getMessage()


def test_no_warning_when_the_order_is_clear(tmp_path, wiki_docs, monkeypatch, caplog):
    write_shard(tmp_path / "docs/0.parquet", {"doc_id": ["x"], "text": wiki_docs[:1]})
    models = [{"name": "a", "path": "/nowhere/a"}, {"name": "b", "path": "/nowhere/b"}]
    cfg = _config(tmp_path, models, answers="A" * 90 + "B" * 10)
    # 0.9 vs 0.1 on 100 questions: combined se = sqrt(2 * 0.0009) = 0.0424, z = 18.9
    monkeypatch.setattr(preselect.LazyEngine, "scorer", property(lambda self: FixedLetterScorer("ab".index(self.model.name))))
    with caplog.at_level(logging.WARNING, logger="scorers.preselect"), pytest.raises(ModelLoadError):
        preselect.run_training(cfg)
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []


def test_benchmark_command_shows_standard_errors_and_warns(tmp_path, monkeypatch, caplog):
    from typer.testing import CliRunner

    from cli.main import app

    config = tmp_path / "preselect.yaml"
    _mmlu(tmp_path / "mmlu.jsonl", "AAABBCCCCC")
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "documents": {"paths": [str(tmp_path / "docs/*.parquet")]},
                "models": [
                    {"name": "a", "path": "/nowhere/a"},
                    {"name": "b", "path": "/nowhere/b"},
                    {"name": "g", "path": "/nowhere/g", "benchmark_score": 0.5},
                ],
                "benchmark": {"path": str(tmp_path / "mmlu.jsonl"), "questions": 10},
            }
        )
    )
    monkeypatch.setattr(preselect.LazyEngine, "scorer", property(lambda self: FixedLetterScorer("ab".index(self.model.name))))
    with caplog.at_level(logging.WARNING, logger="scorers.preselect"):
        result = CliRunner().invoke(app, ["preselect", "benchmark", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    # 3 of 10 and 2 of 10 right: se sqrt(0.021) = 0.144914 and sqrt(0.016) = 0.126491
    assert (
        rows["a"]["score"] == 0.3
        and rows["a"]["questions"] == 10
        and rows["a"]["standard_error"] == pytest.approx(0.144914, abs=1e-6)
    )
    assert rows["b"]["source"] == "measured, 10 questions, standard error 0.1265"
    assert rows["g"] == {"model": "g", "score": 0.5, "source": "given"}
    assert any("a +0.100 over b" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
