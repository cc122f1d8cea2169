"""A curation run as a list of steps over shards, runnable with or without Prefect.

`prepare_run` fixes what a run is (its id, config, input shards, enabled stages); `run_steps`
lists the steps in order, each either per shard (independent tasks) or global (one decision over
the whole run); `finalize_run` checks the accounting across every stage, writes the near-duplicate
index of the survivors and registers the run in the warehouse. The Prefect flow in flows/ and
`run_pipeline` below are two drivers of the same steps.

Every step skips work whose output already exists (outputs are written atomically, stats last),
so re-running an interrupted run id continues where it stopped and produces the same outputs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation import progress
from curation.dedup import (
    EXACT_STAGE,
    NEAR_STAGE,
    RUN_BANDS,
    curated_index,
    decision_check,
    load_decisions,
    plan_exact_dedup,
    plan_near_dedup,
    shard_bands,
)
from curation.ingest import STAGE as INGEST_STAGE
from curation.ingest import InputShard, ingest_batch
from curation.language import language_processor
from curation.pii import pii_check
from curation.quality import quality_check
from curation.shards import (
    ShardError,
    expand_input_paths,
    iter_parquet_batches,
    write_json_atomic,
    write_table_atomic,
)
from curation.stage import AccountingError, StagePaths, per_document, process_shard
from curation.scoring import RAW_SCORES, ShardScores, plan_scoring, scoring_processor, shard_scores
from curation.scoring import STAGE as SCORE_STAGE
from curation.toxicity import toxicity_processor
from schemas.config import RunConfig
from warehouse.secrets import without_secrets
from warehouse.warehouse import Warehouse

# Language ID runs before the heuristic filters: they assume English (stop words, sentence rules)
# and are ~100x slower per document, so cheap-first also saves most of the compute.
# Model-based scoring comes after every cheaper filter, and selects among what they kept.
STAGES = (INGEST_STAGE, EXACT_STAGE, NEAR_STAGE, "language", "quality", "toxicity", SCORE_STAGE, "pii")


class RunError(RuntimeError):
    pass


@dataclass(frozen=True)
class Shard:
    id: str
    input_path: str


@dataclass
class RunPlan:
    run_id: str
    config: RunConfig
    run_dir: Path
    shards: list[Shard]
    stages: list[str]
    input_errors: list[dict] = field(default_factory=list)
    # a completed run asked for again without --force: its recorded summary, nothing is recomputed
    completed_summary: dict | None = None
    # a forced recompute of a completed run is built beside it; this is the folder it replaces
    replaces: Path | None = None

    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / f"{STAGES.index(stage):02d}_{stage}"

    def paths(self, stage: str, shard: Shard) -> StagePaths:
        return StagePaths.for_shard(self.stage_dir(stage), shard.id)

    def previous(self, stage: str) -> str:
        return self.stages[self.stages.index(stage) - 1]

    def curated_files(self, stage: str) -> list[Path]:
        return [self.paths(stage, s).curated for s in self.shards]

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.config.warehouse.path)


@dataclass(frozen=True)
class Step:
    name: str
    stage: str
    per_shard: bool
    fn: Callable[[RunPlan, Shard | None], dict | None]


# ---------------------------------------------------------------- planning


def new_run_id() -> str:
    """A fresh id: readable time, plus random hex so that runs started in the same second (two
    schedules of one config) never resume each other."""
    return "run-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def check_run_id(run_id: str) -> None:
    if not run_id.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise RunError(f"run id {run_id!r}: use letters, digits, '-', '_' and '.' only")


@contextmanager
def exclusive_run(cfg: RunConfig, run_id: str) -> Iterator[None]:
    """Hold the run id for this process: the same id started twice at once is refused, never
    interleaved. An OS file lock, so a killed process releases it and its rerun can resume."""
    check_run_id(run_id)
    runs_root = Path(cfg.output.root).resolve() / "runs"
    runs_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(runs_root / f".{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunError(
                f"run {run_id} is already running (process {holder}, {runs_root}); wait for it to finish "
                "or pick another --run-id"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def enabled_stages(cfg: RunConfig) -> list[str]:
    switches = {
        EXACT_STAGE: cfg.exact_dedup.enabled,
        NEAR_STAGE: cfg.near_dedup.enabled,
        "quality": cfg.quality.enabled,
        "language": cfg.language.enabled,
        "toxicity": cfg.toxicity.enabled,
        "pii": cfg.pii.enabled,
        SCORE_STAGE: cfg.scoring.enabled,
    }
    return [s for s in STAGES if switches.get(s, True)]


def _config_fingerprint(cfg: RunConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def _same_config_manifest(run_id: str, run_dir: Path, cfg: RunConfig) -> dict:
    """The run's manifest, if it was made with this config; a different config is refused."""
    manifest = json.loads((run_dir / "run.json").read_text())
    if manifest["config_fingerprint"] != _config_fingerprint(cfg):
        raise RunError(
            f"run {run_id} already exists in {run_dir} with a different config: "
            "resume it with the same config, use --force to recompute, or pick a new --run-id"
        )
    return manifest


