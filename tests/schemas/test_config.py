from pathlib import Path

import pytest

from schemas.config import DEFAULT_CONFIG_YAML, ConfigError, RunConfig, config_from_dict, load_config


def test_default_config_text_loads_and_matches_the_model_defaults(tmp_path):
    path = tmp_path / "curate.yaml"
    path.write_text(DEFAULT_CONFIG_YAML)
    cfg = load_config(path)
    assert cfg.input.paths == [str(tmp_path / "data/*.parquet")]
    defaults = RunConfig(input={"paths": ["x"]})
    for section in ("ingest", "exact_dedup", "near_dedup", "quality", "language", "toxicity", "pii", "execution"):
        assert getattr(cfg, section) == getattr(defaults, section), section


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("input:\n  paths: [a.parquet]\nnear_dedup:\n  n_gram: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "near_dedup.n_gram: unknown key" in str(err.value)
    assert str(path) in str(err.value)


def test_bad_value_is_named():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"input": {"paths": ["a"]}, "language": {"min_score": 2}})
    assert "language.min_score" in str(err.value)


def test_missing_input_paths_is_named():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"output": {"root": "x"}})
    assert "input: Field required" in str(err.value)


def test_unknown_datatrove_filter_parameter_is_named():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"input": {"paths": ["a"]}, "quality": {"c4": {"params": {"min_sentences": 3}}}})
    message = str(err.value)
    assert "quality.c4.params" in message and "min_sentences" in message and "min_num_sentences" in message


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text("input:\n  paths: [data/*.parquet, 's3://bucket/x/*.parquet']\nwarehouse:\n  path: wh.duckdb\n")
    cfg = load_config(path)
    assert cfg.input.paths == [str(path.parent / "data/*.parquet"), "s3://bucket/x/*.parquet"]
    assert Path(cfg.warehouse.path) == path.parent / "wh.duckdb"


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_allowing_a_language_the_quality_rules_cannot_judge_is_an_error_naming_it(tmp_path):
    base = {"input": {"paths": ["a"]}, "language": {"allowed": ["en", "fr", "de", "sw"]}}
    with pytest.raises(ConfigError) as err:
        config_from_dict(base)
    message = str(err.value)
    assert "language.allowed lists de, sw" in message and "no settings for de, sw" in message
    assert "curate calibrate REFERENCE --language de" in message and "gopher_enough_stop_words" in message
    # each way out the message names is accepted
    (tmp_path / "de.yaml").write_text("word_tokenizer: de\ngopher_quality: {params: {stop_words: [der, die, und]}}\n")
    (tmp_path / "sw.yaml").write_text("gopher_quality: {params: {stop_words: [na, ya, wa]}}\n")
    languages = {"de": str(tmp_path / "de.yaml"), "sw": str(tmp_path / "sw.yaml")}
    chosen = config_from_dict({**base, "quality": {"languages": languages}})
    assert chosen.quality.for_language("de").gopher_quality.params["stop_words"] == ["der", "die", "und"]
    assert chosen.quality.for_language("sw").word_tokenizer == "sw"
    config_from_dict({**base, "quality": {"gopher_quality": {"enabled": False}}})
    config_from_dict({**base, "quality": {"enabled": False}})
    config_from_dict({**base, "language": {"allowed": ["en", "fr", "es"]}})  # both bundled
    with pytest.raises(ConfigError, match="language.allowed is empty"):
        config_from_dict({**base, "language": {"allowed": []}})
    with pytest.raises(ConfigError, match=r"quality.languages.de: cannot read"):
        config_from_dict({**base, "quality": {"languages": {"de": str(tmp_path / "missing.yaml")}}})


def test_the_premise_english_stop_words_drop_french_wikipedia(assets):
    """What the error above prevents: the default quality rules on clean French articles."""
    import json

    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter

    data = json.loads((assets / "wiki" / "summaries_fr-fr.json").read_text())
    texts = [e["extract"] for e in data.values() if len(e["extract"].split()) > 60][:200]
    gopher = GopherQualityFilter()
    dropped = [gopher.filter(Document(text=t, id=str(i))) for i, t in enumerate(texts)]
    stop_word_drops = sum(isinstance(d, tuple) and d[1] == "gopher_enough_stop_words" for d in dropped)
    kept = sum(d is True for d in dropped)
    assert len(texts) == 200 and kept < 0.05 * len(texts) and stop_word_drops > 0.5 * len(texts)
