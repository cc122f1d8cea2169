"""The bundled demo corpus: two small "crawls" of real text with planted problems, and a third in
three languages.

Built from the offline assets (see :mod:`provision.assets`):

* good "web pages": 3-7 English Wikipedia lead sections of one topic, one
  paragraph each, joined with blank lines;
* good-ish "forum threads": 8-15 messy real sentences from nlp-corpus (SMS,
  Reddit, reviews...; a few contain offensive words of their own);
* planted problems, counted in :attr:`DemoCorpus.planted` so that every
  pipeline stage has something visible to remove: exact duplicates (verbatim,
  whitespace/case variants, re-crawled copies), near duplicates, junk, offensive
  text, Spanish and French pages, PII, block-listed URLs and duplicate ids.

* crawl3: English, Spanish and French pages with junk written in each language
  (repeated lines, a navigation menu, keyword spam, a fragment), for a run that
  allows all three.

``out_dir/planted.json`` lists every planted document (kind, file, row, id and,
for copies, the file and row of the original) as ground truth for tests.

``python -m provision.demo_corpus OUT_DIR [--seed N] [--assets DIR]``
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import re
import sys
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scorers.assets import asset_path, assets_dir
from warehouse.files import atomic_path, write_text_atomic

__all__ = [
    "BLOCKLISTED_DOMAINS",
    "DemoCorpus",
    "PLANTED_KINDS",
    "SCHEMA",
    "build_demo_corpus",
    "main",
]

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("source", pa.string()),
        ("crawl_date", pa.timestamp("us", tz="UTC")),
        ("http_status", pa.int32()),
    ]
)

PLANTED_KINDS = (
    "exact_dup",  # verbatim copy of a crawl1 document in another crawl1 shard
    "exact_dup_case_ws",  # copy that differs only in whitespace and letter case
    "recrawl_exact_dup",  # crawl2 copy of a crawl1 document (same url, later date)
    "near_dup",  # crawl1 copy with 1-2 words changed or a short sentence appended
    "recrawl_near_dup",  # the same edit, as a crawl2 copy of a crawl1 document
    "junk_repeated_line",
    "junk_short",
    "junk_nav_menu",
    "junk_numeric_table",
    "junk_lorem",
    "offensive",  # good prose with several LDNOOBW English words mixed in
    "non_english_es",
    "non_english_fr",
    "pii",  # good document plus fake emails, phone numbers, public IPv4 addresses
    "blocklisted_url",  # good document whose domain is on datatrove's URL blocklist
    "duplicate_id",  # good document reusing the id of another crawl1 document
    "broken_text",  # null, empty, whitespace-only or control-character-only text
)

# Real entries of the domain list bundled with datatrove's URLFilter
# (datatrove/assets/url_filterblacklistsv0_3_0.tar.gz, member "domains").
BLOCKLISTED_DOMAINS = ("accountsecurity-online.com", "0-800-email.com")

# Documents per crawl: totals and planted counts. Good wiki pages fill the rest.
_CRAWL1 = {
    "name": "crawl1",
    "source": "demo-crawl1",
    "start": datetime(2024, 3, 1, tzinfo=UTC),
    "total": 1000,
    "shards": 4,
    "forum": 110,
    "exact_dup": 20,
    "exact_dup_case_ws": 20,
    "near_dup": 24,
    "junk_repeated_line": 12,
    "junk_short": 12,
    "junk_nav_menu": 12,
    "junk_numeric_table": 12,
    "junk_lorem": 10,
    "offensive": 24,
    "non_english_es": 20,
    "non_english_fr": 20,
    "pii": 30,
    "blocklisted_url": 4,
    "duplicate_id": 2,
    "broken_text": 4,
}
_CRAWL2 = {
    "name": "crawl2",
    "source": "demo-crawl2",
    "start": datetime(2024, 9, 1, tzinfo=UTC),
    "total": 300,
    "shards": 2,
    "forum": 30,
    "recrawl_exact_dup": 40,
    "recrawl_near_dup": 24,
    "junk_repeated_line": 2,
    "junk_short": 2,
    "junk_nav_menu": 2,
    "junk_numeric_table": 2,
    "junk_lorem": 2,
    "offensive": 6,
    "non_english_es": 5,
    "non_english_fr": 5,
    "pii": 8,
    "blocklisted_url": 2,
}

# A crawl in three languages, curated with `language.allowed: [en, es, fr]` and each language's
# quality block: clean pages of each language and junk written in each of them.
_CRAWL3 = {"name": "crawl3", "source": "demo-crawl3-multilingual", "start": datetime(2025, 1, 15, tzinfo=UTC), "shards": 1}
MULTILINGUAL_LANGUAGES = ("en", "es", "fr")
MULTILINGUAL_PAGES = 12  # clean pages per language
MULTILINGUAL_JUNK = ("junk_repeated_line", "junk_nav_menu", "junk_keyword_spam", "junk_short")
_LOCAL_MENU_WORDS = {
    "es": (
        "Inicio",
        "Quiénes somos",
        "Contacto",
        "Noticias",
        "Deportes",
        "Tienda",
        "Carrito",
        "Iniciar sesión",
        "Registrarse",
        "Ayuda",
        "Ofertas",
        "Mapa del sitio",
        "Eventos",
        "Empleo",
        "Preguntas frecuentes",
    ),
    "fr": (
        "Accueil",
        "Qui sommes-nous",
        "Contact",
        "Actualités",
        "Sports",
        "Boutique",
        "Panier",
        "Se connecter",
        "Créer un compte",
        "Aide",
        "Promotions",
        "Plan du site",
        "Événements",
        "Recrutement",
        "Mentions légales",
    ),
}
_CRAWL_DAYS = 14
_MAX_NEAR_DUP_EDIT = 0.02  # share of words an edit may touch
_MIN_NEAR_DUP_JACCARD = 0.9  # 5-gram shingles; MinHash 14x8 catches this almost surely
_NEAR_DUP_MIN_WORDS = 250
_FORUM_OFFENSIVE_RATE = 0.06  # share of forum threads given one offensive sentence of the source corpus

_END_PUNCT = (".", "!", "?", '"', "'", "\u201d")
# Text the C4 filter rejects outright; good documents must not contain any of it.
_C4_REJECT_SUBSTRINGS = (
    "{",
    "}",
    "javascript",
    "lorem ipsum",
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_PHONE = re.compile(r"\+\d[\d ()-]{7,}\d|\(\d{3}\) ?\d{3}-\d{4}")
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d)]*(?:\s|$)")
_WORD = re.compile(r"\w+")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class DemoCorpus:
    crawl1: list[Path]
    crawl2: list[Path]
    planted: dict[str, int]
    replay: Path  # a sample of "the original pre-training distribution" for the demo mixture
    replay_mmlu_rows: list[int]  # replay rows with an MMLU test question pasted in (decontamination must remove them)
    multilingual: list[Path]  # crawl3: en, es and fr pages and junk, for `language.allowed: [en, es, fr]`


@dataclass
class _Doc:
    id: str
    text: str
    url: str
    crawl: str
    date: datetime
    http_status: int = 200
    kind: str | None = None  # planted kind, None for a plain good document
    genre: str = "wiki"  # wiki, forum, junk, ...
    words: int = 0
    original: _Doc | None = None  # for copies: the document copied
    shard: int = -1
    row: int = -1
    used: bool = field(default=False, repr=False)  # already the source of a planted copy


# --------------------------------------------------------------------------- sources


def _slug(text: str, max_len: int = 60) -> str:
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "-", ascii_).strip("-").lower()[:max_len].strip("-") or "page"


def _count_words(text: str) -> int:
    return len(text.split())


def _count_sentences(text: str) -> int:
    return len(_SENTENCE_END.findall(text))


def _dedup_form(text: str) -> str:
    return _WHITESPACE.sub(" ", text.casefold()).strip()


def _load_badwords(root: Path) -> list[str]:
    lines = asset_path("ldnoobw/en.txt", root).read_text(encoding="utf-8").splitlines()
    return [w.strip() for w in lines if w.strip() and not w.lstrip().startswith("#")]


class _BadWords:
    """Finds LDNOOBW entries as whole words, like C4's bad-words filter (case-insensitive)."""

    def __init__(self, words: list[str]):
        phrases = {" ".join(_WORD.findall(w.lower())) for w in words}
        phrases.discard("")
        self.single = {p for p in phrases if " " not in p}
        self.multi = sorted(p for p in phrases if " " in p)

    def search(self, text: str) -> bool:
        tokens = _WORD.findall(text.lower())
        if not self.single.isdisjoint(tokens):
            return True
        joined = f" {' '.join(tokens)} "
        return any(f" {p} " in joined for p in self.multi)


