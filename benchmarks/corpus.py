"""A deterministic, web-like benchmark corpus built from the offline assets.

Documents are roughly what a crawl hands a curation pipeline:

* articles: English Wikipedia lead sections of one topic (1-4 KB), usually wrapped in site chrome
  (menu lines, breadcrumbs, share buttons, cookie and copyright footers);
* forum threads: messy real sentences from nlp-corpus (SMS, Reddit, reviews) as posts with
  "Posted by" / "Reply" lines;
* repetitive pages: articles with a paragraph or a line repeated many times;
* short junk: 404 pages, menus alone, keyword spam, price tables, one-liners;
* a few Spanish and French articles;
* exact copies (verbatim or differing only in case/whitespace) and near copies (a few words
  changed, a line added) of earlier documents, possibly in earlier shards.

The same (docs, shard_docs, seed) always gives byte-identical shards. Text is written already in
the form ingest produces (NFC, no control characters, no leading/trailing newlines) so that our
pipeline and datatrove see exactly the same text.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scorers.assets import asset_path

SCHEMA = pa.schema([pa.field("id", pa.string()), pa.field("text", pa.string()), pa.field("url", pa.string())])

# kind -> share of generated documents
KIND_WEIGHTS = {
    "article": 0.44,
    "forum": 0.18,
    "repetitive": 0.06,
    "junk": 0.07,
    "foreign": 0.03,
    "exact_copy": 0.10,
    "near_copy": 0.12,
}
COPY_KINDS = ("exact_copy", "near_copy")
NLP_CORPUS_FILES = 12  # doc-0 .. doc-11: 12k sentences is plenty of variety

SITES = [
    "dailyledger.com",
    "worldnotes.org",
    "cityforum.net",
    "learnhub.io",
    "thereadingroom.co.uk",
    "openencyclo.net",
    "factfinder.info",
    "morningpost.news",
    "talkboard.org",
    "wikimirror.xyz",
    "studyguide.edu",
    "travelnotes.blog",
]
MENU_LINES = [
    "Home | News | Sport | Culture | Contact",
    "Skip to main content",
    "Menu",
    "Search",
    "Sign in / Register",
    "Subscribe to our newsletter",
    "Home > Articles > {topic}",
    "Share on Facebook",
    "Tweet",
    "Print this page",
    "Advertisement",
    "Toggle navigation",
    "About us · Careers · Advertise with us",
]
FOOTER_LINES = [
    "© {year} {site}. All rights reserved.",
    "Privacy Policy | Terms of Use | Cookie Settings",
    "This website uses cookies to improve your experience. Accept",
    "Related articles",
    "Read more",
    "Back to top",
    "Posted in {topic} | Leave a comment",
    "Last updated {date}",
    "Tags: {topic}, history, reference",
]
FORUM_CHROME = ["Reply", "Quote", "Report", "Like · Reply · Share", "{n} likes", "Show more replies"]
FILLER_WORDS = (
    "the of and to in is was for on that with as by at from his her its an this which also were "
    "are be has had not but after first new year city people time world part state called known"
).split()
SPAM_WORDS = "cheap flights hotel deals best price buy online free shipping discount offer sale now top rated".split()


def _clean(text: str) -> str:
    """What ingest would make of the text (NFC, no control characters, trimmed newlines)."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return re.sub(r"[ \t]+\n", "\n", text).strip()


@dataclass
class _Sources:
    topics: dict[str, list[str]]  # topic -> English leads
    foreign: list[str]  # Spanish and French leads
    sentences: list[str]

    @classmethod
    def load(cls) -> _Sources:
        wiki = json.loads(asset_path("wiki/summaries_en-us.json").read_text(encoding="utf-8"))
        topics: dict[str, list[str]] = {}
        for title in sorted(wiki):
            entry = wiki[title]
            text = _clean(entry.get("extract") or "")
            if len(text) >= 200:
                topics.setdefault(entry.get("topic") or "Uncategorized", []).append(text)
        foreign = []
        for lang in ("es-es", "fr-fr"):
            other = json.loads(asset_path(f"wiki/summaries_{lang}.json").read_text(encoding="utf-8"))
            foreign += [t for t in (_clean(other[k].get("extract") or "") for k in sorted(other)) if len(t) >= 200]
        sentences = []
        for i in range(NLP_CORPUS_FILES):
            sentences += [_clean(s) for s in json.loads(asset_path(f"nlp-corpus/doc-{i}.json").read_text(encoding="utf-8"))]
        return cls(topics=topics, foreign=foreign, sentences=[s for s in sentences if s])


