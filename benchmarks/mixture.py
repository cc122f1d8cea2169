"""Section 7: `curate mix` and the trainer exports against the bare `tokenizers` batch API.

Set-up (not measured): a corpus of its own, MIX_SCALE times the benchmark's; a curation run over
it with the filters off, a model-free
sentence-shuffle rewrite of some of its documents, and a replay corpus of other documents (another
seed) into a few of which MMLU questions are pasted, so that decontamination has something to find.
The three sources are mixed with weights equal to their token counts and `target_tokens` equal to
their sum: every usable record is emitted about once, so the mixture's texts are the texts the bare
tokenizer is timed on.

Measured, each in its own child process (see child.py); the bare tokenizer and the cold mixes in
COLD_ROUNDS rounds, each round the bare pass and then the cold mixes, the round with the median
ratio reported per cold mix (the machine's speed drifts by ~10 % over minutes, and a mix measured
a minute after its baseline would carry that drift); the rest once, against the median bare pass:

* the bare tokenizer: `Tokenizer.from_file(...).encode_batch_fast(texts, add_special_tokens=False)`
  over every candidate text, after a warm-up call, in one call and in batches of the mix's own
  size; the fastest of four passes, with its CPU time (every thread's);
* `mix(spec)` cold (fresh record caches) and warm (a second mixture over the same records with
  another seed and mixture_id), with decontamination off and on (MMLU); the MMLU index is built
  before the timed part (a one-off per eval set, printed);
* cold mixes at 1x (a quarter of the records, a quarter of the tokens), decontamination off and
  on: with the 4x cold mixes, the marginal rate and the fixed cost per call; and peak RSS 1x vs 4x;
* `export_mixture` of the cold mixture in each format.
* not timed: the mix's decontamination verdicts against datatrove's filter on a sample.

Each mix's CPU time (every thread's, `time.process_time()` around the call) gives its ceiling: the
ratio it would reach with that CPU time spread over every core and none idle. Where the ceiling is
below a target, overlapping the mix's steps better cannot reach it; only spending less CPU can.

Tokens are counted as the manifest counts them, one end-of-sequence token per record included;
the bare side's are counted, not encoded. Ratios are tokens/s over the bare tokenizer's tokens/s.
Agreement: every mixture's records are re-tokenized with the bare tokenizer afterwards (not timed)
and their counts compared with the shards' `tokens` column and the manifest's total.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.children import run_child
from benchmarks.corpus import generate_corpus
from benchmarks.measure import MB, _ratio
from benchmarks.probes import EventRecorder, proc_status_kb

COLD_TARGET, WARM_TARGET, MEMORY_TARGET = 0.8, 3.0, 1.3
TOKENIZER = "smollm2-135m-instruct"
FORMATS = ("hf", "megatron", "mds", "nanotron")
SOURCES = ("curated", "synthetic", "replay")
# the 1x selection of the memory measurement: the same expression over both warehouse views keeps
# each synthetic record with its source document
QUARTER = "hash(doc_id) % 4 = 0"
REPLAY_FILES = 4  # the 1x selection reads the first one
PLANT_EVERY = 50  # one replay document in this many gets an MMLU question pasted in
SHARDS = 8  # the full mixture is cut into about this many shards
COLD_ROUNDS = 3  # bare, cold off, cold on, in turn this many times (`_cold_rounds`); odd: one median
# the mix section's corpus is this many times the benchmark's: a mixture of a few million tokens is
# still small, and at the default corpus size (1.5M tokens, under a second of tokenizing) the fixed
# costs of a mix (imports, warehouse connections, the job registration) would be what is measured
MIX_SCALE = 4
AGREEMENT_SAMPLE = 600  # candidate texts whose decontamination verdicts are compared with datatrove's
MMLU_MARK = "Question:"
# the full mixture holds ~24 MB of text: buckets of 8 MB send its shuffle through the spill file in
# a few buckets, as a mixture of more than 256 MB of text goes at the default; the 1x fits in one
SHUFFLE_BUFFER_MB = 8


# ---------------------------------------------------------------- set-up (in the parent)


def _curated_warehouse(files: list[Path], root: Path, rewrite_docs: int) -> Path:
    """A real curation run (ingest and exact dedup; filters off) and a sentence-shuffle rewrite."""
    from curation.rewrite.runner import run_rewrite
    from curation.runner import run_pipeline
    from schemas.config import config_from_dict
    from schemas.rewrite import RewriteConfig

    warehouse = root / "base" / "warehouse.duckdb"
    cfg = config_from_dict(
        {
            "input": {"paths": [str(f) for f in files]},
            "output": {"root": str(root / "base" / "out")},
            "warehouse": {"path": str(warehouse)},
            "near_dedup": {"enabled": False},
            "quality": {"enabled": False},
            "language": {"enabled": False},
            "toxicity": {"enabled": False},
        }
    )
    run_pipeline(cfg, run_id="bench")
    rewrite = {
        "rewrite_id": "shuffle",
        "warehouse": str(warehouse),
        "output_root": str(root / "base" / "out"),
        # the rewrite's chunker is slow (~20 docs/s here): a sample is enough for a source
        "source": {"limit": rewrite_docs},
        "routes": [{"styles": [{"style": "sentence_shuffle"}]}],
    }
    run_rewrite(RewriteConfig.model_validate(rewrite))
    return warehouse


def _mmlu_paste(question) -> str:
    from scorers.benchmark import LETTERS

    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, question.choices))
    return f"{MMLU_MARK} {question.question}\n{options}\nAnswer: {LETTERS[question.answer]}"


def _replay_files(root: Path, docs: int, seed: int) -> tuple[list[Path], int]:
    """REPLAY_FILES shards of another corpus (another seed: texts the warehouse does not hold); one
    document in PLANT_EVERY ends with a pasted MMLU question. Returns the files and the planted count."""
    from scorers.assets import asset_path
    from scorers.benchmark import load_mmlu_jsonl

    per_file = max(1, docs // REPLAY_FILES)
    corpus = generate_corpus(root / "replay", per_file * REPLAY_FILES, per_file, seed + 1)
    # long questions only: a question shorter than the 13-word n-gram could never match
    questions = [q for q in load_mmlu_jsonl(asset_path("mmlu.jsonl")).questions if len(q.question.split()) >= 20]
    planted = 0
    for path in corpus.files:
        table = pq.read_table(path)
        texts = table.column("text").to_pylist()
        for i in range(min(PLANT_EVERY, len(texts)) // 2, len(texts), PLANT_EVERY):
            texts[i] = f"{texts[i]}\n\n{_mmlu_paste(questions[planted * 97 % len(questions)])}"
            planted += 1
        pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string())), path)
    return corpus.files, planted


def _candidate_texts(warehouse: Path, replay: list[Path], out: Path) -> Path:
    """Every text a source selects, with its source and whether the 1x selection takes it."""
    from warehouse.warehouse import Warehouse

    wh = Warehouse(warehouse)
    parts = []
    for source, view in (("curated", "documents"), ("synthetic", "synthetic")):
        table = wh.select(f"SELECT text, ({QUARTER}) AS quarter FROM {view}")
        parts.append(table.append_column("source", pa.array([source] * table.num_rows, pa.string())))
    for index, path in enumerate(replay):
        texts = pq.read_table(path, columns=["text"]).column("text")
        n = len(texts)
        parts.append(
            pa.table({"text": texts, "quarter": pa.array([index == 0] * n), "source": pa.array(["replay"] * n, pa.string())})
        )
    pq.write_table(pa.concat_tables([p.select(["source", "quarter", "text"]) for p in parts]), out)
    return out


def _fresh_warehouse(base: Path, folder: Path) -> Path:
    """A copy of the base warehouse with no record caches: its first mix is a cold one."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Path(shutil.copy(base, folder / base.name))


