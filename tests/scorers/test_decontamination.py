"""N-gram decontamination with datatrove's filter over indexes of real evaluation sets."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.utils.text import TextNormConfig, simplify_text
from datatrove.utils.word_tokenizers import load_word_tokenizer

from schemas.mixture import EvalSetSpec
from scorers.benchmark import load_mmlu_jsonl
from scorers.decontamination import Decontaminator, EvalSetError, read_eval_items

N = 13
MMLU = EvalSetSpec(name="mmlu")


@pytest.fixture(scope="module")
def spacy_words():
    tokenizer = load_word_tokenizer("en")
    return lambda text: tokenizer.word_tokenize(simplify_text(text, TextNormConfig()))


@pytest.fixture(scope="module")
def mmlu_questions(assets):
    return load_mmlu_jsonl(assets / "mmlu.jsonl").questions


@pytest.fixture(scope="module")
def mmlu_index(assets, tmp_path_factory):
    return Decontaminator.build([MMLU], N, tmp_path_factory.mktemp("decont"))


def plant(document: str, passage: str) -> str:
    """`passage` as a sentence of its own in the middle of a real document's second paragraph."""
    paragraphs = document.split("\n\n")
    target = paragraphs[1]
    cut = target.find(". ", len(target) // 3)
    cut = len(target) if cut < 0 else cut + 2
    paragraphs[1] = f"{target[:cut]}{passage} {target[cut:]}"
    return "\n\n".join(paragraphs)


def long_questions(questions, count: int, seed: int):
    """Questions of well over n words (not the moral-scenarios template that a thousand share)."""
    candidates = [q for q in questions if len(q.question.split()) >= 2 * N + 5 and "Scenario 1" not in q.question]
    return random.Random(seed).sample(candidates, count)


# ---------------------------------------------------------------- the bundled MMLU set


def test_planted_mmlu_questions_are_caught_with_a_question_ngram(mmlu_index, mmlu_questions, wiki_docs, spacy_words):
    picked = long_questions(mmlu_questions, 12, seed=0)
    hosts = wiki_docs[600 : 600 + len(picked)]
    planted = [plant(doc, q.question) for doc, q in zip(hosts, picked)]
    # the same question shouted and broken over lines: normalisation still finds it
    planted.append(plant(hosts[0], picked[0].question.upper().replace(" ", "\n", 5)))

    assert mmlu_index.check(hosts) == [None] * len(hosts)
    verdicts = mmlu_index.check(planted)
    for verdict, question in zip(verdicts, picked + picked[:1]):
        assert verdict is not None, question.question
        eval_set, ngram = verdict
        assert eval_set == "mmlu"
        assert len(ngram.split()) == N
        assert ngram in " ".join(spacy_words(question.question))


def test_question_followed_by_a_choice_is_caught_even_when_the_question_is_short(
    mmlu_index, mmlu_questions, wiki_docs, spacy_words
):
    # a wrong choice, to show that every choice is indexed, not only the correct one
    def fits(q):
        wrong = q.choices[(q.answer + 1) % 4]
        return 6 <= len(spacy_words(q.question)) < N and len(spacy_words(f"{q.question} {wrong}")) >= N + 2

    shuffled = random.Random(1).sample(mmlu_questions, len(mmlu_questions))
    question = next(q for q in shuffled if len(q.question.split()) < N and fits(q))
    choice = question.choices[(question.answer + 1) % 4]
    doc = plant(wiki_docs[700], f"{question.question} {choice}")
    alone = plant(wiki_docs[700], question.question)

    (hit,) = mmlu_index.check([doc])
    assert hit is not None and hit[0] == "mmlu"
    assert hit[1] in " ".join(spacy_words(f"{question.question} {choice}"))
    # the documented limit: fewer than n words of an item leave nothing to match
    assert mmlu_index.check([alone]) == [None]


def test_clean_real_text_has_no_match(mmlu_index, wiki_docs):
    assert mmlu_index.check(wiki_docs[:500]) == [None] * 500


def test_bundled_set_description(mmlu_index, assets, mmlu_questions):
    (entry,) = mmlu_index.eval_sets
    assert entry["name"] == "mmlu" and entry["path"] == str(assets / "mmlu.jsonl")
    assert entry["items"] == len(mmlu_questions)  # the two junk rows are not items
    assert 0 < entry["items_without_ngrams"] < entry["items"] // 5
    assert entry["ngrams"] > 100_000
    assert len(entry["sha256"]) == 64
    assert len(mmlu_index.identity) == 64 and int(mmlu_index.identity, 16) >= 0


# ---------------------------------------------------------------- the fast path is the exact path


def test_fast_and_exact_checks_give_identical_verdicts(mmlu_index, mmlu_questions, wiki_docs, messy_docs):
    exact = Decontaminator.build([MMLU], N, mmlu_index.folder.parent, exact_tokenizer=True)
    assert not exact.built and exact.identity == mmlu_index.identity
    picked = long_questions(mmlu_questions, 30, seed=5)
    texts = wiki_docs[800:900] + messy_docs[: len(messy_docs) * 2 // 3]
    texts += [plant(doc, q.question) for doc, q in zip(wiki_docs[950:], picked)]

    fast_verdicts = mmlu_index.check(texts)
    assert fast_verdicts == exact.check(texts)
    assert sum(v is not None for v in fast_verdicts) >= len(picked)


def test_fast_check_agrees_where_words_are_split_normalised_or_shared_by_two_sets(tmp_path, mmlu_questions, wiki_docs):
    """Texts whose match needs spaCy's splitting of a piece ("cannot" is two words), the digit,
    weekday and diacritics rules, or a long text; and an n-gram two sets share (the later set's
    name is reported)."""
    passage = (
        "The committee cannot meet on Tuesday because 42 members of the société travelled to Zürich "
        "for the annual review of naïve pricing models and will return later"
    )
    sets = [
        EvalSetSpec(name="a-first", path=str(write_jsonl(tmp_path / "a.jsonl", [{"t": passage}])), text_column="t"),
        EvalSetSpec(name="b-second", path=str(write_jsonl(tmp_path / "b.jsonl", [{"t": passage.upper()}])), text_column="t"),
    ]
    fast = Decontaminator.build(sets, N, tmp_path / "index")
    exact = Decontaminator.build(sets, N, tmp_path / "index", exact_tokenizer=True)
    texts = [
        plant(wiki_docs[3], passage),
        plant(wiki_docs[4], passage.replace("42", "97").replace("Tuesday", "Friday").replace("é", "e").replace("ü", "u")),
        plant(wiki_docs[5], passage.replace("cannot", "can not")),
        wiki_docs[6] + " " + passage[:60],  # too few words
        wiki_docs[7],
        "",
        " ".join(wiki_docs[8:40]) + " " + passage,
    ]
    verdicts = fast.check(texts)
    assert verdicts == exact.check(texts)
    assert [v[0] if v else None for v in verdicts] == ["b-second", "b-second", "b-second", None, None, None, "b-second"]


def test_index_built_with_the_cached_split_equals_spacy_s(tmp_path, mmlu_questions):
    path = write_parquet_questions(tmp_path / "q.parquet", mmlu_questions[5000:5400])
    spec = EvalSetSpec(name="qa", path=str(path), question_column="prompt", choices_column="options")
    fast = Decontaminator.build([spec], N, tmp_path / "fast")
    exact = Decontaminator.build([spec], N, tmp_path / "exact", exact_tokenizer=True)
    assert fast.identity == exact.identity
    assert (fast.folder / "qa.index.hashes").read_bytes() == (exact.folder / "qa.index.hashes").read_bytes()


# ---------------------------------------------------------------- user eval sets


def write_parquet_questions(path, questions):
    table = pa.table(
        {
            "prompt": [q.question for q in questions],
            "options": pa.array([list(q.choices) for q in questions], type=pa.list_(pa.string())),
        }
    )
    pq.write_table(table, path)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def user_sets(tmp_path, wiki_docs, mmlu_questions):
    passages = [p for doc in wiki_docs[1000:1010] for p in doc.split("\n\n")]
    jsonl = write_jsonl(tmp_path / "passages.jsonl", [{"id": i, "passage": p} for i, p in enumerate(passages)])
    parquet = write_parquet_questions(tmp_path / "quiz.parquet", mmlu_questions[2000:2300])
    return [
        EvalSetSpec(name="passages", path=str(jsonl), text_column="passage"),
        EvalSetSpec(name="quiz", path=str(parquet), question_column="prompt", choices_column="options"),
    ]


def test_user_jsonl_text_set_and_parquet_question_set(user_sets, tmp_path, wiki_docs, mmlu_questions, spacy_words):
    decont = Decontaminator.build(user_sets, N, tmp_path / "index")
    by_name = {entry["name"]: entry for entry in decont.eval_sets}
    passages = sum(len(doc.split("\n\n")) for doc in wiki_docs[1000:1010])
    assert by_name["passages"]["items"] == passages and by_name["quiz"]["items"] == 300
    assert by_name["passages"]["ngrams"] > 0 and by_name["quiz"]["ngrams"] > 0

    quoted = wiki_docs[1003].split("\n\n")[2]
    question = next(q for q in mmlu_questions[2000:2300] if len(spacy_words(q.question)) >= 2 * N)
    texts = [
        f"As the encyclopedia puts it: {quoted} That is all.",
        plant(wiki_docs[1200], question.question),
        wiki_docs[1201],
        plant(wiki_docs[1202], mmlu_questions[9000].question),  # in MMLU, not in this quiz
    ]
    verdicts = decont.check(texts)
    assert verdicts[0][0] == "passages" and verdicts[0][1] in " ".join(spacy_words(quoted))
    assert verdicts[1][0] == "quiz" and verdicts[1][1] in " ".join(spacy_words(question.question))
    assert verdicts[2:] == [None, None]


def test_every_item_of_a_text_set_is_read(user_sets, wiki_docs):
    items = read_eval_items(user_sets[0])
    assert [item.labels[0] for item in items] == [p for doc in wiki_docs[1000:1010] for p in doc.split("\n\n")]
    assert all(item.query is None and len(item.labels) == 1 for item in items)
    quiz = read_eval_items(user_sets[1])
    assert all(len(item.labels) == 4 and item.query for item in quiz)


# ---------------------------------------------------------------- bad eval files


GOOD_ROW = {"question": "What is the capital of France?", "choices": ["Paris", "Lyon"]}
BAD_ROWS = {  # case: (second line of the file, what the error must say)
    "not JSON": ("{oops", "not JSON"),
    "choices not a list": (json.dumps({**GOOD_ROW, "choices": "Paris"}), "'choices'"),
    "no question": (json.dumps({"choices": ["a"]}), "no column 'question'"),
    "empty question": (json.dumps({**GOOD_ROW, "question": "  "}), "'question'"),
    "an array": (json.dumps(["x"]), "not an object"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_malformed_jsonl_names_file_and_line(tmp_path, case):
    line, what = BAD_ROWS[case]
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD_ROW) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(EvalSetError) as err:
        Decontaminator.build([EvalSetSpec(name="bad", path=str(path))], N, tmp_path / "index")
    assert str(path) in str(err.value) and "line 2" in str(err.value) and what in str(err.value)
    assert not list((tmp_path / "index").rglob("index.json"))


def test_malformed_parquet_names_file_and_column_or_row(tmp_path):
    no_choices = tmp_path / "no_choices.parquet"
    pq.write_table(pa.table({"question": ["What is the capital of France?"]}), no_choices)
    null_question = tmp_path / "null_question.parquet"
    pq.write_table(pa.table({"question": ["Which planet is largest?", None], "choices": [["Jupiter"], ["Mars"]]}), null_question)
    not_parquet = tmp_path / "not.parquet"
    not_parquet.write_text("question,choices\n")

    for path, where in [(no_choices, "no column 'choices'"), (null_question, "row 1"), (not_parquet, "not a readable Parquet")]:
        with pytest.raises(EvalSetError) as err:
            Decontaminator.build([EvalSetSpec(name="bad", path=str(path))], N, tmp_path / "index")
        assert str(path) in str(err.value) and where in str(err.value)


def test_missing_empty_or_too_short_sets_are_errors(tmp_path):
    missing = tmp_path / "missing.jsonl"
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    short = write_jsonl(tmp_path / "short.jsonl", [{"text": "only five words right here"}])
    cases = [
        (EvalSetSpec(name="m", path=str(missing)), "not found"),
        (EvalSetSpec(name="e", path=str(empty)), "no row"),
        (EvalSetSpec(name="s", path=str(short), text_column="text"), f"has {N} words"),
    ]
    for spec, what in cases:
        with pytest.raises(EvalSetError) as err:
            Decontaminator.build([spec], N, tmp_path / "index")
        assert spec.path in str(err.value) and what in str(err.value)
    assert issubclass(EvalSetError, ValueError)
    with pytest.raises(ValueError, match="unique"):
        Decontaminator.build([MMLU, MMLU], N, tmp_path / "index")


# ---------------------------------------------------------------- the index on disk


def _stamps(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_index_is_reused_for_the_same_inputs_and_rebuilt_for_others(user_sets, tmp_path, wiki_docs):
    index_dir = tmp_path / "index"
    first = Decontaminator.build(user_sets, N, index_dir)
    assert first.built
    files = _stamps(first.folder)
    # no temporary left
    assert set(files) == {"index.json", "passages.index.hashes", "quiz.index.hashes", "passages.prefilter", "quiz.prefilter"}

    again = Decontaminator.build(user_sets, N, index_dir)
    assert not again.built and again.identity == first.identity and again.folder == first.folder
    assert _stamps(again.folder) == files
    assert again.eval_sets == first.eval_sets
    sample = [wiki_docs[1003], wiki_docs[1300]]
    assert again.check(sample) == first.check(sample)

    assert Decontaminator.build(user_sets, N + 1, index_dir).identity != first.identity
    passages = user_sets[0].path
    with open(passages, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"passage": wiki_docs[1400]}) + "\n")
    changed = Decontaminator.build(user_sets, N, index_dir)
    assert changed.built and changed.identity != first.identity
    assert _stamps(first.folder) == files


def test_an_incomplete_index_is_rebuilt(user_sets, tmp_path):
    index_dir = tmp_path / "index"
    first = Decontaminator.build(user_sets, N, index_dir)
    hashes = first.folder / "quiz.index.hashes"
    whole = hashes.read_bytes()

    hashes.write_bytes(whole[: len(whole) // 2])  # as if the copy had been cut short
    rebuilt = Decontaminator.build(user_sets, N, index_dir)
    assert rebuilt.built and hashes.read_bytes() == whole

    prefilter = first.folder / "passages.prefilter"
    keys = prefilter.read_bytes()
    prefilter.write_bytes(keys[:-8])
    assert Decontaminator.build(user_sets, N, index_dir).built and prefilter.read_bytes() == keys

    (first.folder / "index.json").unlink()  # a build killed before its manifest
    assert Decontaminator.build(user_sets, N, index_dir).built
