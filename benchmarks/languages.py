"""Section 9: the quality stage per language, each judged with its own block.

For English, Spanish and French, the bundled Wikipedia reference documents (five leads of a topic
per document, as `curate calibrate bundled` reads them) go through the quality stage as a run
allowing all three would send them: the stage's own `check`, in this process, one thread. Reported
per language: documents and words per second, the share kept (the calibration's goal is to keep
clean text: >= 95 %), and the speed relative to English in the same run, since the word tokenizer
(spaCy's per-language rules) is most of the cost.
"""

from __future__ import annotations

import time

LANGUAGES = ("en", "es", "fr")


def quality_by_language(docs: int, log=print) -> dict:
    from curation.calibration import bundled_reference
    from curation.quality import Quality
    from schemas.config import config_from_dict

    config = config_from_dict({"input": {"paths": ["unused"]}, "language": {"allowed": list(LANGUAGES)}})
    stage = Quality(config)
    stage.setup()
    results = {}
    for language in LANGUAGES:
        texts = bundled_reference(language).texts[:docs]
        stage.filters_for(language)  # built outside the timing, as a run builds them once
        log(f"quality stage on {len(texts)} {language} reference documents")
        started = time.perf_counter()
        verdicts = [stage.check({"text": t, "doc_id": str(i), "url": None, "language": language}) for i, t in enumerate(texts)]
        seconds = time.perf_counter() - started
        words = sum(len(t.split()) for t in texts)
        results[language] = {
            "documents": len(texts),
            "seconds": round(seconds, 3),
            "docs_per_s": round(len(texts) / seconds, 1),
            "words_per_s": round(words / seconds),
            "kept_share": round(sum(v is None for v in verdicts) / len(texts), 4),
            "word_tokenizer": config.quality.for_language(language).word_tokenizer,
        }
    english = results["en"]["words_per_s"]
    for entry in results.values():
        entry["speed_vs_english"] = round(entry["words_per_s"] / english, 2)
    return {"languages": results, "kept_goal": 0.95}
