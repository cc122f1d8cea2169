"""`curate mix` over a real warehouse (a curation run, a model-free rewrite) and a real replay file:
shares, epochs, determinism, the source-document rule, the token cache, lineage, and bad specs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import make_config, write_shard

from curation.mixture.manifest import ManifestError, load_manifest, verify_manifest
from curation.mixture.mix import mix, mixture_dir
from curation.mixture.select import MixtureError
from curation.mixture.shuffle import spill_by_bucket
from curation.rewrite.runner import run_rewrite
from curation.runner import run_pipeline
from schemas import progress
from schemas.config import ConfigError, load_mixture_spec
from schemas.mixture import MixtureSpec
from schemas.rewrite import RewriteConfig
from scorers.tokens import load_tokenizer
from warehouse.warehouse import Warehouse

NO_FILTERS = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}


@pytest.fixture(scope="module")
def warehouse_root(tmp_path_factory, wiki_docs) -> Path:
    """One curation run of 40 real documents, a sentence-shuffle rewrite of them, and a replay file."""
    root = tmp_path_factory.mktemp("mix")
    write_shard(root / "in/0.parquet", {"id": [f"d{i:02d}" for i in range(40)], "text": wiki_docs[:40]})
    run_pipeline(make_config(root, [str(root / "in/*.parquet")], **NO_FILTERS), run_id="crawl1")
    rewrite = {"rewrite_id": "rw1", "warehouse": str(root / "warehouse.duckdb"), "output_root": str(root / "out")}
    run_rewrite(RewriteConfig.model_validate({**rewrite, "routes": [{"styles": [{"style": "sentence_shuffle"}]}]}))
    write_shard(root / "replay/sample.parquet", {"text": wiki_docs[100:160]})
    return root


def spec(root: Path, mixture_id: str = "m", **overrides) -> MixtureSpec:
    data = {
        "mixture_id": mixture_id,
        "warehouse": str(root / "warehouse.duckdb"),
        "output_root": str(root / "out"),
        "target_tokens": 60_000,
        "shard_tokens": 8_000,
        "decontamination": {"enabled": False},
        "sources": [
            {"name": "curated", "kind": "documents", "weight": 0.45, "runs": ["crawl1"], "where": "n_words > 380"},
            {"name": "synthetic", "kind": "synthetic", "weight": 0.45, "styles": ["sentence_shuffle"]},
            {"name": "replay", "kind": "replay", "weight": 0.10, "paths": [str(root / "replay/sample.parquet")]},
        ],
        **overrides,
    }
    return MixtureSpec.model_validate(data)


def shard_bytes(manifest_path: str) -> dict[str, bytes]:
    root = Path(manifest_path).parent
    return {p.name: p.read_bytes() for p in sorted(root.glob("shard-*.parquet"))}


def rows(root: Path, sql: str) -> list[dict]:
    cols, values = Warehouse(root / "warehouse.duckdb").query(sql)
    return [dict(zip(cols, v)) for v in values]


def test_mixture_meets_its_shares_within_one_record_and_verifies(warehouse_root):
    summary = mix(spec(warehouse_root, "shares"))
    manifest = load_manifest(summary["manifest"])
    assert manifest["totals"]["tokens"] == sum(s["tokens"] for s in manifest["sources"].values())
    table = pq.read_table([Path(summary["manifest"]).parent / s["path"] for s in manifest["shards"]])
    longest = max(table.column("tokens").to_pylist())
    for name, source in manifest["sources"].items():
        assert source["requested_tokens"] <= source["tokens"] < source["requested_tokens"] + longest, name
        assert source["epochs"] <= 4
    # the selected documents are too few for 27,000 tokens: whole passes plus a partial one, epochs counted from 0
    curated = manifest["sources"]["curated"]
    assert curated["epochs"] > 1 and curated["records"] > curated["unique_records"]
    # training order: positions 0..n-1 across shards in manifest order
    assert table.column("position").to_pylist() == list(range(table.num_rows))
    # every record's tokens are what the tokenizer says, eos included
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    assert table.column("tokens").to_pylist() == tokenizer.count_batch(table.column("text").to_pylist())
    assert verify_manifest(summary["manifest"])["tokens"] == manifest["totals"]["tokens"]
    # shards (all but the last) close at their token size
    assert all(s["tokens"] >= 8_000 for s in manifest["shards"][:-1])


def test_mixture_records_join_back_to_their_documents_and_lineage_names_them(warehouse_root):
    mix(spec(warehouse_root, "lineage"))
    joined = rows(
        warehouse_root,
        """SELECT count(*) AS n, count(d.doc_id) AS found FROM mixture_records m
           LEFT JOIN documents d USING (run_id, doc_id) WHERE m.mixture_id = 'lineage' AND m.source_kind = 'documents'""",
    )[0]
    assert joined["n"] > 0 and joined["n"] == joined["found"]
    synthetic = rows(
        warehouse_root,
        """SELECT count(*) AS n, count(s.record_id) AS found FROM mixture_records m
           LEFT JOIN synthetic s USING (record_id) WHERE m.mixture_id = 'lineage' AND m.source_kind = 'synthetic'""",
    )[0]
    assert synthetic["n"] > 0 and synthetic["n"] == synthetic["found"]
    manifest = load_manifest(warehouse_root / "out/mixtures/lineage")
    assert manifest["lineage"]["runs"] == ["crawl1"] and manifest["lineage"]["rewrite_ids"] == ["rw1"]
    assert [s["style"] for s in manifest["lineage"]["styles"]] == ["sentence_shuffle"]
    assert manifest["tokenizer"]["eos_token"] == "<|im_end|>" and len(manifest["tokenizer"]["sha256"]) == 64
    assert rows(warehouse_root, "SELECT status, tokens FROM mixtures WHERE mixture_id = 'lineage'")[0] == {
        "status": "completed",
        "tokens": manifest["totals"]["tokens"],
    }


def test_synthetic_records_of_unselected_documents_are_left_out_unless_asked(warehouse_root):
    summary = mix(spec(warehouse_root, "rule"))
    selected = {
        r["doc_id"] for r in rows(warehouse_root, "SELECT doc_id FROM documents WHERE run_id = 'crawl1' AND n_words > 380")
    }
    assert 0 < len(selected) < 40  # the `where` really excludes some documents
    used = {
        r["doc_id"]
        for r in rows(warehouse_root, "SELECT doc_id FROM mixture_records WHERE mixture_id = 'rule' AND source = 'synthetic'")
    }
    assert used and used <= selected
    synthetic_docs = [r["doc_id"] for r in rows(warehouse_root, "SELECT doc_id FROM synthetic WHERE rewrite_id = 'rw1'")]
    assert summary["sources"]["synthetic"]["unselected_source_records"] == sum(d not in selected for d in synthetic_docs)

    knob = spec(warehouse_root, "rule-off")
    knob.sources[1].include_unselected_sources = True
    knob.target_tokens = 80_000
    mix(knob)
    used = {
        r["doc_id"]
        for r in rows(warehouse_root, "SELECT doc_id FROM mixture_records WHERE mixture_id = 'rule-off' AND source = 'synthetic'")
    }
    assert used - selected


def test_same_spec_gives_the_same_bytes_and_another_seed_another_order(warehouse_root):
    first = mix(spec(warehouse_root, "det"))
    before = shard_bytes(first["manifest"])
    manifest_before = Path(first["manifest"]).read_bytes()
    again = mix(spec(warehouse_root, "det"), force=True)
    assert shard_bytes(again["manifest"]) == before
    assert Path(again["manifest"]).read_bytes() == manifest_before  # no timestamp: the times are the warehouse's
    reseeded = mix(spec(warehouse_root, "det2", seed=7))
    assert shard_bytes(reseeded["manifest"]) != before


def test_the_shuffle_buffer_changes_how_the_shards_are_made_not_their_bytes(warehouse_root, monkeypatch):
    import curation.mixture.mix as mixing

    buckets = []

    def counted(batches, path):
        pieces = spill_by_bucket(batches, path)
        buckets.append(len(pieces))
        return pieces

    monkeypatch.setattr(mixing, "spill_by_bucket", counted)
    whole = mix(spec(warehouse_root, "buffer"))
    reference = shard_bytes(whole["manifest"])
    spilled = mix(spec(warehouse_root, "buffer", shuffle_buffer_mb=0.01), force=True)  # ~10 KB of text per bucket
    assert buckets[0] == 1 and buckets[1] > 10
    assert shard_bytes(spilled["manifest"]) == reference
    assert spilled["spec_hash"] == whole["spec_hash"]


def test_an_interrupted_mix_leaves_no_mixture_and_the_rerun_gives_the_same_bytes(warehouse_root):
    reference = shard_bytes(mix(spec(warehouse_root, "kill-ref"))["manifest"])

    class Interrupt(progress.Reporter):
        def stage_started(self, stage, total_shards):
            if stage == "mix: tokens":
                raise KeyboardInterrupt  # what Ctrl-C raises mid-mix

        def shard_done(self, *args):
            pass

    progress.set_reporter(Interrupt())
    try:
        with pytest.raises(KeyboardInterrupt):
            mix(spec(warehouse_root, "kill"))
    finally:
        progress.set_reporter(None)
    out = warehouse_root / "out/mixtures/kill"
    assert not (out / "manifest.json").exists() and not list(out.glob("shard-*.parquet"))
    assert rows(warehouse_root, "SELECT status FROM mixtures WHERE mixture_id = 'kill'")[0]["status"] == "failed"
    assert not rows(warehouse_root, "SELECT * FROM mixture_records WHERE mixture_id = 'kill'")
    rerun = mix(spec(warehouse_root, "kill"))
    # the mixture id is in every row, so compare the rows but that column
    got = pq.read_table(sorted(Path(rerun["manifest"]).parent.glob("shard-*.parquet"))).drop(["mixture_id"])
    ref = pq.read_table(sorted((warehouse_root / "out/mixtures/kill-ref").glob("shard-*.parquet"))).drop(["mixture_id"])
    assert got.equals(ref) and len(reference) == len(shard_bytes(rerun["manifest"]))


def test_a_second_mixture_over_the_same_records_tokenizes_nothing(warehouse_root, monkeypatch):
    mix(spec(warehouse_root, "cache-a"))
    from scorers.tokens import TrainerTokenizer

    def refuse(self, texts):
        raise AssertionError(f"tokenized {len(texts)} texts again")

    monkeypatch.setattr(TrainerTokenizer, "count_batch", refuse)
    summary = mix(spec(warehouse_root, "cache-b", seed=3))
    assert summary["tokens"] > 0


def test_decontamination_added_to_counted_records_checks_them_all_and_tokenizes_nothing(warehouse_root, wiki_docs, monkeypatch):
    """Token counts cached by a mix without decontamination, verdicts by none: the next mix with it
    streams the texts once for the verdicts alone, and still finds the replay record that holds
    a line of the eval set."""
    mix(spec(warehouse_root, "counted-first", seed=5))
    from scorers.tokens import TrainerTokenizer

    def refuse(self, texts):
        raise AssertionError(f"tokenized {len(texts)} texts again")

    monkeypatch.setattr(TrainerTokenizer, "count_batch", refuse)
    line = " ".join(wiki_docs[100].split()[:30])  # the replay file's first row
    own = warehouse_root / "own-eval.jsonl"
    own.write_text(json.dumps({"text": line}) + "\n")
    checked = mix(
        spec(
            warehouse_root,
            "checked-after",
            seed=5,
            decontamination={"eval_sets": [{"name": "own", "path": str(own), "text_column": "text"}]},
        )
    )
    assert checked["sources"]["replay"]["decontaminated"] == {"own": 1}
    assert checked["sources"]["curated"]["decontaminated"] == {} and checked["sources"]["synthetic"]["decontaminated"] == {}


def test_a_tokenizer_error_in_a_worker_thread_fails_the_mix_with_that_error(warehouse_root, monkeypatch):
    from scorers.tokens import TrainerTokenizer

    def broken(self, texts):
        raise RuntimeError("the tokenizer broke")

    monkeypatch.setattr(TrainerTokenizer, "count_batch", broken)
    # no end-of-document token: another tokenizer identity, so no count is cached yet
    with pytest.raises(RuntimeError, match="the tokenizer broke"):
        mix(spec(warehouse_root, "broken-worker", tokenizer={"append_eos": False}))
    assert rows(warehouse_root, "SELECT status FROM mixtures WHERE mixture_id = 'broken-worker'")[0]["status"] == "failed"
    assert not mixture_dir(spec(warehouse_root, "broken-worker")).joinpath("manifest.json").exists()


def test_sources_computed_as_they_are_selected_tokenize_each_text_once(warehouse_root, wiki_docs, monkeypatch):
    """A source's texts are tokenized while the next is selected; a text the replay file shares
    with the curated documents is still tokenized once, and every candidate gets its count."""
    from scorers.tokens import TrainerTokenizer

    seen: list[str] = []
    count_batch = TrainerTokenizer.count_batch

    def counting(self, texts):
        seen.extend(texts)
        return count_batch(self, texts)

    monkeypatch.setattr(TrainerTokenizer, "count_batch", counting)
    write_shard(warehouse_root / "replay-shared/0.parquet", {"text": wiki_docs[:20] + wiki_docs[200:210]})
    sources = [
        {"name": "curated", "kind": "documents", "weight": 0.5, "runs": ["crawl1"]},
        {"name": "replay", "kind": "replay", "weight": 0.5, "paths": [str(warehouse_root / "replay-shared/0.parquet")]},
    ]
    # another end-of-document token: another tokenizer identity, so nothing is cached for it yet
    summary = mix(
        spec(warehouse_root, "shared-texts", sources=sources, target_tokens=20_000, tokenizer={"eos_token": "<|endoftext|>"})
    )
    assert sorted(seen) == sorted(set(wiki_docs[:40] + wiki_docs[200:210]))
    assert summary["sources"]["replay"]["candidate_records"] == 30


def test_a_source_that_fails_after_others_were_selected_fails_the_mix_with_its_error(warehouse_root, tmp_path):
    missing = tmp_path / "gone.parquet"
    sources = [
        {"name": "curated", "kind": "documents", "weight": 0.5, "runs": ["crawl1"]},
        {"name": "replay", "kind": "replay", "weight": 0.5, "paths": [str(missing)]},
    ]
    with pytest.raises(MixtureError, match=rf"{missing}.*does not exist"):
        mix(spec(warehouse_root, "late-failure", sources=sources))
    assert rows(warehouse_root, "SELECT status FROM mixtures WHERE mixture_id = 'late-failure'")[0]["status"] == "failed"
    assert not mixture_dir(spec(warehouse_root, "late-failure")).joinpath("manifest.json").exists()


def test_a_shard_that_fails_to_write_fails_the_cut_and_leaves_no_file(tmp_path):
    """A write that fails is raised to the caller, and the unfinished shard leaves no file behind,
    temporary or not."""
    import pyarrow as pa

    from curation.mixture.mix import _cut_shards

    rows_without_identity = pa.table({"position": list(range(6)), "text": ["a text"] * 6, "tokens": [5] * 6})
    with pytest.raises(KeyError):
        _cut_shards([rows_without_identity.slice(start, 2) for start in range(0, 6, 2)], tmp_path, shard_tokens=10)
    assert list(tmp_path.iterdir()) == []


def test_a_shard_changed_after_the_manifest_is_an_error_naming_it(warehouse_root):
    summary = mix(spec(warehouse_root, "tamper"))
    shard = sorted(Path(summary["manifest"]).parent.glob("shard-*.parquet"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=shard.name):
        verify_manifest(summary["manifest"])
    aside = shard.rename(shard.with_suffix(".aside"))
    try:
        with pytest.raises(ManifestError, match=f"{shard.name}.*missing"):
            verify_manifest(summary["manifest"])
    finally:
        aside.rename(shard)  # the warehouse views list every registered shard


def test_a_target_beyond_max_epochs_says_what_is_missing_and_which_knob_fixes_it(warehouse_root):
    greedy = spec(warehouse_root, "greedy", target_tokens=2_000_000)
    with pytest.raises(MixtureError, match=r"source 'curated' cannot give .* missing\. Raise max_epochs to"):
        mix(greedy)
    assert rows(warehouse_root, "SELECT status FROM mixtures WHERE mixture_id = 'greedy'")[0]["status"] == "failed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"sources": [{"name": "a", "kind": "documents", "weight": 0.5}, {"name": "b", "kind": "documents", "weight": 0.4}]},
            "sum to 0.9",
        ),
        ({"sources": [{"name": "a", "kind": "tweets", "weight": 1.0}]}, r"sources\.0"),
        (
            {"sources": [{"name": "a", "kind": "documents", "weight": 1.0, "colour": "red"}]},
            r"sources\.0\.documents\.colour: unknown key",
        ),
    ],
)
def test_a_bad_spec_is_an_error_naming_the_key(tmp_path, change, message):
    import yaml

    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump({"mixture_id": "bad", "target_tokens": 100, **change}))
    with pytest.raises(ConfigError, match=message):
        load_mixture_spec(path)


def test_normalize_rescales_weights(tmp_path):
    import yaml

    path = tmp_path / "mix.yaml"
    sources = [{"name": "a", "kind": "documents", "weight": 3}, {"name": "b", "kind": "documents", "weight": 1}]
    path.write_text(yaml.safe_dump({"mixture_id": "n", "target_tokens": 100, "normalize": True, "sources": sources}))
    assert [s.weight for s in load_mixture_spec(path).sources] == [0.75, 0.25]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"name": "curated", "kind": "documents", "weight": 1.0, "where": "no_such_column > 1"},
            r"source 'curated': `where`.*no_such_column",
        ),
        ({"name": "curated", "kind": "documents", "weight": 1.0, "where": "n_words > 1000000"}, "selects no records"),
        ({"name": "curated", "kind": "documents", "weight": 1.0, "runs": ["crawl9"]}, r"no completed run \['crawl9'\]"),
        ({"name": "r", "kind": "replay", "weight": 1.0, "paths": ["/nonexistent/x.parquet"]}, "does not exist"),
    ],
)
def test_a_selection_that_cannot_work_is_an_error_naming_the_source(warehouse_root, source, message):
    with pytest.raises(MixtureError, match=message):
        mix(spec(warehouse_root, "bad-selection", sources=[source]))


def test_a_replay_row_without_text_is_an_error_naming_file_and_row(warehouse_root, tmp_path):
    bad = tmp_path / "replay.jsonl"
    bad.write_text(json.dumps({"text": "fine " * 50}) + "\n" + json.dumps({"body": "no text"}) + "\n")
    with pytest.raises(MixtureError, match=rf"{bad} row 1: 'text' is NoneType"):
        mix(spec(warehouse_root, "bad-replay", sources=[{"name": "r", "kind": "replay", "weight": 1.0, "paths": [str(bad)]}]))


@pytest.mark.parametrize(
    ("texts", "message"),
    [(["fine " * 50, None], r"row 1: 'text' is null, not text"), ([1, 2], r"column 'text' holds int64, not text")],
)
def test_a_parquet_replay_file_without_text_is_an_error_naming_it(warehouse_root, tmp_path, texts, message):
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "replay.parquet"
    pq.write_table(pa.table({"text": texts}), bad)
    with pytest.raises(MixtureError, match=rf"replay file {bad}:? {message}"):
        mix(spec(warehouse_root, "bad-parquet", sources=[{"name": "r", "kind": "replay", "weight": 1.0, "paths": [str(bad)]}]))


def test_a_tokenizer_that_does_not_load_fails_the_job_before_anything_is_written(warehouse_root):
    from scorers.tokens import TokenizerLoadError

    broken = warehouse_root / "broken-tokenizer.json"
    broken.write_text("{not json")
    with pytest.raises(TokenizerLoadError, match="broken-tokenizer.json"):
        mix(spec(warehouse_root, "bad-tok", tokenizer={"path": str(broken)}))
    assert not mixture_dir(spec(warehouse_root, "bad-tok")).exists()
    [job] = rows(warehouse_root, "SELECT status, error FROM mixtures WHERE mixture_id = 'bad-tok'")
    assert job["status"] == "failed" and "broken-tokenizer.json" in job["error"]


def test_an_existing_mixture_is_replaced_only_with_force(warehouse_root):
    mix(spec(warehouse_root, "exists"))
    with pytest.raises(MixtureError, match="already exists.*--force"):
        mix(spec(warehouse_root, "exists"))
    smaller = mix(spec(warehouse_root, "exists", target_tokens=10_000), force=True)
    folder = Path(smaller["manifest"]).parent
    assert sorted(p.name for p in folder.glob("shard-*.parquet")) == [s["path"] for s in load_manifest(folder)["shards"]]
    assert (
        rows(warehouse_root, "SELECT sum(tokens) AS t FROM mixture_records WHERE mixture_id = 'exists'")[0]["t"]
        == smaller["tokens"]
    )


def test_decontamination_removes_planted_eval_passages_and_their_rewrites(tmp_path, wiki_docs, assets):
    """A curated document with an MMLU test question pasted in, and one holding a line of a user's
    own eval set: both removed (with their rewrites), counted per eval set, queryable with the
    n-gram; the clean documents all stay."""
    question = next(
        q["question"]
        for q in map(json.loads, (assets / "mmlu.jsonl").read_text().splitlines()[100:])
        if len(q["question"].split()) > 25
    )
    own_eval = "the committee concluded that the river crossing had been built by engineers from three neighbouring towns in a single summer"
    texts = list(wiki_docs[:12])
    texts[3] = f"{texts[3]}\n\n{question}"
    texts[7] = f"{texts[7]}\n\nAs the records show, {own_eval}."
    write_shard(tmp_path / "in/0.parquet", {"id": [f"d{i:02d}" for i in range(12)], "text": texts})
    run_pipeline(make_config(tmp_path, [str(tmp_path / "in/*.parquet")], **NO_FILTERS), run_id="crawl1")
    rewrite = {"rewrite_id": "rw1", "warehouse": str(tmp_path / "warehouse.duckdb"), "output_root": str(tmp_path / "out")}
    run_rewrite(RewriteConfig.model_validate({**rewrite, "routes": [{"styles": [{"style": "sentence_shuffle"}]}]}))
    (tmp_path / "own.jsonl").write_text(json.dumps({"text": own_eval}) + "\n")
    summary = mix(
        spec(
            tmp_path,
            "clean",
            target_tokens=20_000,
            decontamination={
                "eval_sets": [{"name": "mmlu"}, {"name": "own", "path": str(tmp_path / "own.jsonl"), "text_column": "text"}]
            },
            sources=[
                {"name": "curated", "kind": "documents", "weight": 0.5},
                {"name": "synthetic", "kind": "synthetic", "weight": 0.5},
            ],
        )
    )
    assert summary["sources"]["curated"]["decontaminated"] == {"mmlu": 1, "own": 1}
    removed = rows(tmp_path, "SELECT source, doc_id, eval_set, ngram FROM decontaminated WHERE mixture_id = 'clean' ORDER BY ALL")
    curated = [r for r in removed if r["source"] == "curated"]
    assert [(r["doc_id"], r["eval_set"]) for r in curated] == [("d03", "mmlu"), ("d07", "own")]
    assert all(len(r["ngram"].split()) == 13 for r in removed)
    emitted = {r["doc_id"] for r in rows(tmp_path, "SELECT DISTINCT doc_id FROM mixture_records WHERE mixture_id = 'clean'")}
    assert emitted == {f"d{i:02d}" for i in range(12)} - {"d03", "d07"}
    manifest = load_manifest(summary["manifest"])
    assert [e["name"] for e in manifest["lineage"]["eval_sets"]] == ["mmlu", "own"]


def test_an_eval_set_in_one_language_is_checked_against_records_in_that_language(tmp_path, wiki_docs):
    """A French eval set meets French records and records of unknown language, not English ones;
    an eval set without a language meets every record."""
    from curation.calibration import bundled_reference

    french_eval = (
        "la commission a conclu que le pont sur la rivière avait été construit par des ingénieurs venus de trois "
        "villages voisins en un seul été"
    )
    general_eval = "the committee concluded that the river crossing had been built by engineers from three neighbouring towns"
    english = list(wiki_docs[:6])
    french = bundled_reference("fr").texts[:6]
    english[1] = f"{english[1]}\n\nA French source puts it so: « {french_eval} »."
    french[2] = f"{french[2]}\n\nSelon les archives, {french_eval}."
    french[4] = f"{french[4]}\n\nAn English note: {general_eval} and left."
    texts = english + french
    write_shard(tmp_path / "in/0.parquet", {"id": [f"d{i:02d}" for i in range(len(texts))], "text": texts})
    run_config = make_config(
        tmp_path,
        [str(tmp_path / "in/*.parquet")],
        quality={"enabled": False},
        toxicity={"enabled": False},
        language={"allowed": ["en", "fr"]},
    )
    run_pipeline(run_config, run_id="crawl1")
    languages = {r["doc_id"]: r["language"] for r in rows(tmp_path, "SELECT doc_id, language FROM documents")}
    assert languages["d01"] == "en" and languages["d08"] == "fr" and languages["d10"] == "fr"
    (tmp_path / "fr.jsonl").write_text(json.dumps({"text": french_eval}) + "\n")
    (tmp_path / "general.jsonl").write_text(json.dumps({"text": general_eval}) + "\n")
    write_shard(tmp_path / "replay/unknown.parquet", {"text": [wiki_docs[50], f"{wiki_docs[51]}\n\n{french_eval}."]})
    write_shard(tmp_path / "replay/english.parquet", {"text": [wiki_docs[52], f"{wiki_docs[53]}\n\n{french_eval}."]})
    eval_sets = [
        {"name": "fr_eval", "path": str(tmp_path / "fr.jsonl"), "text_column": "text", "language": "fr"},
        {"name": "general", "path": str(tmp_path / "general.jsonl"), "text_column": "text"},
    ]
    summary = mix(
        spec(
            tmp_path,
            "by-language",
            target_tokens=12_000,
            decontamination={"n_gram": 8, "eval_sets": eval_sets},
            sources=[
                {"name": "curated", "kind": "documents", "weight": 0.8},
                {"name": "unknown", "kind": "replay", "weight": 0.1, "paths": [str(tmp_path / "replay/unknown.parquet")]},
                {
                    "name": "english",
                    "kind": "replay",
                    "weight": 0.1,
                    "paths": [str(tmp_path / "replay/english.parquet")],
                    "language": "en",
                },
            ],
        )
    )
    removed = rows(
        tmp_path, "SELECT source, doc_id, record_id, eval_set FROM decontaminated WHERE mixture_id = 'by-language' ORDER BY ALL"
    )
    assert [(r["source"], r["doc_id"], r["eval_set"]) for r in removed if r["source"] == "curated"] == [
        ("curated", "d08", "fr_eval"),
        ("curated", "d10", "general"),
    ]
    assert [r["record_id"].rsplit("#", 1)[1] for r in removed if r["source"] == "unknown"] == ["1"]
    assert not [r for r in removed if r["source"] == "english"]  # English replay: the French set does not apply
    assert summary["sources"]["curated"]["decontaminated"] == {"fr_eval": 1, "general": 1}
    lineage = load_manifest(summary["manifest"])["lineage"]["eval_sets"]
    assert [(e["name"], e["language"]) for e in lineage] == [("fr_eval", "fr"), ("general", None)]


def test_a_mix_never_imports_pandas(warehouse_root, tmp_path):
    """pyarrow's constructors import pandas on first use (~0.2 s, a large share of a small or
    warm-cache mix): a whole mix, decontamination and a replay source included, in a fresh process,
    builds its arrays without them."""
    (tmp_path / "own.jsonl").write_text(json.dumps({"text": "a sentence nobody wrote into any of these documents"}) + "\n")
    eval_sets = [{"name": "own", "path": str(tmp_path / "own.jsonl"), "text_column": "text"}]
    mixture = spec(warehouse_root, "no-pandas", decontamination={"n_gram": 8, "eval_sets": eval_sets})
    code = f"""
import sys
from curation.mixture.mix import mix
from schemas.mixture import MixtureSpec
mix(MixtureSpec.model_validate_json({mixture.model_dump_json()!r}))
assert "pandas" not in sys.modules, "the mix imported pandas"
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
