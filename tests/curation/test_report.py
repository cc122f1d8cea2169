"""Reports: the numbers behind each chart against the warehouse, and the pages opened in a real
headless Chromium (Debian's `chromium`, installed by `make browser`) with the network off."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import make_config, write_shard

from curation.mixture.mix import mix
from curation.report import write_report
from curation.report.numbers import ReportError, mixture_numbers, rewrite_numbers, run_numbers
from curation.rewrite.runner import run_rewrite
from curation.runner import run_pipeline
from schemas.mixture import MixtureSpec
from schemas.rewrite import RewriteConfig
from warehouse.warehouse import MIXTURE, REWRITE, RUN, Warehouse

# each tries to mark the page if it runs; shown as text, none may
HOSTILE = [
    "<script>document.body.setAttribute('data-pwned', 'script')</script> buy now",
    "<img src=x onerror=\"document.body.setAttribute('data-pwned', 'img')\"> click",
    "<a href=\"javascript:document.body.setAttribute('data-pwned', 'link')\">free</a> prize",
    "</pre></details><script>document.body.setAttribute('data-pwned', 'breakout')</script>",
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, wiki_docs, spanish_docs) -> Path:
    """A run with every kind of drop (copies, near copies, another language, junk, hostile markup),
    a sentence-shuffle rewrite of it and a mixture over both."""
    root = tmp_path_factory.mktemp("report")
    near = wiki_docs[2].replace(" the ", " the  ", 1).replace(".", ";", 1)
    texts = [*wiki_docs[:20], wiki_docs[0], wiki_docs[1], near, spanish_docs[0], spanish_docs[1], *HOSTILE]
    write_shard(root / "in/0.parquet", {"id": [f"d{i:02d}" for i in range(len(texts))], "text": texts})
    run_pipeline(make_config(root, [str(root / "in/*.parquet")], toxicity={"enabled": False}), run_id="crawl1")
    base = {"rewrite_id": "rw1", "warehouse": str(root / "warehouse.duckdb"), "output_root": str(root / "out")}
    run_rewrite(RewriteConfig.model_validate({**base, "routes": [{"styles": [{"style": "sentence_shuffle"}]}]}))
    mix(
        MixtureSpec.model_validate(
            {
                "mixture_id": "m1",
                "warehouse": str(root / "warehouse.duckdb"),
                "output_root": str(root / "out"),
                "target_tokens": 4000,
                "shard_tokens": 2000,
                "sources": [
                    {"name": "curated", "kind": "documents", "weight": 0.5},
                    {"name": "synthetic", "kind": "synthetic", "weight": 0.5},
                ],
            }
        )
    )
    return root / "warehouse.duckdb"


def _one(wh: Warehouse, sql: str):
    return wh.select(sql).to_pylist()


def test_run_numbers_are_the_warehouses(warehouse):
    wh = Warehouse(warehouse)
    n = run_numbers(wh, "crawl1")
    stats = {
        r["stage"]: r
        for r in _one(
            wh, "SELECT stage, sum(docs_in) AS i, sum(docs_out) AS o FROM stage_stats WHERE run_id = 'crawl1' GROUP BY stage"
        )
    }
    assert [s["stage"] for s in n["stages"]][:3] == ["ingest", "exact_dedup", "near_dedup"]
    assert {s["stage"]: (s["docs_in"], s["docs_out"]) for s in n["stages"]} == {k: (v["i"], v["o"]) for k, v in stats.items()}
    kept_words = _one(wh, "SELECT sum(n_words) AS w FROM documents WHERE run_id = 'crawl1'")[0]["w"]
    pii_dropped = _one(wh, "SELECT coalesce(sum(n_words), 0) AS w FROM rejected WHERE stage = 'pii'")[0]["w"]
    assert n["stages"][-1]["words_out"] == kept_words and n["stages"][-2]["words_out"] == kept_words + pii_dropped
    first_dropped = _one(wh, "SELECT sum(n_words) AS w FROM rejected WHERE stage <> 'ingest'")[0]["w"]
    assert n["stages"][0]["words_out"] == kept_words + first_dropped
    counts = {
        (r["stage"], r["reason"]): r["n"] for r in _one(wh, "SELECT stage, reason, count(*) AS n FROM rejected GROUP BY ALL")
    }
    assert {(r["stage"], r["reason"]): r["docs"] for r in n["reasons"]} == counts
    for reason in n["reasons"]:
        assert 1 <= len(reason["examples"]) <= min(3, reason["docs"])
        assert all((e["stage"], e["reason"]) == (reason["stage"], reason["reason"]) for e in reason["examples"])
    duplicates = [e for r in n["reasons"] for e in r["examples"] if e["duplicate_of"]]
    assert duplicates and all(e["duplicate_of"] in n["duplicated"] for e in duplicates)
    near = counts.get(("near_dedup", "near_duplicate"), 0)
    assert near >= 1 and sum((c["size"] - 1) * c["clusters"] for c in n["near_duplicate_clusters"]) == near
    languages = {r["language"]: (r["kept"], r["dropped"]) for r in n["languages"]}
    assert languages["es"] == (0, 2) and languages["en"][0] == len(_one(wh, "SELECT 1 FROM documents WHERE language = 'en'"))
    scored = _one(
        wh,
        "SELECT count(toxicity_score) AS n FROM (SELECT toxicity_score FROM documents UNION ALL SELECT toxicity_score FROM rejected)",
    )
    assert sum(n["toxicity"]["histogram"]["counts"]) == scored[0]["n"]
    assert n["toxicity"]["threshold"] == 0.01 and sum(n["preselect"]["histogram"]["counts"]) == 0
    with pytest.raises(ReportError, match="no run 'nope'"):
        run_numbers(wh, "nope")


def test_rewrite_and_mixture_numbers_are_the_warehouses(warehouse):
    wh = Warehouse(warehouse)
    rw = rewrite_numbers(wh, "rw1")
    accepted = _one(wh, "SELECT count(*) AS n FROM synthetic WHERE rewrite_id = 'rw1'")[0]["n"]
    assert rw["styles"] == [
        {"style": "sentence_shuffle", "accepted": accepted, "rejected": 0, "tokens_out": rw["styles"][0]["tokens_out"]}
    ]
    for record in rw["records"]:  # the chunk shown beside a shuffle holds the same sentences
        assert sorted(record["chunk"].split()) == sorted(record["text"].split())
    m = mixture_numbers(wh, "m1")
    tokens = {r["source"]: r["t"] for r in _one(wh, "SELECT source, sum(tokens) AS t FROM mixture_records GROUP BY source")}
    assert {s["source"]: s["tokens"] for s in m["sources"]} == tokens
    assert sum(p["tokens"] for p in m["parts"]) == m["totals"]["tokens"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("the browser tests need Debian's chromium: `make browser` (apt-get install chromium)")


def _open(page: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the console messages, with every host unresolvable."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=20000",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2400",
    ]
    target = page.resolve().as_uri()
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", target], capture_output=True, text=True, timeout=120)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot is not None:
        subprocess.run([_chromium(), *flags, f"--screenshot={screenshot}", target], capture_output=True, timeout=120)
    return dom.stdout, console


def test_the_console_check_sees_a_script_error(tmp_path):
    """What the page tests rely on: a thrown error reaches the console lines."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>throw new Error('boom')</script></body></html>")
    _, console = _open(page)
    assert any("Uncaught Error: boom" in line for line in console)