def _rejected(text: str) -> bool:
    """Text a good document must not contain: C4 rejects it, or it looks like PII or a URL."""
    lowered = text.lower()
    if "cookie" in lowered and any(s in lowered for s in _C4_REJECT_SUBSTRINGS):
        return True
    if (
        "{" in text
        or "}" in text
        or "@" in text
        or "javascript" in lowered
        or "lorem ipsum" in lowered
        or "terms of use" in lowered
        or "privacy policy" in lowered
        or "http" in lowered
        or "www." in lowered
    ):
        return True
    return bool(_IPV4.search(text) or _PHONE.search(text))


@dataclass
class _Extract:
    title: str
    paragraphs: list[str]


def _load_wiki(root: Path, lang: str, reject: _BadWords | None) -> dict[str, list[_Extract]]:
    """Wikipedia lead sections grouped by topic, cleaned, in a stable order."""
    path = asset_path(f"wiki/summaries_{lang}.json", root)
    data = json.loads(path.read_text(encoding="utf-8"))
    seen: set[str] = set()
    by_topic: dict[str, list[_Extract]] = {}
    for title in sorted(data):
        entry = data[title]
        extract = (entry.get("extract") or "").strip()
        topic = entry.get("topic") or "Uncategorized"
        paragraphs = [p.strip() for p in extract.split("\n") if p.strip()]
        if not paragraphs or extract in seen:
            continue
        seen.add(extract)
        if any(not p.endswith(_END_PUNCT) or _count_words(p) < 5 for p in paragraphs):
            continue
        if _rejected(extract):
            continue
        if reject is not None and reject.search(extract):
            continue
        by_topic.setdefault(topic, []).append(_Extract(entry.get("title") or title, paragraphs))
    return by_topic