def _replacement_dir(runs_root: Path, run_id: str, current: Path) -> Path:
    """A fresh folder for a forced recompute of a completed run; leftovers of earlier replacements
    that never completed are removed ('@' cannot appear in a run id, so no run owns these names)."""
    numbers = [0]
    for old in runs_root.glob(f"{run_id}@*"):
        suffix = old.name.rsplit("@", 1)[1]
        numbers.append(int(suffix) if suffix.isdigit() else 0)
        if old.resolve() != current.resolve():
            shutil.rmtree(old)
    return runs_root / f"{run_id}@{max(numbers) + 1}"


def _remove_partial_files(run_dir: Path) -> None:
    """Temporaries of writes a killed process never finished; no other process writes this run
    (`exclusive_run`), so every one of them is garbage."""
    if run_dir.exists():
        for partial in run_dir.rglob(".*.tmp-*"):
            partial.unlink()


def prepare_run(cfg: RunConfig, run_id: str | None = None, force: bool = False) -> RunPlan:
    """Fix what the run is. Call it inside `exclusive_run`. A run the warehouse has completed stays
    visible: asked for again it is not recomputed, and with `force` its replacement is built in a
    new folder and swapped in only when it completes."""
    run_id = run_id or new_run_id()
    check_run_id(run_id)
    runs_root = Path(cfg.output.root).resolve() / "runs"
    known = Warehouse(cfg.warehouse.path).run_status(run_id)
    run_dir, replaces = runs_root / run_id, None
    if known and known[0] == "completed":
        current = Path(known[1])
        if not force:
            _same_config_manifest(run_id, current, cfg)
            summary = json.loads((current / "summary.json").read_text())
            return RunPlan(run_id, cfg, current, [], [], completed_summary=summary)
        run_dir, replaces = _replacement_dir(runs_root, run_id, current), current
    elif known:
        run_dir = Path(known[1])  # running or failed: resume where it was being built
    manifest_path = run_dir / "run.json"
    if force and replaces is None and run_dir.exists():
        shutil.rmtree(run_dir)
    _remove_partial_files(run_dir)
    if manifest_path.exists():
        manifest = _same_config_manifest(run_id, run_dir, cfg)
        shards = [Shard(**s) for s in manifest["shards"]]
        input_errors = manifest["input_errors"]
    else:
        paths, missing = expand_input_paths(cfg.input.paths)
        if not paths:
            detail = "; ".join(f"{p}: {e}" for p, e in missing) or "no paths configured"
            raise RunError(f"no input shards found for input.paths ({detail})")
        shards = [Shard(id=f"shard-{i:05d}", input_path=p) for i, p in enumerate(paths)]
        input_errors = without_secrets([{"run_id": run_id, "input_file": p, "error": e} for p, e in missing])
        write_json_atomic(
            manifest_path,
            {
                "run_id": run_id,
                "config_fingerprint": _config_fingerprint(cfg),
                "config": without_secrets(cfg.model_dump(mode="json")),
                "shards": [s.__dict__ for s in shards],
                "input_errors": input_errors,
                "created_at": datetime.now(timezone.utc).isoformat(),
            },
        )
    plan = RunPlan(
        run_id=run_id, config=cfg, run_dir=run_dir, shards=shards, stages=enabled_stages(cfg),
        input_errors=input_errors, replaces=replaces,
    )
    plan.warehouse.run_started(run_id, run_dir, [s.input_path for s in shards], cfg.model_dump(mode="json"))
    return plan