def _spec(
    mixture_id: str,
    warehouse: Path,
    tokens: dict[str, int],
    replay: list[Path],
    shard_tokens: int,
    *,
    seed: int = 0,
    decontaminate: bool = False,
    where: str | None = None,
) -> dict:
    """Weights equal to each source's tokens and a target of their sum: each record emitted once."""
    paths = {"curated": {"kind": "documents"}, "synthetic": {"kind": "synthetic"}, "replay": {"kind": "replay"}}
    paths["replay"]["paths"] = [str(p) for p in replay]
    if where:
        paths["curated"]["where"] = paths["synthetic"]["where"] = where
    return {
        "mixture_id": mixture_id,
        "warehouse": str(warehouse),
        "output_root": str(warehouse.parent / "out"),
        "target_tokens": sum(tokens.values()),
        "seed": seed,
        "normalize": True,
        "shard_tokens": shard_tokens,
        "shuffle_buffer_mb": SHUFFLE_BUFFER_MB,
        "tokenizer": {"path": TOKENIZER},
        "decontamination": {"enabled": decontaminate},
        "sources": [{"name": name, "weight": tokens[name], **paths[name]} for name in SOURCES],
    }


# ---------------------------------------------------------------- children


def child_tokenize(spec: dict) -> dict:
    """The bare batch API over every candidate text: tokens (eos counted, one per text) and seconds,
    the faster of one call over all texts and calls over batches of the mix's own batch size
    (smaller batches are faster here: the baseline is the API at its best)."""
    from tokenizers import Tokenizer

    from curation.mixture.mix import CACHE_BATCH

    table = pq.read_table(spec["texts"])
    texts = table.column("text").to_pylist()
    tokenizer = Tokenizer.from_file(spec["tokenizer"])
    tokenizer.encode_batch_fast(texts[:16], add_special_tokens=False)  # warm up
    passes: dict[str, list[float]] = {"one_call": [], "batches": []}
    fastest = (float("inf"), 0.0)  # (seconds, CPU seconds of every thread) of the fastest pass
    for _ in range(2):
        for mode in passes:
            size = len(texts) if mode == "one_call" else CACHE_BATCH
            started, cpu_started = time.perf_counter(), time.process_time()
            encodings = []
            for start in range(0, len(texts), size):
                encodings += tokenizer.encode_batch_fast(texts[start : start + size], add_special_tokens=False)
            passes[mode].append(time.perf_counter() - started)
            fastest = min(fastest, (passes[mode][-1], time.process_time() - cpu_started))
    counts = [len(e.ids) + 1 for e in encodings]
    by_source: dict[str, dict[str, int]] = {}
    for source, quarter, n in zip(table.column("source").to_pylist(), table.column("quarter").to_pylist(), counts):
        entry = by_source.setdefault(source, {"tokens": 0, "records": 0, "quarter_tokens": 0, "quarter_records": 0})
        entry["tokens"] += n
        entry["records"] += 1
        if quarter:
            entry["quarter_tokens"] += n
            entry["quarter_records"] += 1
    return {
        "texts": len(texts),
        "distinct_texts": len(set(texts)),
        "tokens": sum(counts),
        "seconds": fastest[0],
        "cpu_seconds": fastest[1],
        "passes_s": passes,
        "sources": by_source,
    }