@pytest.mark.parametrize("kind,job", [(RUN, "crawl1"), (REWRITE, "rw1"), (MIXTURE, "m1")])
def test_pages_render_their_charts_offline_and_run_no_document_text(warehouse, tmp_path, kind, job):
    page = write_report(warehouse, kind, job, tmp_path / f"{kind}.html")
    html = page.read_text(encoding="utf-8")
    # nothing loaded from elsewhere: no script or link tag with a source, no network URL in the markup
    # (plotly.js itself holds URLs in strings, for features these pages do not use)
    assert not re.search(r"<(?:script|link|img|iframe)[^>]*\b(?:src|href)\s*=", html, re.I)
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S | re.I)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", markup), "the page references the network"
    assert page.stat().st_size < 6_000_000
    shot = tmp_path / f"{kind}.png"
    dom, console = _open(page, shot)
    charts = re.findall(r'<div id="chart-\d+" class="([^"]*)"', dom)
    assert charts and all("js-plotly-plot" in c for c in charts), charts  # every chart drawn by plotly
    assert dom.count('class="main-svg"') >= len(charts)
    assert not [line for line in console if "Uncaught" in line or "rror" in line], console
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-pwned" not in body
    assert shot.stat().st_size > 20_000
    if kind == RUN:  # the hostile documents among the examples are there as text
        shown = [
            e["text"] for r in run_numbers(Warehouse(warehouse), job)["reasons"] for e in r["examples"] if e["text"] in HOSTILE
        ]
        assert len(shown) >= 2
        for text in shown:
            assert text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in dom
        # as elements they would start with "<"; as text they start with "&lt;"
        assert not re.search(r"<a\s[^>]*href=.javascript:", dom, re.I) and not re.search(r"<img\s[^>]*onerror", dom, re.I)
        for section in ("Funnel", "Why documents were dropped", "Near-duplicate clusters", "Languages", "Scores"):
            assert f"<h2>{section}</h2>" in dom