# ---------------------------------------------------------------- steps


def _previous_batches(plan: RunPlan, stage: str, shard: Shard):
    return iter_parquet_batches(plan.paths(plan.previous(stage), shard).curated, plan.config.input.batch_size)


def ingest_step(plan: RunPlan, shard: Shard) -> dict | None:
    paths = plan.paths(INGEST_STAGE, shard)
    if paths.done():
        return None
    error_marker = plan.run_dir / "input_errors" / f"{shard.id}.json"
    try:
        source = InputShard(shard.input_path, plan.config.input)
        next_row = 0

        def process(batch):
            nonlocal next_row
            first, next_row = next_row, next_row + batch.num_rows
            return ingest_batch(batch, source, first, plan.run_id, plan.config.ingest)

        return process_shard(
            stage=INGEST_STAGE, shard=shard.id, run_id=plan.run_id, batches=source.batches(), process=process,
            paths=paths, extra={"input_rows": source.num_rows},
        )
    except ShardError as err:
        # the file is recorded as an input error and contributes no documents; the run goes on
        write_json_atomic(error_marker, {"run_id": plan.run_id, "input_file": shard.input_path, "error": err.reason})
        return process_shard(
            stage=INGEST_STAGE, shard=shard.id, run_id=plan.run_id, batches=[], process=None, paths=paths, extra={"input_error": str(err)}
        )


def _timed(marker: Path, work: Callable[[], dict]) -> dict:
    """Run a step's work and record its duration next to its output (read back by `_overhead`)."""
    started = time.perf_counter()
    result = work()
    result["seconds"] = round(time.perf_counter() - started, 4)
    write_json_atomic(marker, result)
    return result


def _overhead(plan: RunPlan, stage: str, shard: Shard) -> float:
    """This shard's share of the stage's signature and planning time."""
    seconds = json.loads((plan.stage_dir(stage) / "decisions.json").read_text())["seconds"] / len(plan.shards)
    mapped = plan.stage_dir(stage) / "map" / f"{shard.id}.json"
    if mapped.exists():
        seconds += json.loads(mapped.read_text())["seconds"]
    return seconds


def _step_done(out: Path) -> bool:
    """A map or plan output is complete once its timing marker (written after it) exists: a
    process killed between the two redoes the step, which rewrites the same output."""
    return out.with_suffix(".json").exists()


def exact_plan_step(plan: RunPlan, _: Shard | None = None) -> dict | None:
    out = plan.stage_dir(EXACT_STAGE) / "decisions.parquet"
    if _step_done(out):
        return None
    cfg = plan.config.exact_dedup
    prior = plan.warehouse.completed_files("documents", exclude_run=plan.run_id) if cfg.against_warehouse else []
    curated = plan.curated_files(plan.previous(EXACT_STAGE))
    return _timed(out.with_suffix(".json"), lambda: plan_exact_dedup(curated, prior, out))


def _map_outputs(plan: RunPlan, stage: str) -> list[Path]:
    return [plan.stage_dir(stage) / "map" / f"{s.id}.parquet" for s in plan.shards]


def _map_step(stage: str, name: str, schema: pa.Schema, compute: Callable[[pa.Table, RunConfig], pa.Table]):
    """The per-shard first step of a global stage: keys (MinHash bands, scores) of every document,
    for the global plan to read; timed, so the stage's stats can carry its cost."""

    def step(plan: RunPlan, shard: Shard) -> dict | None:
        out = plan.stage_dir(stage) / "map" / f"{shard.id}.parquet"
        if _step_done(out):
            return None

        def work() -> dict:
            tables = [compute(b, plan.config) for b in _previous_batches(plan, stage, shard)]
            write_table_atomic(out, pa.concat_tables(tables) if tables else schema.empty_table())
            return {"rows": sum(t.num_rows for t in tables)}

        result = _timed(out.with_suffix(".json"), work)
        progress.shard_done(name, shard.id, 0, 0)
        return result

    return step