def _load_sentences(root: Path, files: int) -> list[str]:
    """Messy real sentences from nlp-corpus, minus anything that looks like PII or a URL."""
    sentences: list[str] = []
    seen: set[str] = set()
    for i in range(files):
        for s in json.loads(asset_path(f"nlp-corpus/doc-{i}.json", root).read_text(encoding="utf-8")):
            if not isinstance(s, str):
                continue
            s = _WHITESPACE.sub(" ", s).strip()
            if s in seen or not s.endswith(_END_PUNCT) or not 3 <= _count_words(s) <= 60:
                continue
            if _rejected(s):
                continue
            seen.add(s)
            sentences.append(s)
    return sentences


# --------------------------------------------------------------------------- text makers

_SITES = (
    "www.openreference.example.org",
    "learn.knowledgebase.example.com",
    "articles.dailyexplainer.example.net",
    "www.encyclopedic-notes.example.org",
    "blog.curious-minds.example.com",
    "library.smallfacts.example.net",
)
_MIRROR_SITES = ("mirror.contentfarm.example.net", "copy.scrapedpages.example.com", "www.reposted.example.org")
_FORUM_SITES = ("forum.chatterbox.example.net", "community.talkshop.example.com", "boards.everyday.example.org")
_JUNK_SITES = ("shop.megadeals.example.com", "www.placeholder-site.example.net", "portal.linkhub.example.org")
_ES_SITES = ("es.enciclopedia.example.org", "www.saberlibre.example.com")
_FR_SITES = ("fr.encyclopedie.example.org", "www.savoirs.example.net")

_FIRST = ("maria", "james", "aisha", "tomas", "chen", "fatima", "oliver", "priya", "lucas", "nora", "kofi", "elena")
_LAST = ("lopez", "smith", "khan", "novak", "wang", "haddad", "brown", "patel", "silva", "berg", "mensah", "rossi")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

_PII_TEMPLATES = (
    "For corrections to this article, write to {email} or call {phone}.",
    "Readers who want a printed copy can contact {name} at {email}.",
    "The archive copy of this page is served from {ip}, and questions go to {email}.",
    "Our editor {name} answers questions on {phone} during office hours.",
    "An earlier version was uploaded from {ip} by {email} before it was reviewed.",
    "Send photographs and comments to {email}; urgent requests can be made on {phone}.",
    "Access to the reading room terminal at {ip} can be booked by calling {phone}.",
)

_JUNK_LINES = (
    "Click here to subscribe to our newsletter and never miss a deal",
    "Add to cart",
    "This item is currently out of stock",
    "Best price guaranteed on all orders today only",
    "Share this post on social media",
    "Download the free app now",
)
_SHORT_TEXTS = (
    ("Page not found.", 404),
    ("Loading...", 200),
    ("Access denied", 403),
    ("Coming soon!", 200),
    ("Under construction", 200),
    ("Internal server error", 500),
    ("Redirecting to the new site", 301),
    ("Thanks for your order!", 200),
    ("Session expired, please log in again.", 200),
    ("No results", 200),
    ("Welcome", 200),
    ("Hello world", 200),
    ("Sold out", 200),
    ("404", 404),
    ("Forbidden", 403),
    ("Service temporarily unavailable", 503),
    ("Your cart is empty.", 200),
    ("Enable cookies to continue", 200),
    ("Please wait while we check your browser", 503),
    ("Moved permanently", 301),
    ("Click to continue", 200),
    ("Subscribe", 200),
    ("Bad gateway", 502),
    ("Item added", 200),
)
_MENU_WORDS = (
    "Home",
    "About Us",
    "Contact",
    "News",
    "Sports",
    "Weather",
    "Shop",
    "Cart",
    "Sign in",
    "Register",
    "Blog",
    "Careers",
    "Help",
    "FAQ",
    "Sitemap",
    "Deals",
    "New Arrivals",
    "Men",
    "Women",
    "Kids",
    "Sale",
    "Gift Cards",
    "Store Locator",
    "Events",
    "Gallery",
    "Downloads",
    "Support",
    "Account",
    "Wishlist",
    "Newsletter",
    "Archive",
    "Categories",
    "Tags",
    "Search",
    "Login",
    "Forums",
)
_TABLE_HEADERS = (
    "Year",
    "Month",
    "Region",
    "Units",
    "Revenue",
    "Cost",
    "Margin",
    "Count",
    "Rate",
    "Index",
    "Min",
    "Max",
    "Mean",
    "Total",
    "Q1",
    "Q2",
    "Q3",
    "Q4",
    "ID",
    "Score",
)
_LOREM_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
    "et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip "
    "ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla "
    "pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim "
    "id est laborum"
).split()


