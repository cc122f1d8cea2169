"""The URL blocklist with its big lists as memory-mapped hash sets decides as datatrove's own
URLFilter does, reason for reason, on URLs built to hit every rule and on real clean URLs; the
second build reads the cached hash sets instead of parsing the lists."""

from __future__ import annotations

import itertools

import pytest
import tldextract
from datatrove.data import Document
from datatrove.pipeline.filters import URLFilter

from curation.quality import _blocklist_cache, build_url_filter
from schemas.config import UrlBlocklistConfig
from warehouse.hashset import StringHashSet


@pytest.fixture(scope="module")
def reference():
    url_filter = URLFilter()
    url_filter.tldextractor = tldextract.TLDExtract(suffix_list_urls=())
    url_filter.download_data()
    return url_filter


def _urls(reference, wiki_urls: list[str]) -> list[str]:
    domains = sorted(itertools.islice(reference.block_listed_domains, 0, 4_000_000, 2_000))
    listed = sorted(itertools.islice(reference.block_listed_url, 0, 20_000, 20))
    banned = sorted(reference.banned_words)[:20]
    soft = sorted(reference.soft_banned_words)
    subwords = sorted(reference.banned_subwords)[:20]
    return (
        [f"http://{d}/page.html" for d in domains]
        + [f"https://shop.{d}/a/b?c=1" for d in domains[:500]]
        + listed
        + [f"https://example.org/{w}/index.html" for w in banned]
        + [f"https://example.org/{a}-{b}.html" for a, b in zip(soft, soft[1:])]
        + [f"https://example.org/{a}.html" for a in soft]
        + [f"https://example.org/x{w}y.html" for w in subwords]
        + wiki_urls
    )


def test_hashed_lists_decide_as_datatrove_does(reference, tmp_path, monkeypatch, wiki_docs):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = UrlBlocklistConfig()
    name, first, _ = build_url_filter(cfg)
    assert (_blocklist_cache(cfg) / "domains.npy").is_file()
    _, second, _ = build_url_filter(cfg)  # from the cache
    assert isinstance(second.__self__.block_listed_domains, StringHashSet)
    assert len(second.__self__.block_listed_domains) == len(reference.block_listed_domains)

    wiki_urls = [f"https://en.wikipedia.org/wiki/{'_'.join(doc.split()[:3])}" for doc in wiki_docs[:300]]
    urls = _urls(reference, wiki_urls)
    expected = [reference.filter(Document(text="x", id=str(i), metadata={"url": u})) for i, u in enumerate(urls)]
    for decide in (first, second):
        assert [decide(Document(text="x", id=str(i), metadata={"url": u})) for i, u in enumerate(urls)] == expected
    reasons = {e[1] if isinstance(e, tuple) else "kept" for e in expected}
    assert reasons == {"domain", "subdomain", "url", "hard_blacklisted", "soft_blacklisted", "blacklisted_subword", "kept"}