def near_plan_step(plan: RunPlan, _: Shard | None = None) -> dict | None:
    out = plan.stage_dir(NEAR_STAGE) / "decisions.parquet"
    if _step_done(out):
        return None
    cfg = plan.config.near_dedup
    prior = plan.warehouse.completed_files("minhash_index", exclude_run=plan.run_id) if cfg.against_warehouse else []
    bands = _map_outputs(plan, NEAR_STAGE)
    return _timed(out.with_suffix(".json"), lambda: plan_near_dedup(bands, prior, out))


def _decision_apply(stage: str):
    def step(plan: RunPlan, shard: Shard) -> dict | None:
        paths = plan.paths(stage, shard)
        if paths.done():
            return None
        decisions = load_decisions(plan.stage_dir(stage) / "decisions.parquet", shard.input_path)
        return process_shard(
            stage=stage,
            shard=shard.id,
            run_id=plan.run_id,
            batches=_previous_batches(plan, stage, shard),
            process=per_document(stage, decision_check(decisions)),
            paths=paths,
            extra_seconds=_overhead(plan, stage, shard),
        )

    return step


def _filter_step(stage: str, make_processor: Callable[[RunConfig], Callable]):
    def step(plan: RunPlan, shard: Shard) -> dict | None:
        paths = plan.paths(stage, shard)
        if paths.done():
            return None
        return process_shard(
            stage=stage,
            shard=shard.id,
            run_id=plan.run_id,
            batches=_previous_batches(plan, stage, shard),
            process=make_processor(plan.config),
            paths=paths,
        )

    return step


def score_plan_step(plan: RunPlan, _: Shard | None = None) -> dict | None:
    out = plan.stage_dir(SCORE_STAGE) / "decisions.json"
    if out.exists():
        return None
    raw = _map_outputs(plan, SCORE_STAGE)
    return _timed(out, lambda: plan_scoring(raw, plan.config.scoring))


def score_apply_step(plan: RunPlan, shard: Shard) -> dict | None:
    paths = plan.paths(SCORE_STAGE, shard)
    if paths.done():
        return None
    scoring_plan = json.loads((plan.stage_dir(SCORE_STAGE) / "decisions.json").read_text())
    scores = ShardScores(plan.stage_dir(SCORE_STAGE) / "map" / f"{shard.id}.parquet", scoring_plan)
    write_table_atomic(plan.stage_dir(SCORE_STAGE) / "scores" / f"{shard.id}.parquet", scores.warehouse_rows(plan.run_id))
    preselect = scoring_plan["scorers"].get("preselect", {})
    return process_shard(
        stage=SCORE_STAGE,
        shard=shard.id,
        run_id=plan.run_id,
        batches=_previous_batches(plan, SCORE_STAGE, shard),
        process=scoring_processor(scores, scoring_plan),
        paths=paths,
        extra={k: preselect[k] for k in ("threshold", "rule") if k in preselect},
        extra_seconds=_overhead(plan, SCORE_STAGE, shard),
    )


_FILTERS = {
    "quality": lambda cfg: per_document("quality", quality_check(cfg.quality)),
    "language": lambda cfg: language_processor(cfg.language),
    "toxicity": lambda cfg: toxicity_processor(cfg.toxicity),
    "pii": lambda cfg: per_document("pii", pii_check(cfg.pii)),
}


