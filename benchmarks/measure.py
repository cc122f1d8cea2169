"""The three measurements: per-stage throughput, our heuristic chain against datatrove's, and
peak memory at two corpus sizes. Every one runs in a child process (see child.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.children import ChildResult, run_child

MB = 1024  # ru_maxrss and /proc sizes are in KiB

# a progress step name that is not a stage name -> its stage
STEP_STAGE = {"near_dedup_signatures": "near_dedup"}


def _rate(docs: int, seconds: float) -> float | None:
    return round(docs / seconds, 1) if seconds > 0 else None


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


# ---------------------------------------------------------------- configs


def _base_config(corpus_dir: Path, out_root: Path) -> dict:
    return {
        "input": {"paths": [str(Path(corpus_dir) / "*.parquet")]},
        "output": {"root": str(out_root)},
        "warehouse": {"path": str(out_root / "warehouse.duckdb")},
    }


def full_pipeline_config(corpus_dir: Path, out_root: Path) -> dict:
    """Every stage, defaults everywhere; PII redaction (off by default) on so it gets a number too."""
    return {**_base_config(corpus_dir, out_root), "pii": {"enabled": True}}


def chain_config(corpus_dir: Path, out_root: Path, alpha_words_rule: str) -> dict:
    """Ingest + quality only, and in quality only the four filters datatrove's pipeline runs."""
    return {
        **_base_config(corpus_dir, out_root),
        "exact_dedup": {"enabled": False},
        "near_dedup": {"enabled": False},
        "language": {"enabled": False},
        "toxicity": {"enabled": False},
        "pii": {"enabled": False},
        "quality": {"url_blocklist": {"enabled": False}, "gopher_quality": {"alpha_words_rule": alpha_words_rule}},
    }


# ---------------------------------------------------------------- 1. stages


def stage_table(child: ChildResult) -> dict:
    """docs/s per stage, two ways.

    * ``stage_s``: the `seconds` the runner records per stage (summed over shards, from the
      funnel). It times `process_shard` only, so for the dedup stages it leaves out the global
      planning step and, for near_dedup, the MinHash signature step.
    * ``wall_s``: from the end of the previous stage's last shard to the end of this stage's last
      shard, taken from progress events: everything the stage costs, planning steps included.
    """
    result = child.result
    funnel = result["summary"]["funnel"]
    stages = [row["stage"] for row in funnel]
    first_start: dict[str, float] = {}
    last_done: dict[str, float] = {}
    for t, kind, name in result["events"]:
        stage = STEP_STAGE.get(name, name)
        if kind == "stage_started":
            first_start.setdefault(stage, t)
        else:
            last_done[stage] = t
    prev_end = first_start.get(stages[0], 0.0)
    prepare_s = prev_end
    rows = []
    for row in funnel:
        stage = row["stage"]
        end = last_done.get(stage, prev_end)
        wall = end - prev_end
        prev_end = end
        rows.append(
            {
                "stage": stage,
                "docs_in": row["docs_in"],
                "docs_out": row["docs_out"],
                "stage_s": row["seconds"],
                "docs_per_s": _rate(row["docs_in"], row["seconds"]),
                "wall_s": round(wall, 3),
                "docs_per_s_wall": _rate(row["docs_in"], wall),
                "reasons": row["reasons"],
            }
        )
    total = result["seconds"]
    docs = funnel[0]["docs_in"]
    return {
        "stages": rows,
        "prepare_s": round(prepare_s, 3),
        "finalize_s": round(total - prev_end, 3),
        "total_s": round(total, 3),
        "docs_in": docs,
        "docs_out": result["summary"]["totals"]["docs_out"],
        "docs_per_s_total": _rate(docs, total),
    }


# ---------------------------------------------------------------- 2. chain


def _ids(files: list[Path], column: str) -> list[str]:
    ids: list[str] = []
    for f in files:
        ids += pq.read_table(f, columns=[column]).column(column).to_pylist()
    return ids


def _our_rejections(run_dir: Path) -> dict[str, str]:
    files = sorted(run_dir.glob("*_quality/rejected/*.parquet"))
    out = {}
    for f in files:
        t = pq.read_table(f, columns=["doc_id", "reason"])
        out.update(zip(t.column("doc_id").to_pylist(), t.column("reason").to_pylist()))
    return out


def _ingest_changed(run_dir: Path, corpus_files: list[Path]) -> int:
    """Documents whose text ingest changed: then the two sides would not see the same text."""
    raw = {}
    for f in corpus_files:
        t = pq.read_table(f, columns=["id", "text"])
        raw.update(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))
    changed = 0
    for f in sorted(run_dir.glob("*_ingest/curated/*.parquet")):
        t = pq.read_table(f, columns=["doc_id", "text"])
        changed += sum(raw.get(i) != x for i, x in zip(t.column("doc_id").to_pylist(), t.column("text").to_pylist()))
    return changed


def run_ours_chain(corpus_dir: Path, work: Path, alpha_words_rule: str) -> dict:
    out_root = work / f"chain-ours-{alpha_words_rule}"
    shutil.rmtree(out_root, ignore_errors=True)  # a kept --work-dir: a completed run would be skipped, not timed
    child = run_child(
        "pipeline", {"config": chain_config(corpus_dir, out_root, alpha_words_rule)}, work, f"chain-ours-{alpha_words_rule}"
    )
    summary = child.result["summary"]
    quality = next(r for r in summary["funnel"] if r["stage"] == "quality")
    run_dir = Path(summary["run_dir"])
    kept = set(_ids(sorted(Path(summary["documents_dir"]).glob("*.parquet")), "doc_id"))
    return {
        "docs": quality["docs_in"],
        "seconds": quality["seconds"],
        "docs_per_s": _rate(quality["docs_in"], quality["seconds"]),
        "kept": len(kept),
        "kept_ids": kept,
        "rejections": _our_rejections(run_dir),
        "reasons": quality["reasons"],
        "run_dir": run_dir,
        "child_wall_s": round(child.wall_seconds, 1),
    }


