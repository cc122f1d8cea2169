"""Per-language quality settings: the bundled calibrated blocks on real text of each language, the
calibration that makes them, and a run that allows en, es and fr together."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from curation.calibration import bundled_reference, calibrate, read_reference
from curation.quality import Quality
from curation.runner import run_pipeline
from schemas.config import BUNDLED_LANGUAGES_DIR, LanguageQuality, QualityConfig
from tests.conftest import curated_rows, make_config, rejected_rows, write_shard

LANGUAGES = ("en", "es", "fr")
SAMPLE = 120  # reference documents per language judged here (the whole reference: README)


def _sample(language: str, n: int = SAMPLE, seed: int = 0) -> list[str]:
    return random.Random(seed).sample(bundled_reference(language).texts, n)


def _junk(text: str) -> dict[str, str]:
    """Junk made of the language's own words: what the heuristic rules exist to drop."""
    sentences = [s.strip() + "." for s in text.replace("\n", " ").split(". ") if len(s.split()) > 6]
    words = [w.strip('.,;:()«»"') for w in text.split() if w.strip('.,;:()«»"').isalpha()]
    return {
        "repeated_lines": "\n".join([sentences[0]] * 30),
        "menu": "\n".join(" ".join(words[i : i + 2]).capitalize() for i in range(0, 120, 2)),
        "keyword_spam": " ".join(words[:3] * 60),
        "fragment": " ".join(text.split()[:25]),
    }


def _quality(languages: list[str]) -> Quality:
    from schemas.config import config_from_dict

    cfg = config_from_dict({"input": {"paths": ["x"]}, "language": {"allowed": languages}})
    stage = Quality(cfg)
    stage.setup()
    return stage


def _verdict(stage: Quality, text: str, language: str):
    row = {"text": text, "doc_id": "d", "url": None, "language": language}
    return stage.check(row)


@pytest.mark.parametrize("language", LANGUAGES)
def test_bundled_blocks_keep_clean_articles_and_drop_junk_in_each_language(language):
    stage = _quality(list(LANGUAGES))
    clean = _sample(language)
    kept = sum(_verdict(stage, text, language) is None for text in clean)
    assert kept >= 0.95 * len(clean), f"{language}: kept {kept} of {len(clean)} clean articles"
    for source in clean[:5]:
        for kind, junk in _junk(source).items():
            assert _verdict(stage, junk, language) is not None, f"{language} {kind} kept: {junk[:80]!r}"


def test_english_rules_on_french_are_what_the_blocks_fix():
    """The premise, through the stage: a French article judged as English is dropped for stop words."""
    stage = _quality(list(LANGUAGES))
    clean = _sample("fr", 40)
    as_english = [_verdict(stage, text, "en") for text in clean]
    assert sum(v is not None and v.reason == "gopher_quality:gopher_enough_stop_words" for v in as_english) > 30
    assert all(_verdict(stage, text, "fr") is None for text in clean[:10])


def test_english_keeps_the_default_block_when_other_languages_are_allowed():
    from schemas.config import config_from_dict

    alone = config_from_dict({"input": {"paths": ["x"]}}).quality
    mixed = config_from_dict({"input": {"paths": ["x"]}, "language": {"allowed": list(LANGUAGES)}}).quality
    assert set(mixed.languages) == {"es", "fr"}  # English has no block unless asked for
    assert mixed.for_language("en") == alone.for_language("en") == alone.for_language(None)
    assert mixed.for_language("en").word_tokenizer == "eng"
    french = mixed.for_language("fr")
    assert french.word_tokenizer == "fr" and "la" in french.gopher_quality.params["stop_words"]
    assert french.gopher_repetition == alone.gopher_repetition  # what the block does not name is the default's


def _without_provenance(block: LanguageQuality) -> dict:
    return block.model_dump(mode="json", exclude={"calibration"}, exclude_none=True)


def test_calibrating_the_bundled_reference_reproduces_the_bundled_block():
    shipped = LanguageQuality.model_validate(yaml.safe_load((BUNDLED_LANGUAGES_DIR / "es.yaml").read_text()))
    again = calibrate(bundled_reference("es"), "es")
    assert _without_provenance(again) == _without_provenance(shipped)
    recorded = {k: v for k, v in shipped.calibration.items() if k != "reference_drop_shares"}
    assert again.calibration == recorded


