"""Published method rules of the rewrite stage, each on a hand-computed case: the engine context
sized from the routed styles (Nemotron-CC's token limits), chunks cut so the prompt fits inside the
style's input budget, Nemotron-CC's QA-append count, and Physics of LMs' k paraphrases of one chunk
not gating one another as near-duplicates."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError
from test_rewrite_near_duplicates import ChosenTexts, by_chunk, chunk_of, generations, near_duplicate_verdict
from test_rewrite_run import curate_six_documents, records, rewrite_config

from curation.rewrite.chunking import TokenCounter, chunk_text, prompt_tokens, text_budget
from curation.rewrite.engines import GenerationResult
from curation.rewrite.gates import append_qa_nemotron_cc, nemotron_cc_pair_limit, qa_pairs
from curation.rewrite.runner import engine_context, run_rewrite
from curation.rewrite.styles import StyleError, load_registry, render_messages
from schemas.rewrite import DEFAULT_REWRITE_YAML, QaAppend, RewriteConfig, StyleSpec
from scorers.models import model_path


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter(model_path("smollm2-135m-instruct"))


@pytest.fixture()
def curated(tmp_path, wiki_docs):
    return curate_six_documents(tmp_path, wiki_docs)


def config(styles: list[str], inline: list[dict] | None = None, **engine) -> RewriteConfig:
    return RewriteConfig.model_validate(
        {"routes": [{"name": "all", "styles": [{"style": s} for s in styles]}], "styles": inline or [], "engine": engine}
    )


def big_style(style_id: str = "big_inputs") -> dict:
    return {
        "id": style_id,
        "version": 1,
        "cites": "a test",
        "user": "Rewrite:\n{text}",
        "chunk_tokens": 2000,
        "max_output_tokens": 1600,
    }


# ---------------------------------------------------------------- context sizing


def test_a_style_that_cannot_fit_an_explicit_context_is_an_error_naming_it(counter):
    cfg = config(["wrap_wikipedia", "big_inputs"], [big_style()], max_model_len=2048)
    with pytest.raises(
        StyleError,
        match=r"routes\[0\] \(all\) style big_inputs: its prompt \(\d+ tokens\) plus a 2000-token chunk.*needs \d+ tokens.*max_model_len 2048",
    ):
        engine_context(cfg, load_registry(inline=cfg.styles), counter)


@pytest.mark.parametrize(("style", "needed"), [("nemotron_distill", 3600), ("nemotron_extract_knowledge", 2800)])
def test_nemotron_cc_limits_do_not_fit_the_old_default_context(counter, style, needed):
    # the prompt is inside the input budget (chunk_tokens), as NeMo Curator counts it
    cfg = config([style], max_model_len=2048)
    with pytest.raises(StyleError, match=rf"style {style}:.*needs {needed} tokens"):
        engine_context(cfg, load_registry(), counter)
    assert engine_context(config([style], max_model_len=needed), load_registry(), counter) == needed
    with pytest.raises(StyleError, match=rf"needs {needed} tokens, more than engine.max_model_len {needed - 1}"):
        engine_context(config([style], max_model_len=needed - 1), load_registry(), counter)


def test_an_unset_context_is_sized_from_the_largest_routed_style(counter):
    registry = load_registry()
    cfg = config(["wrap_wikipedia", "nemotron_distill", "sentence_shuffle"])
    assert cfg.engine.max_model_len is None
    assert engine_context(cfg, registry, counter) == 3600  # 2000 in (the prompt included) + 1600 out
    # WRAP's 300 tokens are text: the prompt comes on top
    wrap = registry["wrap_wikipedia"]
    assert not wrap.input_includes_prompt
    assert engine_context(config(["wrap_wikipedia"]), registry, counter) == 300 + 512 + prompt_tokens(wrap, counter)


def test_the_default_config_file_leaves_the_context_to_the_styles():
    import yaml

    data = yaml.safe_load(DEFAULT_REWRITE_YAML)
    assert data["engine"]["max_model_len"] is None
    assert RewriteConfig.model_validate(data).engine.max_model_len is None


def test_nemotron_cc_chunks_are_cut_so_prompt_and_chunk_fit_the_input_budget_and_wrap_s_are_300_tokens_of_text(
    counter, wiki_docs
):
    registry = load_registry()
    text = "\n\n".join(wiki_docs[:3])
    assert all(style.input_includes_prompt for sid, style in registry.items() if sid.startswith("nemotron_"))
    style = registry["nemotron_wikipedia"]
    budget = text_budget(style, counter)
    assert budget < style.chunk_tokens - prompt_tokens(style, counter) + 1
    chunks = chunk_text(text, budget, counter)
    assert len(chunks) > 2
    prompts = [counter.chat_tokens(render_messages(style, c.text)) for c in chunks]
    assert max(prompts) <= style.chunk_tokens
    assert max(prompts) > style.chunk_tokens - 60  # the budget is used, not wasted
    wrap = registry["wrap_wikipedia"]
    assert text_budget(wrap, counter) == wrap.chunk_tokens == 300
    assert max(c.tokens for c in chunk_text(text, 300, counter)) > 240


def test_a_prompt_longer_than_the_input_budget_is_an_error_naming_the_style(counter):
    style = StyleSpec.model_validate(
        {**big_style("tight"), "chunk_tokens": 20, "input_includes_prompt": True, "user": "word " * 30 + "{text}"}
    )
    with pytest.raises(StyleError, match="style tight: its prompt takes"):
        text_budget(style, counter)
    cfg = config(["tight"])
    cfg.styles.append(style)
    with pytest.raises(StyleError, match="style tight: its prompt takes"):
        engine_context(cfg, load_registry(inline=cfg.styles), counter)


def test_the_plan_cuts_each_style_s_chunks_to_what_its_prompt_leaves(counter, wiki_docs):
    """Two styles of one route whose chunk_tokens includes the prompt, with prompts of different
    length, get chunks of different size, each request within chunk_tokens; a model-free style
    gets chunks of chunk_tokens of text."""
    import pyarrow as pa

    from curation.rewrite.work import ModelIdentity, plan_work
    from schemas.rewrite import RouteRule, SamplingConfig

    within = {"chunk_tokens": 300, "input_includes_prompt": True}
    long_prompt = StyleSpec.model_validate({**big_style("long_prompt"), **within, "user": "Rewrite. " * 60 + "{text}"})
    short_prompt = StyleSpec.model_validate({**big_style("short_prompt"), **within, "user": "Rewrite: {text}"})
    registry = load_registry(inline=[long_prompt, short_prompt])
    assert text_budget(long_prompt, counter) < text_budget(short_prompt, counter) - 100
    text = "\n\n".join(wiki_docs[:2])
    doc = {"doc_id": "d", "run_id": "r", "text": text, "source": None, "language": "en", "quality_bucket": None}
    rules = [RouteRule(styles=[{"style": "long_prompt"}, {"style": "short_prompt"}, {"style": "sentence_shuffle"}])]
    plan = plan_work(pa.Table.from_pylist([doc]), rules, registry, counter, ModelIdentity("m", "h"), SamplingConfig(), 4096)
    chunks = {
        sid: [i.chunk for i in plan.items if i.style.id == sid] for sid in ("long_prompt", "short_prompt", "sentence_shuffle")
    }
    assert len(chunks["long_prompt"]) > len(chunks["short_prompt"]) > 1
    for item in plan.items:
        if item.messages:
            assert item.prompt_tokens <= item.style.chunk_tokens
    shuffle = registry["sentence_shuffle"]
    assert chunks["sentence_shuffle"] == chunk_text(text, shuffle.chunk_tokens, counter)


# ---------------------------------------------------------------- QA append


@pytest.mark.parametrize(("tokens", "limit"), [(0, 1), (14, 1), (15, 1), (29, 1), (30, 2), (149, 9), (150, 10), (300, 20)])
def test_nemotron_cc_pair_limit_is_max_1_floor_10_tokens_over_150(tokens, limit):
    assert nemotron_cc_pair_limit(tokens) == limit


def qa_output(n: int) -> str:
    return "\n".join(f"Question: What is fact number {i}?\nAnswer: It is the fact numbered {i}." for i in range(n))


def test_a_300_token_document_gets_1_to_20_of_the_pairs_after_the_whole_document():
    document = "The whole source document.\nIt has two lines."
    generated = qa_pairs(qa_output(30))
    counts = []
    for seed in range(400):
        text = append_qa_nemotron_cc(document, qa_output(30), 300, seed)
        assert text.startswith(document + "\n\nQuestion: ")
        appended = qa_pairs(text[len(document) :])
        assert len(set(appended)) == len(appended) and set(appended) <= set(generated)
        counts.append(len(appended))
    assert min(counts) == 1 and max(counts) == 20  # the bound, reached at both ends over 400 draws
    assert append_qa_nemotron_cc(document, qa_output(30), 300, 7) == append_qa_nemotron_cc(document, qa_output(30), 300, 7)
    assert append_qa_nemotron_cc(document, "no pairs here", 300, 7) is None
    # a short document: always exactly one pair
    assert {len(qa_pairs(append_qa_nemotron_cc(document, qa_output(30), 14, s))) for s in range(50)} == {1}


def test_qa_append_defaults_to_the_published_rule_and_keeps_the_fixed_one():
    assert QaAppend.model_validate({}).rule == "nemotron_cc"
    assert QaAppend.model_validate({"rule": "nemotron_cc"}).max_pairs == 10
    fixed = QaAppend.model_validate({"rule": "fixed", "pairs": 3})
    assert (fixed.rule, fixed.pairs) == ("fixed", 3)
    assert QaAppend.model_validate({"pairs": 2}).rule == "fixed"  # the form older configs used
    with pytest.raises(ValidationError):
        QaAppend.model_validate({"rule": "sometimes"})


class QaFromChunk:
    """Question/answer pairs whose answers are the chunk's sentences without every fourth word, so
    the gates see grounded, non-copied, English output."""

    name = model_name = "qa"
    model_hash = None

    def generate(self, requests):
        return [
            GenerationResult(key=r.key, text=self.answer(r), finish_reason="stop", tokens_in=1, tokens_out=1) for r in requests
        ]

    @staticmethod
    def answer(request) -> str:
        sentences = [s for s in chunk_of(request).replace("\n", " ").split(". ") if len(s.split()) > 6]
        pairs = []
        for sentence in sentences:
            words = [w for j, w in enumerate(sentence.split()) if j % 4 != 3]
            # the question names no number and no name: the output adds no fact to the chunk
            pairs.append(f"Question: What else is known here?\nAnswer: {' '.join(words)}.")
        return "\n".join(pairs)

    def close(self):
        pass


def test_a_qa_record_is_its_whole_document_followed_by_a_bounded_sample_of_pairs(curated, counter):
    cfg = rewrite_config(
        curated,
        rewrite_id="qa",
        routes=[{"styles": [{"style": "nemotron_diverse_qa"}]}],
        style_overrides={"nemotron_diverse_qa": {"postprocess": {"qa_append": {}}}},
    )
    run_rewrite(cfg, engine=QaFromChunk())
    documents = {r["doc_id"]: r["text"] for r in records(curated, "SELECT doc_id, text FROM documents")}
    rows = [r for r in generations(curated, "qa") if r["accepted"]]
    assert len(rows) >= 4
    for row in rows:
        document = documents[row["doc_id"]]
        assert row["text"].startswith(document.rstrip() + "\n\nQuestion: ")
        appended = qa_pairs(row["text"][len(document.rstrip()) :])
        assert 1 <= len(appended) <= nemotron_cc_pair_limit(counter.count(document))
        assert set(appended) <= set(qa_pairs(row["raw_output"]))
        assert json.loads(row["gate_verdicts"])["qa_pairs"] == "pass"


# ---------------------------------------------------------------- variants and near-duplicates


def test_the_k_variants_of_one_chunk_do_not_reject_one_another(curated):
    routes = [{"styles": [{"style": "physics_paraphrase", "variants": 3}]}]
    run_rewrite(rewrite_config(curated, rewrite_id="k3", routes=routes), engine=ChosenTexts(near_copies=True))
    groups = by_chunk(generations(curated, "k3"))
    assert len(groups) > 6 and all(len(rows) == 3 for rows in groups.values())
    for rows in groups.values():  # near copies of each other, one word apart, yet all kept
        assert all(r["accepted"] and near_duplicate_verdict(r) is None for r in rows)


class OnePassage:
    """Every request answered with a near copy of one fixed passage: the variants of a chunk are
    siblings, every other chunk's answers are near-duplicates of another chunk's records."""

    name = model_name = "one"
    model_hash = None

    def __init__(self, passage: str):
        self.words = [w for i, w in enumerate(passage.split()) if i % 4 != 3]

    def generate(self, requests):
        out = []
        for r in requests:
            words = list(self.words)
            del words[random.Random(r.seed).randrange(len(words))]
            out.append(GenerationResult(key=r.key, text=" ".join(words), finish_reason="stop", tokens_in=1, tokens_out=1))
        return out

    def close(self):
        pass


def test_a_near_duplicate_from_another_chunk_is_still_rejected(curated, wiki_docs):
    cfg = rewrite_config(
        curated,
        rewrite_id="one",
        routes=[{"styles": [{"style": "physics_paraphrase", "variants": 3}]}],
        # the passage is off-topic for most chunks: its words and names are not theirs
        gates={"min_overlap": 0.0, "length_ratio": [0.0, 100.0], "max_added_facts": 1000},
    )
    run_rewrite(cfg, engine=OnePassage(wiki_docs[7][:1200]))
    rows = generations(curated, "one")  # record_id order: the first record's chunk owns the passage
    first_chunk = (rows[0]["doc_id"], rows[0]["chunk_index"])
    owners = {r["record_id"] for r in by_chunk(rows)[first_chunk]}
    assert len(owners) == 3 and len(by_chunk(rows)) > 6
    for row in rows:
        if (row["doc_id"], row["chunk_index"]) == first_chunk:
            assert row["accepted"] and near_duplicate_verdict(row) is None
        else:
            assert row["reject_reason"] == "near_duplicate"
            assert near_duplicate_verdict(row).removeprefix("fail: of ") in owners