def child_decontamination_agreement(spec: dict) -> dict:
    """The mix's decontamination verdicts against datatrove's `NGramsDecontFilter` run as it is
    (spaCy on whole texts), over a sample of the candidates holding every planted text."""
    from schemas.mixture import EvalSetSpec
    from scorers.decontamination import Decontaminator

    texts = pq.read_table(spec["texts"], columns=["text"]).column("text").to_pylist()
    planted = [i for i, t in enumerate(texts) if MMLU_MARK in t]
    others = [i for i in range(len(texts)) if MMLU_MARK not in texts[i]]
    sample = sorted(planted + others[:: max(1, len(others) // spec["sample"])][: spec["sample"]])
    picked = [texts[i] for i in sample]
    specs = [EvalSetSpec(name="mmlu")]
    fast = Decontaminator.build(specs, 13, spec["index_dir"]).check(picked)
    exact = Decontaminator.build(specs, 13, spec["index_dir"], exact_tokenizer=True).check(picked)
    return {
        "texts": len(picked),
        "planted": len(planted),
        "flagged_fast": sum(v is not None for v in fast),
        "flagged_exact": sum(v is not None for v in exact),
        "differing_verdicts": sum(a != b for a, b in zip(fast, exact)),
    }


def child_mix(spec: dict) -> dict:
    """One `mix(spec)`, timed, with the time of each of its steps (from its progress events)."""
    from curation.mixture.mix import mix
    from schemas import progress
    from schemas.mixture import MixtureSpec

    mixture = MixtureSpec.model_validate(spec["mixture"])
    index_s = None
    if mixture.decontamination.enabled:
        # the call mix itself makes: builds the eval-set index where mix looks for it (or loads it),
        # loads spaCy and the compiled word hashing: one-offs (per eval set, per process) no
        # mixture should be charged for
        from curation.mixture.mix import _decontamination_groups
        from warehouse.warehouse import Warehouse

        started = time.perf_counter()
        _decontamination_groups(mixture, Warehouse(mixture.warehouse))
        index_s = time.perf_counter() - started
    rss_before = proc_status_kb("VmRSS")
    recorder = EventRecorder()
    progress.set_reporter(recorder)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        summary = mix(mixture)
    finally:
        progress.set_reporter(None)
    seconds = time.perf_counter() - started
    return {
        "summary": summary,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu_started,
        "events": [(t - started, kind, stage) for t, kind, stage in recorder.events],
        "index_s": index_s,
        "rss_before_run_kb": rss_before,
        "vmhwm_kb": proc_status_kb("VmHWM"),
    }


def child_export(spec: dict) -> dict:
    """`export_mixture` once per format, timed whole (manifest and tokenizer checks included),
    after an untimed export of a small mixture in every format (a writer may import its library
    on first use)."""
    try:
        from curation.export import export_mixture
    except ImportError as err:
        return {"skipped": f"curation.export.export_mixture does not import: {err}"}
    formats = {}
    for fmt in spec["formats"]:
        with contextlib.suppress(Exception):  # the timed export below reports any error
            export_mixture(spec["warm_up_manifest"], fmt, spec["warm_up_out"])
        started = time.perf_counter()
        try:
            summary = export_mixture(spec["manifest"], fmt, spec["out"])
        except Exception as err:  # noqa: BLE001 - one broken format must not hide the others' numbers
            formats[fmt] = {"error": f"{type(err).__name__}: {err}"}
            continue
        seconds = time.perf_counter() - started
        report = summary["formats"][fmt]
        formats[fmt] = {"tokens": report["tokens"], "bytes": report["bytes"], "seconds": seconds, "writer_s": report["seconds"]}
    return {"formats": formats}


CHILD_MODES = {
    "mix-tokenize": child_tokenize,
    "mix": child_mix,
    "mix-export": child_export,
    "mix-decontamination-agreement": child_decontamination_agreement,
}


# ---------------------------------------------------------------- measurements (in the parent)


def _steps(events: list, total: float) -> dict[str, float]:
    """Seconds per mix step, from its first event to its last (token counting and decontamination
    run at the same time, so theirs overlap); `setup` before the first step (tokenizer, index)
    and `shuffle_write` after the last (annotate, allocate, shuffle, shards, manifest, registration)."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for t, _kind, stage in events:
        starts.setdefault(stage, t)
        ends[stage] = t
    if not starts:
        return {"setup": round(total, 3)}
    steps = {"setup": round(min(starts.values()), 3)}
    for stage in sorted(starts, key=starts.get):
        steps[stage.removeprefix("mix: ")] = round(ends[stage] - starts[stage], 3)
    steps["shuffle_write"] = round(total - max(ends.values()), 3)
    return steps


def _run_mix(name: str, spec: dict, work: Path) -> tuple[dict, object]:
    child = run_child("mix", {"mixture": spec}, work, name)
    res = child.result
    summary = res["summary"]
    entry = {
        "mixture_id": summary["mixture_id"],
        "records": summary["records"],
        "tokens": summary["tokens"],
        "shards": summary["shards"],
        "seconds": round(res["seconds"], 3),
        "cpu_seconds": round(res["cpu_seconds"], 3),
        "cores_busy": round(res["cpu_seconds"] / res["seconds"], 2),
        "tokens_per_s": round(summary["tokens"] / res["seconds"], 1),
        "steps": _steps(res["events"], res["seconds"]),
        "index_s": round(res["index_s"], 2) if res["index_s"] is not None else None,
        "decontaminated": sum(sum(s["decontaminated"].values()) for s in summary["sources"].values()),
        "epochs": {name: round(s["epochs"], 3) for name, s in summary["sources"].items()},
        "manifest": summary["manifest"],
    }
    return entry, child


class _BareCounts:
    """Token counts of the bare tokenizer, each distinct text encoded once across mixtures."""

    def __init__(self, tokenizer_file: Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.counts: dict[str, int] = {}

    def __call__(self, texts: list[str]) -> list[int]:
        new = list(dict.fromkeys(t for t in texts if t not in self.counts))
        for text, encoding in zip(new, self.tokenizer.encode_batch_fast(new, add_special_tokens=False)):
            self.counts[text] = len(encoding.ids)
        return [self.counts[t] for t in texts]


def agreement(manifest_path: str, bare: _BareCounts) -> dict:
    """The mixture's counts against the bare tokenizer's over the emitted records (+1 eos each)."""
    from curation.mixture.manifest import load_manifest, shard_paths

    manifest = load_manifest(manifest_path)
    table = pq.read_table(shard_paths(manifest), columns=["text", "tokens"])
    expected = [n + 1 for n in bare(table.column("text").to_pylist())]
    recorded = table.column("tokens").to_pylist()
    return {
        "records": table.num_rows,
        "manifest_tokens": manifest["totals"]["tokens"],
        "bare_tokens_plus_eos": sum(expected),
        "mismatched_records": sum(a != b for a, b in zip(recorded, expected)),
        "equal": manifest["totals"]["tokens"] == sum(expected) == sum(recorded),
    }


def _memory(one: tuple[dict, object], four: tuple[dict, object]) -> dict:
    def entry(mix_entry: dict, child) -> dict:
        before = child.result["rss_before_run_kb"]
        return {
            "records": mix_entry["records"],
            "tokens": mix_entry["tokens"],
            "shards": mix_entry["shards"],
            "rss_before_run_mb": round(before / MB, 1) if before else None,
            # the child's own high-water mark: wait4's ru_maxrss also holds the RSS of the parent
            # at the fork (Linux keeps the maximum across exec), and this parent ran a pipeline
            "peak_rss_mb": round(child.result["vmhwm_kb"] / MB, 1),
            "wait4_maxrss_mb": round(child.maxrss_kb / MB, 1),
            "seconds": mix_entry["seconds"],
        }

    e1, e4 = entry(*one), entry(*four)
    growth_1 = e1["peak_rss_mb"] - (e1["rss_before_run_mb"] or 0)
    growth_4 = e4["peak_rss_mb"] - (e4["rss_before_run_mb"] or 0)
    return {
        "1x": e1,
        "4x": e4,
        "rss_ratio_4x_1x": _ratio(e4["peak_rss_mb"], e1["peak_rss_mb"]),
        "run_growth_ratio_4x_1x": _ratio(growth_4, growth_1) if growth_1 > 0 else None,
        "time_ratio_4x_1x": _ratio(e4["seconds"], e1["seconds"]),
        "target": MEMORY_TARGET,
    }


def _ceiling_ratio(entry: dict, bare_tps: float, cores: int) -> float:
    """The ratio the mix would reach if its CPU seconds (every thread's) were spread over all the
    machine's `cores` with none idle: no overlap of its steps can do better at that CPU cost, so a
    ceiling below a target says the mix must spend less CPU, not wait less."""
    return entry["tokens"] / (entry["cpu_seconds"] / cores) / bare_tps


def _marginal(small: dict, large: dict, bare_tps: float) -> dict:
    """The cold mix's rate beyond its fixed cost: the extra tokens of the 4x mixture over the 1x
    one per extra second, against the bare tokenizer; and the fixed cost that the straight line
    through both points gives at zero tokens (imports, warehouse connections, the registration)."""
    extra_tokens = large["tokens"] - small["tokens"]
    extra_s = large["seconds"] - small["seconds"]
    rate = extra_tokens / extra_s if extra_s > 0 else float("inf")
    return {
        "tokens_1x": small["tokens"],
        "seconds_1x": small["seconds"],
        "tokens_4x": large["tokens"],
        "seconds_4x": large["seconds"],
        "tokens_per_s": round(rate, 1),
        "ratio": round(rate / bare_tps, 3),
        "fixed_s": round(small["seconds"] - small["tokens"] / rate, 3),
        "target": COLD_TARGET,
    }


def _exports(manifest: str, warm_up_manifest: str, work: Path, bare_tps: float) -> dict:
    spec = {
        "manifest": manifest,
        "out": str(work / "exports"),
        "warm_up_manifest": warm_up_manifest,
        "warm_up_out": str(work / "exports-warm-up"),
        "formats": list(FORMATS),
    }
    res = run_child("mix-export", spec, work, "mix-export")
    if "skipped" in res.result:
        return res.result
    formats = {}
    for fmt, r in res.result["formats"].items():
        if "error" in r:
            formats[fmt] = r
            continue
        tps = r["tokens"] / r["seconds"]
        formats[fmt] = {
            **r,
            "seconds": round(r["seconds"], 3),
            "tokens_per_s": round(tps, 1),
            "ratio_vs_bare": round(tps / bare_tps, 3),
        }
    return {"formats": formats}


def _cold_rounds(
    base: Path, texts: Path, tokenizer_file: Path, replay: list[Path], root: Path, cores: int, log
) -> tuple[list[dict], dict[str, int], int]:
    """The bare tokenizer, then a cold mix with decontamination off and one with it on, each in a
    child process, COLD_ROUNDS times in turn. The machine's speed drifts by ~10 % over minutes:
    each mix is compared with the bare pass of its own round, under a minute before it, and the
    round with the median ratio is the one reported (every round's ratio is kept). Also the
    sources' tokens and the shard size, from the first bare pass (every pass counts the same)."""
    rounds, full, shard_tokens = [], {}, 0
    for index in range(COLD_ROUNDS):
        log(f"mix: round {index + 1} of {COLD_ROUNDS}: bare tokenizer, then cold mixes (child processes)")
        spec = {"texts": str(texts), "tokenizer": str(tokenizer_file)}
        bare = run_child("mix-tokenize", spec, root, f"mix-tokenize-{index}").result
        bare_tps = bare["tokens"] / bare["seconds"]
        if not full:
            full = {name: bare["sources"][name]["tokens"] for name in SOURCES}
            shard_tokens = max(1, sum(full.values()) // SHARDS)
        mixes = {}
        for label in ("off", "on"):
            warehouse = _fresh_warehouse(base, root / f"{label}-{index}")
            spec = _spec(f"{label}-cold", warehouse, full, replay, shard_tokens, decontaminate=label == "on")
            entry, child = _run_mix(f"mix-{label}-cold-{index}", spec, root)
            mixes[label] = {
                "entry": entry,
                "child": child,
                "warehouse": warehouse,
                "ratio": entry["tokens_per_s"] / bare_tps,
                "ceiling_ratio": _ceiling_ratio(entry, bare_tps, cores),
            }
        rounds.append({"bare": bare, "mixes": mixes})
    return rounds, full, shard_tokens


def mixture_benchmark(work: Path, docs: int, seed: int, log=print) -> dict:
    from scorers.tokens import TokenizerLoadError, load_tokenizer

    try:
        tokenizer_file = load_tokenizer(TOKENIZER).path
    except TokenizerLoadError as err:
        return {"skipped": str(err)}
    root = work / "mix"
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    docs *= MIX_SCALE
    files = generate_corpus(root / "corpus", docs, max(1, docs // SHARDS), seed).files
    rewrite_docs = max(8, docs // 8)
    base = _curated_warehouse(files, root, rewrite_docs)
    replay, planted = _replay_files(root, max(REPLAY_FILES, docs // 4), seed)
    texts = _candidate_texts(base, replay, root / "candidates.parquet")
    setup_s = time.perf_counter() - started

    cores = os.cpu_count() or 1  # the ceilings' and the report's count, read once
    rounds, full, shard_tokens = _cold_rounds(base, texts, tokenizer_file, replay, root, cores, log)
    # the reference for the warm mixes, the marginal rates and the exports: the median bare pass
    bare = sorted((r["bare"] for r in rounds), key=lambda b: b["tokens"] / b["seconds"])[len(rounds) // 2]
    bare_tps = bare["tokens"] / bare["seconds"]
    quarter = {name: bare["sources"][name]["quarter_tokens"] for name in SOURCES}

    variants, children = {}, {}
    for label in ("off", "on"):
        middle = sorted(rounds, key=lambda r: r["mixes"][label]["ratio"])[len(rounds) // 2]["mixes"][label]
        name = f"{label}-cold"
        children[name] = middle["child"]
        variants[name] = {
            **middle["entry"],
            "decontamination": label,
            "cache": "cold",
            "ratio": round(middle["ratio"], 3),
            "ceiling_ratio": round(middle["ceiling_ratio"], 3),
            "target": COLD_TARGET,
            "rounds": [
                {
                    "ratio": round(r["mixes"][label]["ratio"], 3),
                    "ceiling_ratio": round(r["mixes"][label]["ceiling_ratio"], 3),
                    "seconds": r["mixes"][label]["entry"]["seconds"],
                    "bare_seconds": round(r["bare"]["seconds"], 3),
                }
                for r in rounds
            ],
        }
        name = f"{label}-warm"
        log(f"mix: decontamination {label}, warm caches (child process)")
        # over the records and caches of the median round's cold mix, another seed and mixture_id
        spec = _spec(name, middle["warehouse"], full, replay, shard_tokens, seed=1, decontaminate=label == "on")
        entry, children[name] = _run_mix(f"mix-{name}", spec, root)
        variants[name] = {
            **entry,
            "decontamination": label,
            "cache": "warm",
            "ratio": round(entry["tokens_per_s"] / bare_tps, 3),
            "ceiling_ratio": round(_ceiling_ratio(entry, bare_tps, cores), 3),
            "target": WARM_TARGET,
        }
    variants = {name: variants[name] for name in ("off-cold", "off-warm", "on-cold", "on-warm")}

    log("mix: 1x mixture for the memory ratio and the marginal rate (child process)")
    warehouse = _fresh_warehouse(base, root / "1x")
    spec = _spec("1x", warehouse, quarter, replay[:1], shard_tokens, where=QUARTER)
    one = _run_mix("mix-1x", spec, root)
    log("mix: 1x mixture with decontamination, for its marginal rate (child process)")
    warehouse = _fresh_warehouse(base, root / "1x-on")
    spec = _spec("1x-on", warehouse, quarter, replay[:1], shard_tokens, where=QUARTER, decontaminate=True)
    one_on = _run_mix("mix-1x-on", spec, root)
    marginal = {
        label: _marginal(small, variants[f"{label}-cold"], bare_tps) for label, small in (("off", one[0]), ("on", one_on[0]))
    }

    log("mix: agreement with the bare tokenizer (not timed)")
    counts = _BareCounts(tokenizer_file)
    for entry in [*variants.values(), one[0]]:
        entry["agreement"] = agreement(entry["manifest"], counts)

    log("mix: decontamination verdicts against datatrove's filter on a sample (child process, not timed)")
    agreement_spec = {
        "texts": str(texts),
        "sample": AGREEMENT_SAMPLE,
        "index_dir": str(root / "agreement-index"),
    }
    decontamination_agreement = run_child("mix-decontamination-agreement", agreement_spec, root, "mix-agreement").result

    log("mix: exports (child process)")
    exports = _exports(variants["off-cold"]["manifest"], one[0]["manifest"], root, bare_tps)

    return {
        "tokenizer": TOKENIZER,
        "cores": cores,
        "setup_s": round(setup_s, 1),
        "candidates": {
            "texts": bare["texts"],
            "distinct_texts": bare["distinct_texts"],
            "by_source": bare["sources"],
            "rewritten_docs": rewrite_docs,
            "replay_files": len(replay),
            "planted_mmlu": planted,
        },
        "bare": {
            "texts": bare["texts"],
            "tokens": bare["tokens"],
            "seconds": round(bare["seconds"], 3),
            "cpu_seconds": round(bare["cpu_seconds"], 3),
            "cores_busy": round(bare["cpu_seconds"] / bare["seconds"], 2),
            "passes_s": {mode: [round(s, 3) for s in passes] for mode, passes in bare["passes_s"].items()},
            "tokens_per_s": round(bare_tps, 1),
            "rounds_s": [round(r["bare"]["seconds"], 3) for r in rounds],
        },
        "variants": variants,
        "decontamination_cost_s": round(
            statistics.median(r["mixes"]["on"]["entry"]["seconds"] - r["mixes"]["off"]["entry"]["seconds"] for r in rounds), 3
        ),
        "decontamination_agreement": decontamination_agreement,
        "marginal": marginal,
        "memory": _memory(one, (variants["off-cold"], children["off-cold"])),
        "exports": exports,
    }