def test_calibrate_from_a_reference_file_and_run_with_its_block(tmp_path):
    """A user's own reference (the Spanish leads as Parquet): `curate calibrate` writes the block,
    a run config points at it, and the run judges Spanish with it."""
    from typer.testing import CliRunner

    from cli.main import app

    reference = bundled_reference("es")
    pq.write_table(pa.table({"text": reference.texts}), tmp_path / "ref.parquet")
    result = CliRunner().invoke(
        app,
        ["calibrate", str(tmp_path / "ref.parquet"), "--language", "es", "--out", str(tmp_path / "es.yaml"), "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["documents"] == len(reference.texts) and report["kept"] >= 0.99
    written = LanguageQuality.model_validate(yaml.safe_load((tmp_path / "es.yaml").read_text()))
    assert written.calibration["reference"] == str(tmp_path / "ref.parquet")
    assert _without_provenance(written) == _without_provenance(calibrate(reference, "es"))

    refused = CliRunner().invoke(
        app, ["calibrate", str(tmp_path / "ref.parquet"), "--language", "es", "--out", str(tmp_path / "es.yaml")]
    )
    assert refused.exit_code == 1 and "--force" in refused.output

    clean = _sample("es", 12, seed=1)
    junk = list(_junk(clean[0]).values())
    texts = clean + junk
    write_shard(tmp_path / "in/0.parquet", {"id": [f"d{i}" for i in range(len(texts))], "text": texts})
    (tmp_path / "run.yaml").write_text(
        yaml.safe_dump(
            {
                "input": {"paths": ["in/*.parquet"]},
                "output": {"root": "out"},
                "warehouse": {"path": "wh.duckdb"},
                "language": {"allowed": ["es"]},
                "quality": {"languages": {"es": "es.yaml"}},
            }
        )
    )
    from schemas.config import load_config

    cfg = load_config(tmp_path / "run.yaml")
    assert cfg.quality.languages["es"] == written
    summary = run_pipeline(cfg, run_id="es")
    kept = {r["doc_id"] for r in curated_rows(summary)}
    assert kept == {f"d{i}" for i in range(len(clean))}


def test_reference_errors_name_the_file_and_row(tmp_path):
    from curation.calibration import CalibrationError

    (tmp_path / "r.jsonl").write_text('{"text": "Un texte."}\n{"body": "x"}\n')
    with pytest.raises(CalibrationError, match=r"r.jsonl: line 2: no field 'text'"):
        read_reference(tmp_path / "r.jsonl")
    pq.write_table(pa.table({"text": ["Un texte.", None]}), tmp_path / "r.parquet")
    with pytest.raises(CalibrationError, match=r"r.parquet: row 1"):
        read_reference(tmp_path / "r.parquet")
    with pytest.raises(CalibrationError, match="no bundled reference text for 'de'"):
        bundled_reference("de")


def test_a_run_allowing_en_es_fr_keeps_each_languages_articles_and_drops_their_junk(tmp_path, wiki_docs):
    texts, expected_kept = [], set()
    for language in LANGUAGES:
        clean = wiki_docs[30:40] if language == "en" else _sample(language, 10, seed=2)
        for text in clean:
            expected_kept.add(f"d{len(texts)}")
            texts.append(text)
        texts.extend(_junk(clean[0]).values())
    write_shard(tmp_path / "in/0.parquet", {"id": [f"d{i}" for i in range(len(texts))], "text": texts})
    cfg = make_config(tmp_path, [str(tmp_path / "in/*.parquet")], language={"allowed": list(LANGUAGES)})
    summary = run_pipeline(cfg, run_id="three")
    kept = {r["doc_id"]: r for r in curated_rows(summary)}
    assert set(kept) == expected_kept
    assert {r["language"] for r in kept.values()} == set(LANGUAGES)
    dropped = rejected_rows(summary)
    assert len(dropped) == len(texts) - len(expected_kept)
    assert all(r["stage"] in {"quality", "exact_dedup", "near_dedup", "language"} for r in dropped)


def test_quality_config_rejects_a_bad_key_in_a_language_block():
    from schemas.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"quality.languages.fr.*gopher_quality.params"):
        config_from_dict(
            {"input": {"paths": ["x"]}, "quality": {"languages": {"fr": {"gopher_quality": {"params": {"stopwords": ["le"]}}}}}}
        )
    with pytest.raises(ConfigError, match="no word tokenizer for 'xx-nope'"):
        config_from_dict({"input": {"paths": ["x"]}, "quality": {"languages": {"fr": {"word_tokenizer": "xx-nope"}}}})
    with pytest.raises(ConfigError, match="no calibrated block ships for de"):
        config_from_dict({"input": {"paths": ["x"]}, "quality": {"languages": {"de": "bundled"}}})
    assert QualityConfig().for_language("fr") == QualityConfig()  # no block: the default's rules