@dataclass
class CorpusInfo:
    root: Path
    files: list[Path]
    docs: int
    shard_docs: int
    seed: int
    bytes: int
    kinds: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "root": str(self.root),
            "shards": len(self.files),
            "docs": self.docs,
            "shard_docs": self.shard_docs,
            "seed": self.seed,
            "text_bytes": self.bytes,
            "mean_doc_bytes": round(self.bytes / max(self.docs, 1)),
            "kinds": self.kinds,
        }


class _Generator:
    def __init__(self, sources: _Sources, seed: int):
        self.src = sources
        self.rng = random.Random(seed)
        self.topic_names = sorted(sources.topics)
        self.originals: list[tuple[str, str]] = []  # (text, url) of non-copy documents so far

    # ------------------------------------------------------------ pieces

    def _fill(self, line: str, topic: str = "General") -> str:
        r = self.rng
        return line.format(
            topic=topic,
            year=r.randint(2005, 2026),
            site=r.choice(SITES),
            date=f"{r.randint(2005, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            n=r.randint(1, 300),
        )

    def _url(self, slug_source: str) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", slug_source[:60].lower()).strip("-") or "page"
        return f"https://{self.rng.choice(SITES)}/{slug}-{self.rng.randint(1000, 99999)}"

    def _target_size(self) -> int:
        return self.rng.randint(900, 3400)

    def _leads(self, pool: list[str], target: int) -> list[str]:
        out, size = [], 0
        while size < target:
            lead = self.rng.choice(pool)
            if out and size + len(lead) > target + 600:
                break
            out.append(lead)
            size += len(lead) + 2
        return out

    def _chrome(self, body: list[str], topic: str) -> list[str]:
        r = self.rng
        head = [self._fill(x, topic) for x in r.sample(MENU_LINES, r.randint(1, 4))] if r.random() < 0.7 else []
        foot = [self._fill(x, topic) for x in r.sample(FOOTER_LINES, r.randint(1, 4))] if r.random() < 0.8 else []
        return head + body + foot

    # ------------------------------------------------------------ kinds

    def article(self) -> tuple[str, str]:
        topic = self.rng.choice(self.topic_names)
        leads = self._leads(self.src.topics[topic], self._target_size())
        title = leads[0].split(" is ")[0].split(".")[0][:80]
        parts = self._chrome([title] + leads, topic)
        return "\n\n".join(parts) if self.rng.random() < 0.5 else "\n".join(parts), self._url(title)

    def forum(self) -> tuple[str, str]:
        r = self.rng
        target = self._target_size()
        lines = [self._fill(x) for x in r.sample(MENU_LINES, r.randint(0, 3))]
        first = r.choice(self.src.sentences)
        lines.append(f"Thread: {first[:70]}")
        size = sum(len(x) for x in lines)
        while size < target:
            user = f"{r.choice(FILLER_WORDS)}_{r.choice(SPAM_WORDS)}{r.randint(1, 999)}"
            post = " ".join(r.choice(self.src.sentences) for _ in range(r.randint(1, 5)))
            block = [self._fill("Posted by " + user + " on {date}"), post]
            if r.random() < 0.6:
                block.append(self._fill(r.choice(FORUM_CHROME)))
            lines += block
            size += sum(len(x) + 1 for x in block)
        return "\n".join(lines), self._url(first)

    def repetitive(self) -> tuple[str, str]:
        r = self.rng
        text, url = self.article()
        paragraphs = text.split("\n")
        if r.random() < 0.5:
            # one paragraph repeated through the page
            chosen = r.choice([p for p in paragraphs if len(p) > 100] or paragraphs)
            for _ in range(r.randint(3, 6)):
                paragraphs.insert(r.randint(0, len(paragraphs)), chosen)
        else:
            # a short line (a button, a label) repeated many times
            line = self._fill(r.choice(FORUM_CHROME + ["Add to cart", "Read more", "Download PDF"]))
            for _ in range(r.randint(10, 40)):
                paragraphs.insert(r.randint(0, len(paragraphs)), line)
        return "\n".join(paragraphs), url

    def junk(self) -> tuple[str, str]:
        r = self.rng
        choice = r.randrange(6)
        if choice == 0:
            text = "404 Not Found\nThe requested URL was not found on this server.\nApache Server at port 80"
        elif choice == 1:
            text = "\n".join(self._fill(x) for x in r.sample(MENU_LINES, r.randint(4, 10)))
        elif choice == 2:
            text = " ".join(r.choice(SPAM_WORDS) for _ in range(r.randint(40, 200)))
        elif choice == 3:
            rows = [
                f"Item {r.randint(1000, 9999)} | {r.randint(1, 99)} pcs | ${r.randint(1, 500)}.{r.randint(0, 99):02d}"
                for _ in range(r.randint(10, 40))
            ]
            text = "Product | Qty | Price\n" + "\n".join(rows)
        elif choice == 4:
            text = r.choice(self.src.sentences)
        else:
            text = "Please enable JavaScript to view this page.\nThis website uses cookies. Accept\nLoading..."
        return text, self._url(text)

    def foreign(self) -> tuple[str, str]:
        leads = self._leads(self.src.foreign, self._target_size())
        return "\n\n".join(leads), self._url(leads[0])

    def exact_copy(self) -> tuple[str, str]:
        text, url = self.rng.choice(self.originals)
        if self.rng.random() < 0.3:  # differs only where exact dedup normalises (case, whitespace)
            text = text.replace(". ", ".  ", 3) if self.rng.random() < 0.5 else text.upper()
        return text, url if self.rng.random() < 0.5 else self._url(text)

    def near_copy(self) -> tuple[str, str]:
        r = self.rng
        text, _ = r.choice(self.originals)
        tokens = text.split(" ")
        candidates = [i for i, t in enumerate(tokens) if "\n" not in t]
        rate = r.choice([0.01, 0.02, 0.03, 0.05])
        for i in r.sample(candidates, min(len(candidates), max(1, int(rate * len(tokens))))):
            tokens[i] = r.choice(FILLER_WORDS)
        text = " ".join(tokens)
        if r.random() < 0.5:
            text = self._fill("Last updated {date}") + "\n" + text
        return text, self._url(text)

    def document(self) -> tuple[str, str, str]:
        kinds, weights = zip(*KIND_WEIGHTS.items())
        kind = self.rng.choices(kinds, weights)[0]
        if kind in COPY_KINDS and not self.originals:
            kind = "article"
        text, url = getattr(self, kind)()
        text = _clean(text)
        if kind not in COPY_KINDS and kind != "junk":
            self.originals.append((text, url))
        return kind, text, url