class _Builder:
    def __init__(self, root: Path, seed: int):
        self.rng = random.Random(seed)
        self.badwords = _load_badwords(root)
        self.badword_matcher = reject = _BadWords(self.badwords)
        self.wiki = {
            "en": self._shuffled(_load_wiki(root, "en-us", reject)),
            "es": self._shuffled(_load_wiki(root, "es-es", None)),
            "fr": self._shuffled(_load_wiki(root, "fr-fr", None)),
        }
        sentences = _load_sentences(root, files=20)
        self.rng.shuffle(sentences)
        # Forum threads are mostly clean; a few get one of the offensive sentences the corpus has.
        self.sentences = [s for s in sentences if not reject.search(s)]
        self.offensive_sentences = [s for s in sentences if reject.search(s)]
        self._sentence_i = 0
        self._offensive_i = 0
        self.short_sentences = [s for s in self.sentences if _count_words(s) <= 5]
        # Junk is drawn without replacement so that junk documents are not duplicates of each other.
        self._short_pool: list[tuple[str, int]] = []
        self._line_pool = list(_JUNK_LINES)
        self.rng.shuffle(self._line_pool)
        self._ids: set[str] = set()
        self._urls: set[str] = set()
        self.docs: dict[str, list[_Doc]] = {"crawl1": [], "crawl2": [], "crawl3": []}

    def _shuffled(self, by_topic: dict[str, list[_Extract]]) -> dict[str, list[_Extract]]:
        for topic in sorted(by_topic):
            self.rng.shuffle(by_topic[topic])
        return by_topic

    # -- basic pieces

    def new_id(self) -> str:
        while True:
            value = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            if value not in self._ids:
                self._ids.add(value)
                return value

    def unique_url(self, base: str) -> str:
        url, n = base, 2
        while url in self._urls:
            url, n = f"{base}-{n}", n + 1
        self._urls.add(url)
        return url

    def date(self, crawl: dict) -> datetime:
        seconds = self.rng.randrange(_CRAWL_DAYS * 86400)
        micros = self.rng.randrange(1_000_000)
        return crawl["start"] + timedelta(seconds=seconds, microseconds=micros)

    def next_sentence(self) -> str:
        s = self.sentences[self._sentence_i % len(self.sentences)]
        self._sentence_i += 1
        return s

    def next_offensive_sentence(self) -> str:
        s = self.offensive_sentences[self._offensive_i % len(self.offensive_sentences)]
        self._offensive_i += 1
        return s

    def doc(self, crawl: dict, text: str, url: str, *, kind=None, genre="wiki", status=200) -> _Doc:
        d = _Doc(
            id=self.new_id(),
            text=text,
            url=url,
            crawl=crawl["name"],
            date=self.date(crawl),
            http_status=status,
            kind=kind,
            genre=genre,
            words=_count_words(text),
        )
        self.docs[crawl["name"]].append(d)
        return d

    # -- good documents

    def wiki_page(self, lang: str) -> tuple[str, str, str]:
        """(text, title, topic) of a page made of 3-7 lead sections of one topic."""
        pool = self.wiki[lang]
        for _ in range(1000):
            topics = sorted(t for t, items in pool.items() if len(items) >= 3)
            if not topics:
                break
            topic = self.rng.choice(topics)
            want = self.rng.randint(3, 7)
            items = pool[topic]
            taken = [items.pop() for _ in range(min(want, len(items)))]
            paragraphs = [p for e in taken for p in e.paragraphs]
            # Keep adding sections (up to 7) until the page is clearly a real document.
            while (_count_sentences(" ".join(paragraphs)) < 6 or _count_words(" ".join(paragraphs)) < 80) and (
                items and len(taken) < 7
            ):
                taken.append(items.pop())
                paragraphs.extend(taken[-1].paragraphs)
            text = "\n\n".join(paragraphs)
            if _count_sentences(text) >= 6 and _count_words(text) >= 80:
                return text, taken[0].title, topic
        raise RuntimeError(f"demo corpus: ran out of {lang} Wikipedia lead sections")

    def good_wiki(self, crawl: dict, kind=None) -> _Doc:
        text, title, topic = self.wiki_page("en")
        site = self.rng.choice(_SITES)
        url = self.unique_url(f"https://{site}/{_slug(topic, 30)}/{_slug(title)}")
        return self.doc(crawl, text, url, kind=kind)

    def forum_thread(self, crawl: dict) -> _Doc:
        n = self.rng.randint(8, 15)
        sentences = [self.next_sentence() for _ in range(n)]
        while len(sentences) < 15 and _count_words(" ".join(sentences)) < 60:  # a real document, not a stub
            sentences.append(self.next_sentence())
        n = len(sentences)
        if self.offensive_sentences and self.rng.random() < _FORUM_OFFENSIVE_RATE:
            sentences[self.rng.randrange(n)] = self.next_offensive_sentence()
        posts, i = [], 0
        while i < n:
            k = self.rng.randint(1, 4)
            posts.append(" ".join(sentences[i : i + k]))
            i += k
        text = "\n\n".join(posts)
        site = self.rng.choice(_FORUM_SITES)
        # Thread number only: words of the (messy) text in the url could trip URL filters.
        url = self.unique_url(f"https://{site}/t/{self.rng.randrange(10**5, 10**6)}")
        return self.doc(crawl, text, url, genre="forum")

    # -- planted problems

    def foreign(self, crawl: dict, lang: str) -> _Doc:
        text, title, topic = self.wiki_page(lang)
        site = self.rng.choice(_ES_SITES if lang == "es" else _FR_SITES)
        url = self.unique_url(f"https://{site}/{_slug(topic, 30)}/{_slug(title)}")
        return self.doc(crawl, text, url, kind=f"non_english_{lang}", genre=f"wiki-{lang}")

    def _email(self, first: str, last: str) -> str:
        local = self.rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{self.rng.randrange(10, 99)}"))
        return f"{local}@{self.rng.choice(_EMAIL_DOMAINS)}"

    def _phone(self) -> str:
        line = self.rng.randrange(100)
        style = self.rng.randrange(3)
        if style == 0:
            return f"+1 {self.rng.choice(('415', '212', '617', '312'))} 555 01{line:02d}"
        if style == 1:
            return f"({self.rng.choice(('415', '206', '303'))}) 555-01{line:02d}"
        return f"+44 20 7946 0{self.rng.randrange(1000):03d}"

    def _public_ip(self) -> str:
        while True:
            ip = ipaddress.IPv4Address(self.rng.getrandbits(32))
            if ip.is_global and not ip.is_multicast and str(ip).split(".")[0] not in ("0", "255"):
                return str(ip)

    def pii(self, crawl: dict) -> _Doc:
        d = self.good_wiki(crawl, kind="pii")
        paragraphs = d.text.split("\n\n")
        for _ in range(self.rng.randint(1, 2)):
            first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
            sentence = self.rng.choice(_PII_TEMPLATES).format(
                email=self._email(first, last),
                phone=self._phone(),
                ip=self._public_ip(),
                name=f"{first.title()} {last.title()}",
            )
            at = self.rng.randint(1, len(paragraphs))
            if self.rng.random() < 0.5:
                paragraphs.insert(at, sentence)
            else:
                paragraphs[at - 1] = f"{paragraphs[at - 1]} {sentence}"
        d.text = "\n\n".join(paragraphs)
        d.words = _count_words(d.text)
        return d

    def offensive(self, crawl: dict) -> _Doc:
        d = self.good_wiki(crawl, kind="offensive")
        paragraphs = [p.split(" ") for p in d.text.split("\n\n")]
        for word in self.rng.sample(self.badwords, self.rng.randint(4, 7)):
            words = self.rng.choice(paragraphs)
            words.insert(self.rng.randint(1, max(1, len(words) - 1)), word)
        d.text = "\n\n".join(" ".join(p) for p in paragraphs)
        d.words = _count_words(d.text)
        return d

    def blocklisted(self, crawl: dict) -> _Doc:
        text, title, _ = self.wiki_page("en")
        domain = self.rng.choice(BLOCKLISTED_DOMAINS)
        url = self.unique_url(f"http://{domain}/{_slug(title)}")
        return self.doc(crawl, text, url, kind="blocklisted_url")

    def junk(self, crawl: dict, kind: str) -> _Doc:
        rng = self.rng
        site = rng.choice(_JUNK_SITES)
        status = 200
        if kind == "junk_repeated_line":
            line = self._line_pool.pop() if self._line_pool and rng.random() < 0.5 else self.next_sentence()
            text = "\n".join([line] * rng.randint(20, 60))
        elif kind == "junk_short":
            if not self._short_pool:
                self._short_pool = list(_SHORT_TEXTS)
                rng.shuffle(self._short_pool)
            text, status = self._short_pool.pop()
        elif kind == "junk_nav_menu":
            lines = []
            for _ in range(rng.randint(8, 20)):
                items = rng.sample(_MENU_WORDS, rng.randint(3, 7))
                lines.append(rng.choice((" | ", "  ", " / ", " > ", " · ")).join(items))
            text = "\n".join(lines)
        elif kind == "junk_numeric_table":
            cols = rng.randint(3, 6)
            sep = rng.choice(("\t", " | ", ", ", "  "))
            rows = [sep.join(rng.sample(_TABLE_HEADERS, cols))]
            for _ in range(rng.randint(15, 40)):
                cells = [str(rng.randrange(1990, 2025))]
                for _ in range(cols - 1):
                    cells.append(f"{rng.uniform(0, 10 ** rng.randint(1, 4)):.{rng.randint(0, 2)}f}")
                rows.append(sep.join(cells))
            text = "\n".join(rows)
        elif kind == "junk_lorem":
            paragraphs = []
            for _ in range(rng.randint(3, 6)):
                sentences = []
                for _ in range(rng.randint(3, 6)):
                    words = [rng.choice(_LOREM_WORDS) for _ in range(rng.randint(6, 16))]
                    sentences.append(" ".join(words).capitalize() + ".")
                paragraphs.append(" ".join(sentences))
            paragraphs[0] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " + paragraphs[0]
            text = "\n\n".join(paragraphs)
        else:  # pragma: no cover - internal misuse
            raise ValueError(kind)
        url = self.unique_url(f"https://{site}/{kind.removeprefix('junk_').replace('_', '-')}/{rng.randrange(10**6)}")
        return self.doc(crawl, text, url, kind=kind, genre="junk", status=status)

    # -- copies

    def _pick_original(self, candidates: list[_Doc], min_words: int = 0) -> _Doc:
        pool = [d for d in candidates if not d.used and d.words >= min_words]
        if not pool:
            raise RuntimeError("demo corpus: no document left to copy")
        original = self.rng.choice(pool)
        original.used = True
        return original

    def _copy(self, crawl: dict, original: _Doc, text: str, url: str, kind: str) -> _Doc:
        d = self.doc(crawl, text, url, kind=kind, genre=original.genre, status=original.http_status)
        d.original = original
        return d

    def case_ws_variant(self, text: str) -> str:
        """Same text up to letter case and whitespace (never whitespace where there was none)."""
        rng = self.rng
        for _ in range(20):
            out = text
            case = rng.randrange(3)
            if case == 0:
                out = out.lower()
            elif case == 1:
                first, sep, rest = out.partition("\n\n")
                out = first.upper() + sep + rest
            ws = rng.randrange(3)
            if ws == 0 or case == 2:
                out = re.sub(r"\. ", lambda m: ".  " if rng.random() < 0.5 else ". ", out)
            if ws == 1:
                # No whitespace-only lines: they would look like repeated lines to repetition filters.
                out = out.replace("\n\n", rng.choice(("\n\n\n", " \n\n", "\n\n\t", "  \n\n")))
            if ws == 2:
                out = rng.choice(("\n", "  ", "\t")) + out + rng.choice(("\n", " \n", "\n\n"))
            same_casefold = _dedup_form(out) == _dedup_form(text)
            same_lower = _WHITESPACE.sub(" ", out.lower()).strip() == _WHITESPACE.sub(" ", text.lower()).strip()
            if out != text and same_casefold and same_lower:
                return out
        raise RuntimeError("demo corpus: could not make a case/whitespace variant")

    def near_dup_text(self, text: str) -> str:
        """1-2 words changed or a short sentence appended: <= 2% of words, Jaccard >= 0.9."""
        rng = self.rng
        n_words = _count_words(text)
        budget = max(1, int(n_words * _MAX_NEAR_DUP_EDIT))
        for _ in range(50):
            if rng.random() < 0.5:
                tokens = text.split(" ")
                candidates = [i for i, t in enumerate(tokens) if t.isalpha() and t.islower() and len(t) >= 4]
                replacements = sorted({t for t in tokens if t.isalpha() and t.islower() and len(t) >= 4})
                if len(candidates) < 2 or len(replacements) < 3:
                    continue
                for i in rng.sample(candidates, min(budget, rng.randint(1, 2))):
                    tokens[i] = rng.choice([w for w in replacements if w != tokens[i]])
                out = " ".join(tokens)
            else:
                fitting = [s for s in self.short_sentences if _count_words(s) <= budget]
                if not fitting:
                    continue
                sentence = rng.choice(fitting)
                out = text + ("\n\n" if rng.random() < 0.5 else " ") + sentence
            if _dedup_form(out) != _dedup_form(text) and _shingle_jaccard(out, text) >= _MIN_NEAR_DUP_JACCARD:
                return out
        raise RuntimeError("demo corpus: could not make a near duplicate")

    # -- whole crawls

    def plant_problem_documents(self, c: dict) -> None:
        """Junk, offensive, foreign, PII-bearing and block-listed documents, as many as `c` says."""
        for kind in ("junk_repeated_line", "junk_short", "junk_nav_menu", "junk_numeric_table", "junk_lorem"):
            for _ in range(c[kind]):
                self.junk(c, kind)
        for _ in range(c["offensive"]):
            self.offensive(c)
        for lang in ("es", "fr"):
            for _ in range(c[f"non_english_{lang}"]):
                self.foreign(c, lang)
        for _ in range(c["pii"]):
            self.pii(c)
        for _ in range(c["blocklisted_url"]):
            self.blocklisted(c)

    def build_crawl1(self) -> None:
        c = _CRAWL1
        fixed = sum(v for k, v in c.items() if k in PLANTED_KINDS or k == "forum")
        n_good = c["total"] - fixed
        good = [self.good_wiki(c) for _ in range(n_good)]
        forum = [self.forum_thread(c) for _ in range(c["forum"])]
        self.plant_problem_documents(c)
        for i in range(c["broken_text"]):
            self.broken(c, i)

        copyable = good + forum
        for _ in range(c["exact_dup"]):
            o = self._pick_original(copyable)
            self._copy(c, o, o.text, self.unique_url(self._mirror_url(o)), "exact_dup")
        for _ in range(c["exact_dup_case_ws"]):
            o = self._pick_original(copyable)
            self._copy(c, o, self.case_ws_variant(o.text), self.unique_url(self._mirror_url(o)), "exact_dup_case_ws")
        for _ in range(c["near_dup"]):
            o = self._pick_original(good, _NEAR_DUP_MIN_WORDS)
            self._copy(c, o, self.near_dup_text(o.text), self.unique_url(self._mirror_url(o)), "near_dup")
        for _ in range(c["duplicate_id"]):
            holder = self._pick_original(good)
            d = self.good_wiki(c, kind="duplicate_id")
            self._ids.discard(d.id)
            d.id = holder.id
            d.original = holder

    def build_crawl2(self) -> None:
        c = _CRAWL2
        crawl1 = [d for d in self.docs["crawl1"] if d.kind is None and d.genre in ("wiki", "forum")]
        fixed = sum(v for k, v in c.items() if k in PLANTED_KINDS or k == "forum")
        for _ in range(c["total"] - fixed):
            self.good_wiki(c)
        for _ in range(c["forum"]):
            self.forum_thread(c)
        self.plant_problem_documents(c)
        # A re-crawl: the same pages again under the same url, some of them edited since.
        for _ in range(c["recrawl_exact_dup"]):
            o = self._pick_original(crawl1)
            self._copy(c, o, o.text, o.url, "recrawl_exact_dup")
        wiki1 = [d for d in crawl1 if d.genre == "wiki"]
        for _ in range(c["recrawl_near_dup"]):
            o = self._pick_original(wiki1, _NEAR_DUP_MIN_WORDS)
            self._copy(c, o, self.near_dup_text(o.text), o.url, "recrawl_near_dup")

    def build_crawl3(self) -> None:
        """Clean pages and four kinds of junk in each of the three languages."""
        c = _CRAWL3
        for lang in MULTILINGUAL_LANGUAGES:
            sites = _SITES if lang == "en" else _ES_SITES if lang == "es" else _FR_SITES
            pages = [self.wiki_page(lang) for _ in range(MULTILINGUAL_PAGES)]
            for text, title, topic in pages:
                url = self.unique_url(f"https://{self.rng.choice(sites)}/{_slug(topic, 30)}/{_slug(title)}")
                self.doc(c, text, url, genre=f"wiki-{lang}")
            own_words = [w.strip(".,;:()«»") for w in pages[0][0].split() if w.strip(".,;:()«»").isalpha()]
            sentence = next(s for s in pages[1][0].split(". ") if _count_words(s) >= 8).rstrip(".") + "."
            menu_words = _MENU_WORDS if lang == "en" else _LOCAL_MENU_WORDS[lang]
            junk = {
                "junk_repeated_line": "\n".join([sentence] * self.rng.randint(20, 40)),
                "junk_nav_menu": "\n".join(
                    " | ".join(self.rng.sample(menu_words, self.rng.randint(3, 7))) for _ in range(self.rng.randint(8, 20))
                ),
                "junk_keyword_spam": " ".join(self.rng.sample(own_words, 4) * 40),
                "junk_short": " ".join(pages[2][0].split()[:20]),
            }
            for kind in MULTILINGUAL_JUNK:
                url = self.unique_url(f"https://{self.rng.choice(_JUNK_SITES)}/{lang}/{kind.removeprefix('junk_')}")
                self.doc(c, junk[kind], url, kind=f"{kind}_{lang}", genre="junk")

    def broken(self, crawl: dict, i: int) -> _Doc:
        texts = (None, "", "  \n\t  \n", "\x00\x01\x02")
        d = self.doc(
            crawl,
            texts[i % len(texts)] or "",
            self.unique_url("https://broken.example.net/page"),
            kind="broken_text",
            genre="broken",
        )
        d.text = texts[i % len(texts)]
        return d

    def _mirror_url(self, original: _Doc) -> str:
        path = original.url.split("/", 3)[3]
        return f"https://{self.rng.choice(_MIRROR_SITES)}/{path}"

    def assign_shards(self, crawl: dict) -> list[list[_Doc]]:
        """Spread documents over shards of equal size; a copy never shares its original's shard."""
        docs = self.docs[crawl["name"]]
        n = crawl["shards"]
        shards: list[list[_Doc]] = [[] for _ in range(n)]
        same_crawl_copies = [d for d in docs if d.original is not None and d.original.crawl == d.crawl]
        copy_ids = {id(d) for d in same_crawl_copies}
        rest = [d for d in docs if id(d) not in copy_ids]
        self.rng.shuffle(rest)
        for i, d in enumerate(rest):
            d.shard = i % n
            shards[d.shard].append(d)
        for d in same_crawl_copies:
            options = [s for s in range(n) if s != d.original.shard]
            d.shard = min(options, key=lambda s: (len(shards[s]), s))
            shards[d.shard].append(d)
        for shard in shards:
            self.rng.shuffle(shard)
            for row, d in enumerate(shard):
                d.row = row
        return shards


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(re.sub(r"\d+", "0", text.lower()))
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def _shingle_jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


