"""Section 8: what the rewrite stage's output gates catch, on a labelled evaluation set.

The set (tests/data/gate_eval.yaml) holds real Wikipedia chunks, each with one good rewrite in its
style written by hand and hand-written failures of the kinds no rule can derive (meta-descriptions,
invented facts, obeyed injections, wrong language). `build_cases` derives the mechanical kinds from
every item: a loop, a truncation, a verbatim copy, a refusal, a preamble (which must be stripped,
not rejected), three forms of prompt echo, a toxic insertion and, for QA and list styles, the same
facts without the style's shape.

Each case goes through what `judge` does to a generation (preamble stripping, then every gate with
the style's settings); the near-duplicate gate compares records with each other and is measured by
its own tests instead. Reported: per kind of failure, the share caught and the gates that fired;
per gate, how often it fired on bad and on good outputs; overall, the share of bad outputs caught
(goal >= 95 %) and of good ones wrongly rejected (goal <= 5 %).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

EVAL_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "gate_eval.yaml"
CATCH_GOAL, FALSE_REJECT_GOAL = 0.95, 0.05
GOOD, PREAMBLE = "good", "preamble"
REFUSALS = (
    "I'm sorry, but I can't help with rewriting this passage.",
    "As an AI language model, I cannot provide a rewritten version of this text.",
    "I apologize, but I am unable to comply with this request. Please provide a different text.",
)
ECHOES = ("<<Document>>\n{good}", "{good}\n</document>", "{instruction}\n\n{good}")
# the gate each kind of failure is there to test
CLAIMED_BY = {
    "loop": "repetition",
    "truncated": "truncated",
    "verbatim_copy": "near_copy",
    "refusal": "refusal",
    "prompt_echo": "prompt_echo",
    "meta_description": "meta_description",
    "invented": "added_facts",
    "injection_obeyed": "low_overlap",
    "wrong_language": "wrong_language",
    "toxic": "toxicity",
    "no_shape": "shape",
}
TOXIC_INSERTS = 3  # words of the LDNOOBW list put into a good output


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # "good", "preamble", or the failure it is an example of
    style: str
    chunk: str
    output: str
    finish_reason: str = "stop"
    expected_text: str | None = None  # preamble: what must be left after stripping

    @property
    def bad(self) -> bool:
        return self.kind not in (GOOD, PREAMBLE)


def load_items(path: Path = EVAL_SET) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["items"]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s.strip()]


def _without_shape(style_shape: str, good: str) -> str | None:
    """The good output's facts as plain prose: QA answers or list items run together."""
    if style_shape == "qa":
        from curation.rewrite.gates import qa_pairs

        answers = [answer for _, answer in qa_pairs(good)]
        return " ".join(answers) if answers else None
    if style_shape == "list":
        items = [re.sub(r"^\s*[-*•]\s*", "", line).rstrip(".") + "." for line in good.splitlines() if line.strip()]
        return " ".join(items)
    return None


def _toxic(good: str, wordlists: Path) -> str:
    """The good output with LDNOOBW words put at the ends of some of its lines or sentences (its
    lines kept, so a QA or list output keeps its shape)."""
    words = [w for w in (wordlists / "en.txt").read_text(encoding="utf-8").split("\n") if w.strip().isalpha()]
    picked = [words[(i * 37) % len(words)] for i in range(TOXIC_INSERTS)]
    lines = good.splitlines()
    if len(lines) == 1:
        lines = _sentences(good)
    for i, word in enumerate(picked):
        at = (i + 1) * len(lines) // (TOXIC_INSERTS + 1)
        lines[at] = f"{lines[at]} What {word}."
    return ("\n" if "\n" in good else " ").join(lines)


