"""Section 10: the toxicity word-list match, one Aho-Corasick automaton against the regular
expression it replaced (one alternative per term, longest first, whole words only).

Both run over the same real text (Wikipedia leads in English, Spanish and French, nlp-corpus
sentences) with the English list; reported: characters per second of each, the ratio, and the
number of texts where the two find different terms (the goal is none).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path


def list_terms(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return sorted({line.strip().lower() for line in lines if line.strip() and not line.startswith("#")})


def regex_flagged(terms: list[str]):
    """The rule as the regular expression it used to be: what the automaton is held to."""
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    return lambda text: pattern.findall(text.lower())


def real_texts(assets: Path, per_language: int = 400, corpus_files: int = 10) -> list[str]:
    texts = []
    for name in ("en-us", "es-es", "fr-fr"):
        data = json.loads((assets / "wiki" / f"summaries_{name}.json").read_text(encoding="utf-8"))
        texts += [e["extract"] for e in list(data.values())[:per_language]]
    for path in sorted((assets / "nlp-corpus").glob("doc-*.json"))[:corpus_files]:
        texts += [s for s in json.loads(path.read_text(encoding="utf-8")) if isinstance(s, str)]
    return texts


def toxicity_match(log=print) -> dict:
    from scorers.assets import assets_dir
    from scorers.toxicity import flagged_words

    assets = assets_dir()
    lists = assets / "ldnoobw"
    texts = real_texts(assets, per_language=2000, corpus_files=100)
    reference = regex_flagged(list_terms(lists / "en.txt"))
    flagged_words("warm up", "en", lists)  # the automaton is built once per list, outside the timing
    chars = sum(map(len, texts))
    log(f"toxicity word match on {len(texts)} texts ({chars:,} characters)")
    timings, results = {}, {}
    for name, match in (("regex", reference), ("automaton", lambda t: flagged_words(t, "en", lists))):
        started = time.perf_counter()
        results[name] = [match(t) for t in texts]
        timings[name] = time.perf_counter() - started
    differ = sum(a != b for a, b in zip(results["regex"], results["automaton"], strict=True))
    return {
        "texts": len(texts),
        "characters": chars,
        "regex_chars_per_s": round(chars / timings["regex"]),
        "automaton_chars_per_s": round(chars / timings["automaton"]),
        "speedup": round(timings["regex"] / timings["automaton"], 2),
        "texts_flagged": sum(bool(r) for r in results["automaton"]),
        "texts_that_differ": differ,
    }
