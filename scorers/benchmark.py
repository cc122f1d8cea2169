"""Benchmark scores measured, not typed in: multiple-choice accuracy by log-likelihood.

Each question is shown with its four lettered options and "Answer:"; the model's answer is the
letter whose continuation (" A", " B", ...) it gives the highest log-probability. This is the
letter-scoring variant of MMLU evaluation (Hendrycks et al., 2021); on a model as small as the
bundled ones it sits near chance, which is still a measured number the pair ordering can use.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from scorers.losses import TokenScorer

LETTERS = ("A", "B", "C", "D")


class BenchmarkFileError(ValueError):
    """A benchmark file that yields no usable question."""


@dataclass(frozen=True)
class Question:
    question: str
    choices: tuple[str, str, str, str]
    answer: int  # index into LETTERS
    topic: str


@dataclass(frozen=True)
class BenchmarkFile:
    questions: list[Question]
    skipped: list[tuple[int, str]]  # (line number, why) for every malformed row


def load_mmlu_jsonl(path: str | Path) -> BenchmarkFile:
    """Rows: question, answer_a..answer_d, correct_answer (A-D), topic. Malformed rows are skipped
    and reported with their line number, never silently."""
    questions, skipped = [], []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                row = json.loads(line)
                answer = LETTERS.index(str(row["correct_answer"]).strip().upper())
                choices = tuple(str(row[f"answer_{c}"]) for c in "abcd")
                if not str(row["question"]).strip():
                    raise ValueError("empty question")
                questions.append(Question(str(row["question"]), choices, answer, str(row.get("topic") or "")))
            except json.JSONDecodeError as err:
                skipped.append((number, f"not JSON: {err.msg}"))
            except KeyError as err:
                skipped.append((number, f"missing field {err.args[0]}"))
            except (ValueError, TypeError, AttributeError) as err:
                skipped.append((number, f"bad value: {err}" if str(err) else "correct_answer is not A-D"))
    if not questions:
        raise BenchmarkFileError(f"{path}: no usable question ({len(skipped)} malformed rows)")
    return BenchmarkFile(questions, skipped)


def sample_questions(questions: list[Question], n: int, seed: int = 0) -> list[Question]:
    """A deterministic subset spread over topics (round-robin over shuffled topics)."""
    by_topic: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        by_topic[q.topic].append(q)
    rng = random.Random(seed)
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_topic.items())]
    rng.shuffle(pools)
    picked: list[Question] = []
    while len(picked) < min(n, len(questions)):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return picked


def prompt_for(q: Question) -> str:
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, q.choices))
    return f"{q.question.strip()}\n{options}\nAnswer:"


def multiple_choice_accuracy(scorer: TokenScorer, questions: list[Question], bos_id: int | None) -> float:
    """Fraction of questions whose correct letter the model rates most likely after "Answer:".

    When each " A".." D" is a single token (the usual case) one next-token choice per question
    decides; otherwise each lettered continuation is scored by its total log-likelihood.
    """
    prefix = [bos_id] if bos_id is not None else []
    letters = [scorer.encode(f" {letter}") for letter in LETTERS]
    contexts = [prefix + scorer.encode(prompt_for(q))[-(scorer.max_len - len(prefix) - 4) :] for q in questions]
    if all(len(tokens) == 1 for tokens in letters) and len({t[0] for t in letters}) == 4:
        picks = scorer.choose(contexts, [t[0] for t in letters])
    else:
        sequences = [context + continuation for context in contexts for continuation in letters]
        logprobs = scorer.logprobs(sequences)
        picks = []
        for i, context in enumerate(contexts):
            scores = [sum(logprobs[4 * i + k][len(context) :]) for k in range(4)]
            picks.append(max(range(4), key=scores.__getitem__))
    return sum(int(pick == q.answer) for pick, q in zip(picks, questions)) / len(questions)
