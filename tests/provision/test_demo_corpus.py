"""The demo corpus: layout, schema, determinism and that its planted problems are real."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from provision.assets import AssetFetchError, fetch_assets
from provision.demo_corpus import BLOCKLISTED_DOMAINS, PLANTED_KINDS, SCHEMA, DemoCorpus, build_demo_corpus
from scorers import assets as assets_mod
from scorers.assets import asset_path, assets_dir

EXACT_KINDS = ("exact_dup", "exact_dup_case_ws", "recrawl_exact_dup")
NEAR_KINDS = ("near_dup", "recrawl_near_dup")


def norm(text: str) -> str:
    """Whitespace and letter case do not count."""
    return re.sub(r"\s+", " ", text.casefold()).strip()


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


@pytest.fixture(scope="session")
def asset_root() -> Path:
    try:
        return fetch_assets()
    except (AssetFetchError, OSError) as exc:
        pytest.skip(f"offline assets unavailable and could not be fetched ({exc}); run `make assets`")


@pytest.fixture(scope="module")
def built(asset_root, tmp_path_factory):
    first = tmp_path_factory.mktemp("demo_a")
    second = tmp_path_factory.mktemp("demo_b")
    return (
        first,
        build_demo_corpus(first, assets=asset_root, seed=0),
        second,
        build_demo_corpus(second, assets=asset_root, seed=0),
    )


@pytest.fixture(scope="module")
def corpus(built) -> tuple[Path, DemoCorpus]:
    return built[0], built[1]


@pytest.fixture(scope="module")
def all_rows(corpus) -> dict[tuple[str, int], dict]:
    out_dir, _ = corpus
    table = {}
    for path in sorted(out_dir.glob("crawl[12]/*.parquet")):
        for i, row in enumerate(pq.read_table(path).to_pylist()):
            table[(f"{path.parent.name}/{path.name}", i)] = row
    return table


@pytest.fixture(scope="module")
def rows(all_rows, truth) -> dict[tuple[str, int], dict]:
    """Every document with a text to look at: the planted broken-text rows left out."""
    broken = {(r["file"], r["row"]) for r in planted_of(truth, "broken_text")}
    return {k: v for k, v in all_rows.items() if k not in broken}


def test_broken_text_rows(all_rows, truth):
    texts = [all_rows[(r["file"], r["row"])]["text"] for r in planted_of(truth, "broken_text")]
    assert None in texts and "" in texts
    assert all(t is None or not t.replace("\x00", "").replace("\x01", "").replace("\x02", "").strip() for t in texts)


@pytest.fixture(scope="module")
def truth(corpus) -> dict:
    out_dir, _ = corpus
    return json.loads((out_dir / "planted.json").read_text(encoding="utf-8"))


def planted_of(truth: dict, *kinds: str) -> list[dict]:
    return [r for r in truth["planted_docs"] if r["kind"] in kinds]


def at(rows: dict, where: dict) -> dict:
    row = rows[(where["file"], where["row"])]
    assert row["id"] == where["id"]
    return row


# --------------------------------------------------------------------------- layout and schema


def test_layout(corpus):
    out_dir, demo = corpus
    assert [p.relative_to(out_dir).as_posix() for p in demo.crawl1] == [f"crawl1/part-0000{i}.parquet" for i in range(4)]
    assert [p.relative_to(out_dir).as_posix() for p in demo.crawl2] == [f"crawl2/part-0000{i}.parquet" for i in range(2)]
    sizes1 = [pq.ParquetFile(p).metadata.num_rows for p in demo.crawl1]
    sizes2 = [pq.ParquetFile(p).metadata.num_rows for p in demo.crawl2]
    assert all(200 <= n <= 300 for n in sizes1), sizes1
    assert all(120 <= n <= 180 for n in sizes2), sizes2
    assert not list(out_dir.rglob(".*tmp*")), "temporary files left behind"


def test_schema(corpus):
    _, demo = corpus
    for path in demo.crawl1 + demo.crawl2:
        schema = pq.read_schema(path)
        assert schema.names == ["id", "text", "url", "source", "crawl_date", "http_status"]
        assert schema.field("id").type == pa.string()
        assert schema.field("text").type == pa.string()
        assert schema.field("url").type == pa.string()
        assert schema.field("source").type == pa.string()
        assert schema.field("crawl_date").type == pa.timestamp("us", tz="UTC")
        assert schema.field("http_status").type == pa.int32()
        assert schema.remove_metadata().equals(SCHEMA)
        table = pq.read_table(path)
        for name in schema.names:
            if name != "text":  # planted broken_text rows include a null text
                assert table[name].null_count == 0, name


def test_crawl2_is_later(rows):
    c1 = max(r["crawl_date"] for (f, _), r in rows.items() if f.startswith("crawl1/"))
    c2 = min(r["crawl_date"] for (f, _), r in rows.items() if f.startswith("crawl2/"))
    assert c1 < c2


def test_deterministic(built):
    first, demo_a, second, demo_b = built
    assert demo_a.planted == demo_b.planted
    for a, b in zip(demo_a.crawl1 + demo_a.crawl2, demo_b.crawl1 + demo_b.crawl2, strict=True):
        assert a.relative_to(first) == b.relative_to(second)
        assert pq.read_table(a).equals(pq.read_table(b)), a.name
    assert (first / "planted.json").read_text() == (second / "planted.json").read_text()


def test_other_seed_differs(asset_root, corpus, tmp_path):
    _, demo = corpus
    other = build_demo_corpus(tmp_path, assets=asset_root, seed=1)
    assert not pq.read_table(other.crawl1[0]).equals(pq.read_table(demo.crawl1[0]))


def test_documents_are_real_sized(rows):
    sizes = [len(r["text"]) for r in rows.values()]
    assert 1200 <= len(sizes) <= 1400
    assert 1000 <= sum(sizes) / len(sizes) <= 5000  # "a few KB", junk included


# --------------------------------------------------------------------------- planted problems


def test_every_planted_kind_present(corpus, truth):
    _, demo = corpus
    assert tuple(demo.planted) == PLANTED_KINDS
    assert all(n > 0 for n in demo.planted.values()), demo.planted
    assert Counter(r["kind"] for r in truth["planted_docs"]) == Counter(demo.planted)
    assert truth["planted"] == demo.planted


def test_exact_duplicates_match_after_normalisation(rows, truth):
    records = planted_of(truth, *EXACT_KINDS)
    assert records
    for r in records:
        copy, original = at(rows, r), at(rows, r["original"])
        assert norm(copy["text"]) == norm(original["text"]), r
        if r["kind"] == "exact_dup_case_ws":
            assert copy["text"] != original["text"]
        else:
            assert copy["text"] == original["text"]
        if r["kind"] == "recrawl_exact_dup":
            assert r["file"].startswith("crawl2/") and r["original"]["file"].startswith("crawl1/")
            assert copy["url"] == original["url"] and copy["crawl_date"] > original["crawl_date"]
        else:  # a copy elsewhere in the same crawl, in another shard
            assert r["file"] != r["original"]["file"] and r["file"].startswith("crawl1/")


def test_exact_duplicates_are_only_the_planted_ones(rows, truth):
    planted = {(r["file"], r["row"]) for r in planted_of(truth, *EXACT_KINDS)}
    groups = Counter(norm(r["text"]) for r in rows.values())
    extra = [key for key, r in rows.items() if groups[norm(r["text"])] > 1 and key not in planted]
    # Every remaining member of a duplicate group is the original of a planted copy.
    originals = {(r["original"]["file"], r["original"]["row"]) for r in planted_of(truth, *EXACT_KINDS)}
    assert set(extra) <= originals


def test_near_duplicates(rows, truth):
    records = planted_of(truth, *NEAR_KINDS)
    assert records
    for r in records:
        copy, original = at(rows, r)["text"], at(rows, r["original"])["text"]
        assert norm(copy) != norm(original)
        a, b = shingles(copy), shingles(original)
        assert len(a & b) / len(a | b) >= 0.9, r
        # The edit touches at most 2% of the words.
        changed = sum((Counter(copy.split()) - Counter(original.split())).values())
        assert changed <= max(1, 0.02 * len(original.split())), r
        if r["kind"] == "recrawl_near_dup":
            assert at(rows, r)["url"] == at(rows, r["original"])["url"]


def test_ids_unique_except_planted(rows, truth):
    ids = Counter(r["id"] for r in rows.values())
    repeated = {i for i, n in ids.items() if n > 1}
    dup_records = planted_of(truth, "duplicate_id")
    assert repeated == {r["id"] for r in dup_records}
    for r in dup_records:
        assert ids[r["id"]] == 2
        assert r["file"].startswith("crawl1/") and r["original"]["file"].startswith("crawl1/")
        assert at(rows, r)["text"] != at(rows, r["original"])["text"]


def test_blocklisted_urls(rows, truth):
    records = planted_of(truth, "blocklisted_url")
    assert records
    for r in records:
        assert re.match(r"https?://([^/]+)/", at(rows, r)["url"]).group(1) in BLOCKLISTED_DOMAINS
    others = [r["url"] for key, r in rows.items() if key not in {(x["file"], x["row"]) for x in records}]
    assert not any(d in url for url in others for d in BLOCKLISTED_DOMAINS)


def test_blocklisted_domains_are_on_datatroves_list():
    pytest.importorskip("datatrove")
    import tarfile

    from datatrove.utils._import_utils import ASSETS_PATH

    with tarfile.open(Path(ASSETS_PATH) / "url_filterblacklistsv0_3_0.tar.gz", "r:gz") as tar:
        data = b"\n" + tar.extractfile("domains").read()
    for domain in BLOCKLISTED_DOMAINS:
        assert b"\n" + domain.encode() + b"\n" in data, domain


def test_pii(rows, truth):
    records = planted_of(truth, "pii")
    email = re.compile(r"\b[\w.]+@example\.(?:com|org|net)\b")
    phone = re.compile(r"\+1 \d{3} 555 01\d\d|\(\d{3}\) 555-01\d\d|\+44 20 7946 0\d{3}")
    ipv4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
    found = Counter()
    for r in records:
        text = at(rows, r)["text"]
        hits = {name for name, rx in (("email", email), ("phone", phone), ("ip", ipv4)) if rx.search(text)}
        assert hits, r
        found.update(hits)
    assert set(found) == {"email", "phone", "ip"}
    # Nothing else carries PII of that shape.
    pii_keys = {(r["file"], r["row"]) for r in records}
    for key, row in rows.items():
        if key not in pii_keys:
            assert not email.search(row["text"]) and not phone.search(row["text"]), key


def test_offensive_documents_use_ldnoobw_words(asset_root, rows, truth):
    lines = asset_path("ldnoobw/en.txt", asset_root).read_text(encoding="utf-8").splitlines()
    words = [w.strip().lower() for w in lines if w.strip() and not w.startswith("#")]
    rx = re.compile(r"(?:\W|^)({})(?:\W|$)".format("|".join(map(re.escape, words))))
    for r in planted_of(truth, "offensive"):
        text = at(rows, r)["text"].lower()
        assert len({m.group(1) for m in rx.finditer(text)}) >= 3 or len(rx.findall(text)) >= 3, r


def test_good_documents_look_like_real_pages(rows, truth):
    planted = {(r["file"], r["row"]) for r in truth["planted_docs"]}
    good = [r for key, r in rows.items() if key not in planted]
    assert len(good) > 800
    for r in good:
        text = r["text"]
        assert len(text.split()) >= 50, r["url"]
        assert len(re.findall(r"[.!?][\"'\u201d)]*(?:\s|$)", text)) >= 5, r["url"]
        for line in text.splitlines():
            if line.strip():
                assert line.rstrip().endswith((".", "!", "?", '"', "'", "\u201d")), (r["url"], line)
        assert "{" not in text and "lorem ipsum" not in text.lower()


# --------------------------------------------------------------------------- assets helpers


def test_missing_assets_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="make assets"):
        asset_path("lid.176.ftz", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="make assets"):
        build_demo_corpus(tmp_path / "out", assets=tmp_path / "no-assets")


def test_assets_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CURATE_ASSETS_DIR", str(tmp_path))
    assert assets_dir() == tmp_path
    monkeypatch.delenv("CURATE_ASSETS_DIR")
    assert assets_dir() == Path(assets_mod.__file__).resolve().parents[1] / "assets"


def test_fetch_assets_is_idempotent(asset_root, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("fetch_assets ran a command although the assets are complete")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert fetch_assets(asset_root) == asset_root
    manifest = json.loads((asset_root / "MANIFEST.json").read_text(encoding="utf-8"))
    paths = {f["path"] for f in manifest["files"]}
    assert {"lid.176.ftz", "ldnoobw/en.txt", "wiki/summaries_en-us.json", "nlp-corpus/doc-0.json"} <= paths
    assert all(f["sha256"] and f["license"] and "==" in f["source"] for f in manifest["files"])


def test_the_multilingual_crawl_has_clean_pages_and_junk_in_each_language(corpus):
    from provision.demo_corpus import MULTILINGUAL_JUNK, MULTILINGUAL_LANGUAGES, MULTILINGUAL_PAGES
    from scorers.language_id import model_path, predict_languages

    out_dir, demo = corpus
    truth = json.loads((out_dir / "planted.json").read_text(encoding="utf-8"))["multilingual"]
    rows = pq.read_table(demo.multilingual[0]).to_pylist()
    junk = {j["row"]: j["kind"] for j in truth["junk"]}
    assert sorted(junk.values()) == sorted(f"{k}_{lang}" for k in MULTILINGUAL_JUNK for lang in MULTILINGUAL_LANGUAGES)
    clean = [r for i, r in enumerate(rows) if i not in junk]
    assert len(clean) == MULTILINGUAL_PAGES * len(MULTILINGUAL_LANGUAGES)
    detected = Counter(lang for lang, _ in predict_languages([r["text"] for r in clean], model_path(None)))
    assert detected == dict.fromkeys(MULTILINGUAL_LANGUAGES, MULTILINGUAL_PAGES)
    assert all(len(r["text"].split()) >= 50 for r in clean)