def build_cases(items: list[dict], registry: dict, wordlists: Path) -> list[Case]:
    """Every item's good output, its hand-written failures and the derived ones."""
    from curation.rewrite.styles import style_instructions
    from schemas.rewrite import GateSettings

    cases = []
    for n, item in enumerate(items):
        style = registry[item["style"]]
        chunk, good = item["chunk"].strip(), item["good"].strip()
        base = {"style": item["style"], "chunk": chunk}
        cases.append(Case(id=f"{item['id']}/good", kind=GOOD, output=good, **base))
        for i, bad in enumerate(item.get("bad", [])):
            own_chunk = chunk + bad.get("chunk_suffix", "")
            cases.append(
                Case(
                    id=f"{item['id']}/{bad['kind']}-{i}",
                    kind=bad["kind"],
                    style=item["style"],
                    chunk=own_chunk,
                    output=bad["output"].strip(),
                )
            )
        first = _sentences(good)[0]
        # the longest sentence of the style's instructions without a marker in it: an echo the
        # marker check alone would not see
        instruction = max((s for s in _sentences(style_instructions(style).replace("\n", " ")) if "<" not in s), key=len)
        derived = {
            "loop": " ".join([first] * 8),
            "truncated": good[: len(good) * 55 // 100].rsplit(" ", 1)[0],
            "verbatim_copy": chunk,
            "refusal": REFUSALS[n % len(REFUSALS)],
            "prompt_echo": ECHOES[n % len(ECHOES)].format(good=good, instruction=instruction),
            "toxic": _toxic(good, wordlists),
        }
        shape = style.gate_settings(GateSettings()).shape
        unshaped = _without_shape(shape, good)
        if unshaped:
            derived["no_shape"] = unshaped
        for kind, output in derived.items():
            finish = "length" if kind == "truncated" else "stop"
            cases.append(Case(id=f"{item['id']}/{kind}", kind=kind, output=output, finish_reason=finish, **base))
        cases.append(
            Case(
                id=f"{item['id']}/preamble",
                kind=PREAMBLE,
                output=f"Sure! Here is the rewritten text:\n\n{good}",
                expected_text=good,
                **base,
            )
        )
    return cases


def judge_case(case: Case, registry: dict, lid_model: str, wordlists: Path) -> tuple[dict[str, str], str | None, str]:
    """The verdicts, the reject reason and the text left, from what the rewrite stage's `judge` calls."""
    from curation.rewrite.gates import gate_output
    from schemas.rewrite import GateSettings

    text, verdicts, reason = gate_output(
        case.output,
        registry[case.style],
        GateSettings(),
        chunk=case.chunk,
        language="en",
        finish_reason=case.finish_reason,
        lid_model=lid_model,
        wordlists=wordlists,
    )
    return verdicts, reason, text


def evaluate(cases: list[Case] | None = None) -> dict:
    """Catch and false-reject rates, per kind, per gate and overall."""
    from curation.rewrite.styles import load_registry
    from scorers.assets import asset_path

    registry = load_registry()
    lid_model, wordlists = str(asset_path("lid.176.ftz")), asset_path("ldnoobw")
    cases = cases if cases is not None else build_cases(load_items(), registry, wordlists)
    kinds: dict[str, dict] = defaultdict(lambda: {"cases": 0, "caught": 0, "first_gates": Counter(), "missed": []})
    fired_bad, fired_good = Counter(), Counter()
    own = defaultdict(lambda: [0, 0])  # gate -> [cases of its kind it failed, cases of its kind]
    false_rejects = []
    for case in cases:
        verdicts, reason, text = judge_case(case, registry, lid_model, wordlists)
        failed = [gate for gate, verdict in verdicts.items() if verdict.startswith("fail")]
        entry = kinds[case.kind]
        entry["cases"] += 1
        if case.kind == GOOD:
            fired_good.update(failed)
            if reason is not None:
                false_rejects.append({"id": case.id, "reason": reason, "verdict": verdicts[reason]})
            continue
        fired_bad.update(failed)
        if case.kind in CLAIMED_BY:
            gate = CLAIMED_BY[case.kind]
            own[gate][0] += gate in failed
            own[gate][1] += 1
        ok = reason is None and text == case.expected_text if case.kind == PREAMBLE else reason is not None
        entry["caught"] += ok
        if reason:
            entry["first_gates"][reason] += 1
        if not ok:
            entry["missed"].append(case.id)
    bad_cases = sum(e["cases"] for k, e in kinds.items() if k != GOOD)
    caught = sum(e["caught"] for k, e in kinds.items() if k != GOOD)
    good_cases = kinds[GOOD]["cases"]
    return {
        "cases": len(cases),
        "good": good_cases,
        "bad": bad_cases,
        "catch_rate": round(caught / bad_cases, 4) if bad_cases else None,
        "false_reject_rate": round(len(false_rejects) / good_cases, 4) if good_cases else None,
        "goals": {"catch_rate": CATCH_GOAL, "false_reject_rate": FALSE_REJECT_GOAL},
        "kinds": {
            kind: {**e, "first_gates": dict(e["first_gates"]), "catch_rate": round(e["caught"] / e["cases"], 4)}
            for kind, e in sorted(kinds.items())
            if kind != GOOD
        },
        "gates": {
            gate: {
                "own_kind_caught": own[gate][0] if gate in own else None,
                "own_kind_cases": own[gate][1] if gate in own else None,
                "fired_on_bad": fired_bad[gate],
                "fired_on_good": fired_good[gate],
                "false_reject_rate": round(fired_good[gate] / good_cases, 4) if good_cases else None,
            }
            for gate in sorted(set(fired_bad) | set(fired_good) | set(own))
        },
        "false_rejects": false_rejects,
    }


def gates_benchmark(log=print) -> dict:
    log("gates: the labelled evaluation set through every output gate")
    return evaluate()