_SOURCES: _Sources | None = None


def generate_corpus(out_dir: Path, docs: int, shard_docs: int, seed: int = 1234) -> CorpusInfo:
    """Write ceil(docs / shard_docs) Parquet shards (columns id, text, url) into out_dir."""
    global _SOURCES
    if _SOURCES is None:
        _SOURCES = _Sources.load()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = _Generator(_SOURCES, seed)
    kinds: Counter[str] = Counter()
    files, total_bytes = [], 0
    n_shards = -(-docs // shard_docs)
    for s in range(n_shards):
        rows = {"id": [], "text": [], "url": []}
        for i in range(s * shard_docs, min(docs, (s + 1) * shard_docs)):
            kind, text, url = gen.document()
            kinds[kind] += 1
            total_bytes += len(text.encode("utf-8"))
            rows["id"].append(f"bench-{seed}-{i:07d}")
            rows["text"].append(text)
            rows["url"].append(url)
        path = out_dir / f"shard-{s:04d}.parquet"
        pq.write_table(pa.table(rows, schema=SCHEMA), path)
        files.append(path)
    return CorpusInfo(
        root=out_dir,
        files=files,
        docs=docs,
        shard_docs=shard_docs,
        seed=seed,
        bytes=total_bytes,
        kinds=dict(sorted(kinds.items())),
    )