def run_steps(plan: RunPlan) -> list[Step]:
    steps = [Step("ingest", INGEST_STAGE, True, ingest_step)]
    for stage in plan.stages[1:]:
        if stage == EXACT_STAGE:
            steps += [Step("exact_dedup_plan", stage, False, exact_plan_step), Step("exact_dedup", stage, True, _decision_apply(stage))]
        elif stage == SCORE_STAGE:
            steps += [
                Step("score_map", stage, True, _map_step(stage, "score_map", RAW_SCORES, lambda b, cfg: shard_scores(b, cfg.scoring))),
                Step("score_plan", stage, False, score_plan_step),
                Step("score", stage, True, score_apply_step),
            ]
        elif stage == NEAR_STAGE:
            steps += [
                Step("near_dedup_signatures", stage, True, _map_step(stage, "near_dedup_signatures", RUN_BANDS, lambda b, cfg: shard_bands(b, cfg.near_dedup))),
                Step("near_dedup_plan", stage, False, near_plan_step),
                Step("near_dedup", stage, True, _decision_apply(stage)),
            ]
        else:
            steps.append(Step(stage, stage, True, _filter_step(stage, _FILTERS[stage])))
    return steps


# ---------------------------------------------------------------- finishing


def _load_stats(plan: RunPlan) -> list[dict]:
    stats = []
    for stage in plan.stages:
        for shard in plan.shards:
            path = plan.paths(stage, shard).stats
            if not path.exists():
                raise RunError(f"stage {stage} did not finish shard {shard.id} ({shard.input_path})")
            stats.append(json.loads(path.read_text()))
    return stats