def _datatrove_reasons(logging_dir: Path) -> dict[str, int]:
    """reason -> documents dropped, from the executor's stats.json (`dropped_<reason>` counters)."""
    import json

    path = logging_dir / "stats.json"
    if not path.exists():
        return {}
    reasons: dict[str, int] = {}
    for step in json.loads(path.read_text()):
        for key, value in step.get("stats", {}).items():
            if key.startswith("dropped_"):
                count = value["total"] if isinstance(value, dict) else value
                reasons[key.removeprefix("dropped_")] = reasons.get(key.removeprefix("dropped_"), 0) + int(count)
    return reasons


def _reason_differences(ours: dict[str, int], theirs: dict[str, int]) -> dict[str, list[int]]:
    """reason -> [ours, datatrove] where the counts differ (our reasons are 'filter:reason')."""
    flat: dict[str, int] = {}
    for key, n in ours.items():
        reason = key.split(":", 1)[-1]
        flat[reason] = flat.get(reason, 0) + n
    return {r: [flat.get(r, 0), theirs.get(r, 0)] for r in sorted(set(flat) | set(theirs)) if flat.get(r, 0) != theirs.get(r, 0)}


def run_datatrove_chain(corpus_dir: Path, work: Path, docs: int) -> dict:
    out = work / "chain-datatrove" / "output"
    logging_dir = work / "chain-datatrove" / "logs"  # fresh: completion markers would skip the run
    shutil.rmtree(work / "chain-datatrove", ignore_errors=True)
    spec = {"corpus": str(corpus_dir), "out": str(out), "logging_dir": str(logging_dir)}
    child = run_child("datatrove", spec, work, "chain-datatrove")
    kept = set(_ids(sorted(out.glob("*.parquet")), "id"))
    seconds = child.result["seconds"]
    return {
        "docs": docs,
        "seconds": round(seconds, 3),
        "docs_per_s": _rate(docs, seconds),
        "kept": len(kept),
        "kept_ids": kept,
        "reasons": _datatrove_reasons(logging_dir),
        "child_wall_s": round(child.wall_seconds, 1),
    }


def compare_decisions(all_ids: list[str], ours: dict, theirs: dict, examples: int = 5) -> dict:
    ours_kept, theirs_kept = ours["kept_ids"], theirs["kept_ids"]
    only_ours = [i for i in all_ids if i in ours_kept and i not in theirs_kept]
    only_theirs = [i for i in all_ids if i in theirs_kept and i not in ours_kept]
    same = len(all_ids) - len(only_ours) - len(only_theirs)
    return {
        "identical_pct": round(100.0 * same / len(all_ids), 2) if all_ids else None,
        "kept_by_ours_only": len(only_ours),
        "kept_by_datatrove_only": len(only_theirs),
        "examples_kept_by_datatrove_only": [{"id": i, "our_reason": ours["rejections"].get(i)} for i in only_theirs[:examples]],
        "examples_kept_by_ours_only": only_ours[:examples],
    }


def chain_comparison(corpus_dir: Path, corpus_files: list[Path], work: Path) -> dict:
    all_ids = _ids(corpus_files, "id")
    theirs = run_datatrove_chain(corpus_dir, work, len(all_ids))
    variants = {}
    for rule in ("tokens", "words"):
        ours = run_ours_chain(corpus_dir, work, rule)
        variants[rule] = {
            **{k: v for k, v in ours.items() if k not in ("kept_ids", "rejections", "run_dir")},
            "ratio_vs_datatrove": _ratio(ours["docs_per_s"], theirs["docs_per_s"]),
            **compare_decisions(all_ids, ours, theirs),
            "reason_count_differences": _reason_differences(ours["reasons"], theirs["reasons"]),
        }
        if rule == "tokens":
            variants[rule]["ingest_changed_texts"] = _ingest_changed(ours["run_dir"], corpus_files)
    return {
        "datatrove": {k: v for k, v in theirs.items() if k != "kept_ids"},
        "ours": variants,
    }


# ---------------------------------------------------------------- 3. memory


def run_full_pipeline(corpus_dir: Path, work: Path, name: str) -> ChildResult:
    return run_child("pipeline", {"config": full_pipeline_config(corpus_dir, work / name)}, work, name)


def memory_entry(child: ChildResult, docs: int, shards: int) -> dict:
    res = child.result
    return {
        "docs": docs,
        "shards": shards,
        "peak_rss_mb": round(child.maxrss_kb / MB, 1),
        "vmhwm_mb": round(res["vmhwm_kb"] / MB, 1) if res.get("vmhwm_kb") else None,
        "rss_before_run_mb": round(res["rss_before_run_kb"] / MB, 1) if res.get("rss_before_run_kb") else None,
        "pipeline_s": round(res["seconds"], 2),
    }


def memory_comparison(one: dict, four: dict) -> dict:
    growth_1 = one["peak_rss_mb"] - (one["rss_before_run_mb"] or 0)
    growth_4 = four["peak_rss_mb"] - (four["rss_before_run_mb"] or 0)
    return {
        "1x": one,
        "4x": four,
        "rss_ratio_4x_1x": _ratio(four["peak_rss_mb"], one["peak_rss_mb"]),
        # the same ratio over what the run itself added on top of the imported interpreter
        "run_growth_ratio_4x_1x": _ratio(growth_4, growth_1) if growth_1 > 0 else None,
        "time_ratio_4x_1x": _ratio(four["pipeline_s"], one["pipeline_s"]),
    }
