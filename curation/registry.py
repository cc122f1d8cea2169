"""The stages of a curation run, in order: the one list the runner, the flow and the CLI read.

Adding a stage is one new module with a `Stage` subclass (curation/stage.py) and one line here.

The order: deduplication first, because C4's filter rewrites the text it keeps and would hide
copies from MinHash; language ID before the heuristic filters, because those assume the
document's language (stop words, sentence rules) and cost ~100x more per document; toxicity after
language, to pick the word list of the document's language; model-based scoring after every
cheaper filter, selecting among what they kept; PII redaction last, on what is kept.
"""

from __future__ import annotations

from curation.dedup import ExactDedup, NearDedup
from curation.ingest import Ingest
from curation.language import LanguageId
from curation.pii import PiiRedaction
from curation.quality import Quality
from curation.scoring import Score
from curation.stage import Stage
from curation.toxicity import Toxicity

STAGES: tuple[type[Stage], ...] = (
    Ingest,
    ExactDedup,
    NearDedup,
    LanguageId,
    Quality,
    Toxicity,
    Score,
    PiiRedaction,
)


def stage_named(name: str, stages: tuple[type[Stage], ...] = STAGES) -> type[Stage]:
    for stage in stages:
        if stage.name == name:
            return stage
    raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in stages]}")