# --------------------------------------------------------------------------- writing


def _write_atomic_parquet(table: pa.Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def build_demo_corpus(out_dir: Path, assets: Path | None = None, seed: int = 0) -> DemoCorpus:
    """Build the demo corpus into ``out_dir/crawl1`` (4 shards) and ``out_dir/crawl2`` (2 shards).

    Deterministic for a given ``seed`` and asset set. Raises ``FileNotFoundError``
    (telling how to fetch them) when the assets are missing.
    """
    out_dir = Path(out_dir)
    root = Path(assets) if assets is not None else assets_dir()
    builder = _Builder(root, seed)
    builder.build_crawl1()
    builder.build_crawl2()

    paths = {crawl["name"]: _write_crawl(builder, crawl, out_dir) for crawl in (_CRAWL1, _CRAWL2)}

    all_docs = builder.docs["crawl1"] + builder.docs["crawl2"]
    planted_docs = [d for d in all_docs if d.kind is not None]
    counts = Counter(d.kind for d in planted_docs)
    planted = {kind: counts.get(kind, 0) for kind in PLANTED_KINDS}

    def where(d: _Doc) -> dict:
        return {"file": f"{d.crawl}/{_shard_name(d.shard)}", "row": d.row, "id": d.id}

    records = []
    for d in sorted(planted_docs, key=lambda d: (d.crawl, d.shard, d.row)):
        record = {"kind": d.kind, **where(d)}
        if d.original is not None:
            record["original"] = where(d.original)
        records.append(record)
    forum = [d for d in all_docs if d.genre == "forum" and d.kind is None]
    ground_truth = {
        "seed": seed,
        "documents": len(all_docs),
        "planted": planted,
        # Not planted, but in the source text: forum threads with LDNOOBW words of their own.
        "unplanted": {
            "forum_threads": len(forum),
            "forum_threads_with_ldnoobw_words": sum(builder.badword_matcher.search(d.text) for d in forum),
        },
        "planted_docs": records,
    }
    replay, mmlu_rows = _write_replay_sample(builder, root, out_dir / "replay" / "sample.parquet")
    ground_truth["replay"] = {"file": "replay/sample.parquet", "documents": REPLAY_DOCS, "mmlu_question_rows": mmlu_rows}
    # built last, so that the two English crawls and the replay sample are what they were before it
    builder.build_crawl3()
    multilingual = _write_crawl(builder, _CRAWL3, out_dir)
    ground_truth["multilingual"] = {
        "file": f"crawl3/{_shard_name(0)}",
        "clean_pages_per_language": MULTILINGUAL_PAGES,
        "junk": [{"kind": d.kind, **where(d)} for d in sorted(builder.docs["crawl3"], key=lambda d: d.row) if d.kind],
    }
    write_text_atomic(out_dir / "planted.json", json.dumps(ground_truth, indent=1) + "\n")
    return DemoCorpus(
        crawl1=paths["crawl1"],
        crawl2=paths["crawl2"],
        planted=planted,
        replay=replay,
        replay_mmlu_rows=mmlu_rows,
        multilingual=multilingual,
    )


def _write_crawl(builder: _Builder, crawl: dict, out_dir: Path) -> list[Path]:
    shards = builder.assign_shards(crawl)
    target = out_dir / crawl["name"]
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, shard in enumerate(shards):
        table = pa.Table.from_pydict(
            {
                "id": [d.id for d in shard],
                "text": [d.text for d in shard],
                "url": [d.url for d in shard],
                "source": [crawl["source"]] * len(shard),
                "crawl_date": [d.date for d in shard],
                "http_status": [d.http_status for d in shard],
            },
            schema=SCHEMA,
        )
        path = target / _shard_name(i)
        _write_atomic_parquet(table, path)
        paths.append(path)
    return paths


REPLAY_DOCS = 150
REPLAY_MMLU_ROWS = (11, 97)


def _write_replay_sample(builder: _Builder, root: Path, path: Path) -> tuple[Path, list[int]]:
    """Wikipedia pages no crawl used, two of them with a long MMLU test question pasted in: the
    leak that decontamination exists for (PreSelect labels data with MMLU)."""
    texts = [builder.wiki_page("en")[0] for _ in range(REPLAY_DOCS)]
    questions = []
    with open(asset_path("mmlu.jsonl", root), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            question = (row.get("question") if isinstance(row, dict) else None) or ""
            if len(question.split()) >= 30 and "Scenario" not in question:
                questions.append(question)
            if len(questions) == len(REPLAY_MMLU_ROWS):
                break
    for row, question in zip(REPLAY_MMLU_ROWS, questions, strict=True):
        texts[row] = f"{texts[row]}\n\n{question}"
    _write_atomic_parquet(pa.table({"text": texts}), path)
    return path, list(REPLAY_MMLU_ROWS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provision.demo_corpus",
        description="Build the demo corpus (Parquet shards with planted problems) from the offline assets.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--assets", type=Path, default=None, help="assets directory (default: %(default)s -> $CURATE_ASSETS_DIR or <repo>/assets)"
    )
    args = parser.parse_args(argv)
    try:
        corpus = build_demo_corpus(args.out_dir, assets=args.assets, seed=args.seed)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n1 = sum(pq.ParquetFile(p).metadata.num_rows for p in corpus.crawl1)
    n2 = sum(pq.ParquetFile(p).metadata.num_rows for p in corpus.crawl2)
    print(
        f"demo corpus in {args.out_dir}: crawl1 {n1} docs in {len(corpus.crawl1)} shards, "
        f"crawl2 {n2} docs in {len(corpus.crawl2)} shards"
    )
    print("planted:")
    width = max(map(len, corpus.planted))
    for kind, n in corpus.planted.items():
        print(f"  {kind:<{width}}  {n}")
    print(f"  {'total':<{width}}  {sum(corpus.planted.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
