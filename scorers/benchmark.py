"""Benchmark scores measured, not typed in: multiple-choice accuracy by log-likelihood.

Each question is shown with its four lettered options and "Answer:"; the model's answer is the
letter whose continuation (" A", " B", ...) it gives the highest log-probability. This is the
letter-scoring variant of MMLU evaluation (Hendrycks et al., 2021); on a model as small as the
bundled ones it sits near chance, which is still a measured number the pair ordering can use.

An accuracy on n questions is a binomial proportion with standard error sqrt(p(1-p)/n); two models
whose accuracies differ by less than noise of that size may be ranked the wrong way round, and the
whole of PreSelect's labelling rests on that ranking, so such pairs are flagged (``pair_noise``).
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scorers.labels import compared_pairs
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


# Two-sided 95% critical value of the normal distribution: the usual two-proportion z-test.
NOISE_Z = 1.96
NOISE_RULE = (
    f"a pair's order is within noise when |p1 - p2| < {NOISE_Z} * sqrt(se1^2 + se2^2), se = sqrt(p(1-p)/n): "
    "the usual two-proportion z-test (unpooled) at the two-sided 95% level cannot tell the two accuracies apart. "
    "Both models answer the same questions, and models usually err on the same hard ones, so the test "
    "overstates the noise a little and warns on the safe side."
)


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` questions: sqrt(p(1-p)/n)."""
    if n < 1:
        raise ValueError(f"a standard error needs at least 1 question, got n={n}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"an accuracy lies in [0, 1], got {accuracy}")
    return math.sqrt(accuracy * (1.0 - accuracy) / n)


@dataclass(frozen=True)
class PairNoise:
    better: str
    worse: str
    difference: float  # better score - worse score, > 0
    combined_se: float | None  # sqrt(se_better^2 + se_worse^2); None when a score has no standard error
    z: float | None  # difference / combined_se
    within_noise: bool | None  # None: not assessed (see note)
    note: str = ""


def pair_noise(scores: Mapping[str, float], errors: Mapping[str, float | None], z_critical: float = NOISE_Z) -> list[PairNoise]:
    """Every pair with distinct scores, better model first, and whether noise could flip its order.

    ``errors`` holds each model's standard error, or None for a score with none (typed in, not
    measured): a pair with such a model is not assessed rather than judged on an invented error.
    """
    pairs, _ = compared_pairs(scores)
    result = []
    for better, worse in pairs:
        difference = float(scores[better]) - float(scores[worse])
        unknown = [m for m in (better, worse) if errors.get(m) is None]
        if unknown:
            note = f"not assessed: no standard error for {', '.join(unknown)} (score given, not measured)"
            result.append(PairNoise(better, worse, difference, None, None, None, note))
            continue
        combined = math.hypot(errors[better], errors[worse])
        if combined == 0:  # accuracies of exactly 0 and 1: the binomial error vanishes, the order cannot flip
            result.append(PairNoise(better, worse, difference, 0.0, None, False, "both standard errors are 0"))
            continue
        z = difference / combined
        result.append(PairNoise(better, worse, difference, combined, z, z < z_critical))
    return result


def noise_warning(pairs: Sequence[PairNoise], questions: Mapping[str, int | None]) -> str | None:
    """One sentence naming the pairs whose benchmark order noise could flip; None when there are none."""
    close = [p for p in pairs if p.within_noise]
    if not close:
        return None
    named = "; ".join(
        f"{p.better} {p.difference:+.3f} over {p.worse} (z = {p.z:.2f} < {NOISE_Z}, "
        f"{questions.get(p.better)} and {questions.get(p.worse)} questions)"
        for p in close
    )
    return (
        f"benchmark order within noise for {len(close)} model pair(s): {named}. The labels rest on this order; "
        "to trust it, measure on more questions (benchmark.questions) or give scores measured elsewhere "
        "(benchmark_score)."
    )