def _rows_in(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def check_accounting(plan: RunPlan, stats: list[dict]) -> None:
    """Three independent counts must agree. Per stage and shard: documents in = kept + rejected,
    the files hold exactly the rows the stats claim, and one stage's kept are the next one's in.
    Per input file: the rows its Parquet footer declares are the rows ingest streamed. Per run:
    those footer rows equal the rows in the final curated files plus every rejected file, counted
    from the files themselves, so a stats file that lies cannot balance the books."""
    by_key = {(s["stage"], s["shard"]): s for s in stats}
    problems = []
    input_rows = 0
    for shard in plan.shards:
        where = f"{shard.id} ({shard.input_path})"
        ingest = by_key[(INGEST_STAGE, shard.id)]
        declared = json.loads(ingest["extra"]).get("input_rows")
        if declared is not None:
            input_rows += declared
            if ingest["docs_in"] != declared:
                problems.append(f"{INGEST_STAGE}/{where}: the file declares {declared} rows, ingest read {ingest['docs_in']}")
        for i, stage in enumerate(plan.stages):
            s = by_key[(stage, shard.id)]
            paths = plan.paths(stage, shard)
            if s["docs_in"] != s["docs_out"] + s["docs_rejected"]:
                problems.append(f"{stage}/{where}: in {s['docs_in']} != out {s['docs_out']} + rejected {s['docs_rejected']}")
            if _rows_in(paths.curated) != s["docs_out"]:
                problems.append(f"{stage}/{where}: {paths.curated} holds {_rows_in(paths.curated)} rows, stats say {s['docs_out']}")
            if _rows_in(paths.rejected) != s["docs_rejected"]:
                problems.append(f"{stage}/{where}: {paths.rejected} holds {_rows_in(paths.rejected)} rows, stats say {s['docs_rejected']}")
            if i and by_key[(plan.stages[i - 1], shard.id)]["docs_out"] != s["docs_in"]:
                problems.append(f"{stage}/{where}: in {s['docs_in']} != previous stage's out")
    written = sum(_rows_in(p) for p in plan.curated_files(plan.stages[-1]))
    written += sum(_rows_in(plan.paths(stage, s).rejected) for stage in plan.stages for s in plan.shards)
    if written != input_rows:
        problems.append(f"run {plan.run_id}: input files hold {input_rows} rows, curated + rejected files hold {written}")
    if problems:
        raise AccountingError("accounting does not balance:\n  " + "\n  ".join(problems))


def _check_some_input_was_read(plan: RunPlan, stats: list[dict]) -> None:
    readable = [s for s in stats if s["stage"] == INGEST_STAGE and "input_error" not in json.loads(s["extra"])]
    if not readable:
        markers = [json.loads(m.read_text()) for m in sorted((plan.run_dir / "input_errors").glob("*.json"))]
        errors = [f"{e['input_file']}: {e['error']}" for e in [*plan.input_errors, *markers]]
        raise RunError(f"run {plan.run_id}: no input file could be read:\n  " + "\n  ".join(errors))


def funnel(plan: RunPlan, stats: list[dict]) -> list[dict]:
    rows = []
    for stage in plan.stages:
        mine = [s for s in stats if s["stage"] == stage]
        reasons: Counter[str] = Counter()
        for s in mine:
            reasons.update(json.loads(s["reasons"]))
        rows.append(
            {
                "stage": stage,
                **{k: sum(s[k] for s in mine) for k in ("docs_in", "docs_out", "docs_rejected", "bytes_in", "bytes_out", "bytes_rejected")},
                "seconds": round(sum(s["seconds"] for s in mine), 3),
                "reasons": dict(reasons.most_common()),
            }
        )
    return rows


def finalize_run(plan: RunPlan) -> dict:
    stats = _load_stats(plan)
    _check_some_input_was_read(plan, stats)
    check_accounting(plan, stats)
    final_stage = plan.stages[-1]
    final_curated = plan.curated_files(final_stage)
    files = {
        "documents": [str(p) for p in final_curated],
        "rejected": [str(plan.paths(stage, s).rejected) for stage in plan.stages for s in plan.shards],
    }
    if NEAR_STAGE in plan.stages:
        index = plan.run_dir / "minhash_index.parquet"
        bands = _map_outputs(plan, NEAR_STAGE)
        curated_index(bands, final_curated, plan.run_id, index)
        files["minhash_index"] = [str(index)]
    if SCORE_STAGE in plan.stages:
        files["scores"] = [str(plan.stage_dir(SCORE_STAGE) / "scores" / f"{s.id}.parquet") for s in plan.shards]
    input_errors = list(plan.input_errors)
    for marker in sorted((plan.run_dir / "input_errors").glob("*.json")):
        input_errors.append(json.loads(marker.read_text()))
    rows = funnel(plan, stats)
    totals = {
        "docs_in": rows[0]["docs_in"],
        "docs_out": rows[-1]["docs_out"],
        "docs_rejected": sum(r["docs_rejected"] for r in rows),
        "input_errors": len(input_errors),
    }
    summary = {
        "run_id": plan.run_id,
        "run_dir": str(plan.run_dir),
        "documents_dir": str(plan.stage_dir(final_stage) / "curated"),
        "warehouse": str(plan.warehouse.path),
        "totals": totals,
        "funnel": rows,
        "input_errors": input_errors,
    }
    if "pii" in plan.stages:
        redactions = pa.concat_tables([pq.read_table(p, columns=["pii_redactions"]) for p in final_curated]).column(0).to_pylist()
        summary["pii_redactions"] = {"documents": sum(1 for r in redactions if r), "redactions": sum(r or 0 for r in redactions)}
    # the summary first: a run the warehouse calls completed always has one to show
    write_json_atomic(plan.run_dir / "summary.json", summary)
    plan.warehouse.run_completed(plan.run_id, files, stats, input_errors, totals, output_dir=plan.run_dir)
    if plan.replaces is not None:
        shutil.rmtree(plan.replaces, ignore_errors=True)
    return summary


def fail_run(plan: RunPlan, err: BaseException) -> None:
    plan.warehouse.run_failed(plan.run_id, "".join(traceback.format_exception_only(err)).strip())


def run_pipeline(cfg: RunConfig, run_id: str | None = None, force: bool = False) -> dict:
    """Run every step serially in this process, without Prefect."""
    run_id = run_id or new_run_id()
    with exclusive_run(cfg, run_id):
        plan = prepare_run(cfg, run_id, force)
        if plan.completed_summary is not None:
            return plan.completed_summary
        try:
            for step in run_steps(plan):
                if step.per_shard:
                    progress.stage_started(step.name, len(plan.shards))
                    for shard in plan.shards:
                        step.fn(plan, shard)
                else:
                    step.fn(plan, None)
            return finalize_run(plan)
        except BaseException as err:
            fail_run(plan, err)
            raise
