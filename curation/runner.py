"""A curation run as a list of steps over shards, runnable with or without Prefect.

`prepare_run` fixes what a run is (its id, config, input shards, enabled stages from
curation/registry.py); `run_steps` turns the stages into steps, each either per shard (independent
tasks) or global (one decision over the whole run); `finalize_run` checks the accounting across
every stage, lets each stage register its files and add to the summary, and registers the run in
the warehouse. The runner knows the stage contract (curation/stage.py), never a stage's internals.
The Prefect flow in flows/ and `run_pipeline` below are two drivers of the same steps.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation.registry import STAGES, stage_named
from curation.stage import (
    AccountingError,
    FinishContext,
    GlobalStage,
    PlanContext,
    ShardContext,
    Stage,
    StagePaths,
    StageStats,
    process_shard,
)
from schemas import progress
from schemas.config import RunConfig
from warehouse.files import write_json_atomic
from warehouse.secrets import without_secrets
from warehouse.shards import ShardError, expand_input_paths, file_fingerprint, write_table_atomic
from warehouse.warehouse import RUN, Warehouse


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

    # the ordered stage classes the run may use (curation/registry.py; a test may add its own)
    registry: tuple[type[Stage], ...] = STAGES

    def stage_dir(self, stage: str) -> Path:
        index = [s.name for s in self.registry].index(stage)
        return self.run_dir / f"{index:02d}_{stage}"

    def stage(self, name: str) -> Stage:
        """A fresh, set-up instance of an enabled stage (models are cached per process)."""
        stage = stage_named(name, self.registry)(self.config)
        stage.setup()
        return stage

    def shard_context(self, stage: str, shard: Shard) -> ShardContext:
        return ShardContext(self.run_id, shard.id, shard.input_path, self.stage_dir(stage))

    def map_outputs(self, stage: str) -> list[Path]:
        return [self.shard_context(stage, s).map_output for s in self.shards]

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
    """One step of a run: per shard (run for each shard; the flow chains consecutive ones, see
    `ShardChain`) or global (once, over every shard)."""

    name: str
    stage: str
    per_shard: bool
    work: Callable[[str, RunPlan, Shard | None], dict | None]

    def fn(self, plan: RunPlan, shard: Shard | None) -> dict | None:
        return self.work(self.stage, plan, shard)


# ---------------------------------------------------------------- planning


def new_run_id() -> str:
    """A fresh id: readable time, plus random hex so that runs started in the same second (two
    schedules of one config) never resume each other."""
    return "run-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


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
                f"run {run_id} is already running (process {holder}, {runs_root}); wait for it to finish or pick another --run-id"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def enabled_stages(cfg: RunConfig, registry: tuple[type[Stage], ...] = STAGES) -> list[str]:
    return [stage.name for stage in registry if stage.enabled(cfg)]


def setup_stages(plan: RunPlan) -> None:
    """Load every enabled stage's models and lists in the driver, before any step: a missing or
    broken model fails the run before a shard is touched."""
    for name in plan.stages:
        plan.stage(name)


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


def prepare_run(
    cfg: RunConfig, run_id: str | None = None, force: bool = False, registry: tuple[type[Stage], ...] = STAGES
) -> RunPlan:
    """Fix what the run is. Call it inside `exclusive_run`. A run the warehouse has completed stays
    visible: asked for again it is not recomputed, and with `force` its replacement is built in a
    new folder and swapped in only when it completes."""
    run_id = run_id or new_run_id()
    check_run_id(run_id)
    runs_root = Path(cfg.output.root).resolve() / "runs"
    known = Warehouse(cfg.warehouse.path).job_status(RUN, run_id)
    run_dir, replaces = runs_root / run_id, None
    if known and known[0] == "completed":
        current = Path(known[1])
        if not force:
            _same_config_manifest(run_id, current, cfg)
            summary = json.loads((current / "summary.json").read_text())
            return RunPlan(run_id, cfg, current, [], [], completed_summary=summary, registry=registry)
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
        input_files, skipped = _input_versions(cfg, paths)
        if not input_files:
            return RunPlan(run_id, cfg, run_dir, [], [], completed_summary=_nothing_new(run_id, skipped), registry=registry)
        shards = [Shard(id=f"shard-{i:05d}", input_path=f["path"]) for i, f in enumerate(input_files)]
        input_errors = without_secrets([{"run_id": run_id, "input_file": p, "error": e} for p, e in missing])
        write_json_atomic(
            manifest_path,
            {
                "run_id": run_id,
                "config_fingerprint": _config_fingerprint(cfg),
                "config": without_secrets(cfg.model_dump(mode="json")),
                "shards": [s.__dict__ for s in shards],
                "input_files": input_files,
                "skipped_inputs": skipped,
                "input_errors": input_errors,
                "created_at": datetime.now(UTC).isoformat(),
            },
        )
    plan = RunPlan(
        run_id=run_id,
        config=cfg,
        run_dir=run_dir,
        shards=shards,
        stages=enabled_stages(cfg, registry),
        input_errors=input_errors,
        replaces=replaces,
        registry=registry,
    )
    plan.warehouse.job_started(RUN, run_id, run_dir, cfg.model_dump(mode="json"), [s.input_path for s in shards])
    return plan


def _input_versions(cfg: RunConfig, paths: list[str]) -> tuple[list[dict], list[dict]]:
    """Each input file's version (path, size, modified, sha256) and, in continual mode
    (`input.skip_curated`), the files left out because a completed run already curated the same
    content. A file unchanged since a run recorded it (same path, size and time) is not re-read."""
    curated = Warehouse(cfg.warehouse.path).curated_inputs()
    known = {(r["path"], r["size"], r["modified"]): r["sha256"] for r in curated}
    versions = []
    for path in paths:
        try:
            versions.append(file_fingerprint(path, known))
        except OSError as err:
            # an unreadable file is still read by its shard, which records the input error
            versions.append({"path": path, "size": 0, "modified": None, "sha256": None, "error": str(err)})
    if not cfg.input.skip_curated:
        return versions, []
    seen = {r["sha256"]: r for r in curated}
    new = [v for v in versions if v["sha256"] is None or v["sha256"] not in seen]
    skipped = [{**v, "curated_by": seen[v["sha256"]]["run_id"]} for v in versions if v["sha256"] in seen]
    return new, skipped


def _nothing_new(run_id: str, skipped: list[dict]) -> dict:
    """What a continual run with no new input returns: no run is recorded, nothing is written."""
    return {"run_id": run_id, "nothing_new": True, "skipped_inputs": skipped, "totals": {"docs_in": 0, "docs_out": 0}}


# ---------------------------------------------------------------- steps


def _apply_step(name: str, plan: RunPlan, shard: Shard) -> dict | None:
    """A stage over one shard: its batches through `process`, outputs and stats written by
    `process_shard`. The first stage's unreadable input file is recorded as an input error and
    contributes no documents; the run goes on."""
    paths = plan.paths(name, shard)
    if paths.done():
        return None
    stage = plan.stage(name)
    previous = None if stage.reads_input else plan.paths(plan.previous(name), shard).curated
    overhead = _overhead(plan, name, shard) if isinstance(stage, GlobalStage) else 0.0
    try:
        stage.begin_shard(plan.shard_context(name, shard))
        return process_shard(
            stage=name,
            shard=shard.id,
            run_id=plan.run_id,
            batches=stage.batches(previous),
            process=stage.process,
            paths=paths,
            extra=stage.shard_extra,
            extra_seconds=overhead,
        )
    except ShardError as err:
        if not stage.reads_input:
            raise
        marker = plan.run_dir / "input_errors" / f"{shard.id}.json"
        write_json_atomic(marker, {"run_id": plan.run_id, "input_file": shard.input_path, "error": err.reason})
        return process_shard(
            stage=name, shard=shard.id, run_id=plan.run_id, batches=[], process=None, paths=paths, extra={"input_error": str(err)}
        )


def _timed(marker: Path, work: Callable[[], dict]) -> dict:
    """Run a step's work and record its duration next to its output (read back by `_overhead`)."""
    started = time.perf_counter()
    result = work()
    result["seconds"] = round(time.perf_counter() - started, 4)
    write_json_atomic(marker, result)
    return result


def _overhead(plan: RunPlan, stage: str, shard: Shard) -> float:
    """This shard's share of the stage's map and planning time."""
    seconds = json.loads((plan.stage_dir(stage) / "decisions.json").read_text())["seconds"] / len(plan.shards)
    mapped = plan.shard_context(stage, shard).map_output.with_suffix(".json")
    if mapped.exists():
        seconds += json.loads(mapped.read_text())["seconds"]
    return seconds


def _map_step(name: str, plan: RunPlan, shard: Shard) -> dict | None:
    """The per-shard first part of a global stage: keys (MinHash bands, scores) of every document,
    for the plan to read. Done once its timing marker (written after the output) exists: a process
    killed between the two redoes the step, which rewrites the same output."""
    out = plan.shard_context(name, shard).map_output
    marker = out.with_suffix(".json")
    if marker.exists():
        return None
    stage = plan.stage(name)

    def work() -> dict:
        previous = plan.paths(plan.previous(name), shard).curated
        tables = [stage.map(batch) for batch in stage.batches(previous)]
        write_table_atomic(out, pa.concat_tables(tables) if tables else stage.map_schema.empty_table())
        return {"rows": sum(t.num_rows for t in tables)}

    result = _timed(marker, work)
    progress.shard_done(_map_step_name(stage), shard.id, 0, 0)
    return result


def _plan_step(name: str, plan: RunPlan, _: Shard | None = None) -> dict | None:
    marker = plan.stage_dir(name) / "decisions.json"
    if marker.exists():
        return None
    stage = plan.stage(name)
    ctx = PlanContext(
        run_id=plan.run_id,
        stage_dir=plan.stage_dir(name),
        map_outputs=plan.map_outputs(name),
        previous_curated=plan.curated_files(plan.previous(name)),
        warehouse=plan.warehouse,
    )
    return _timed(marker, lambda: stage.plan(ctx))


def _map_step_name(stage: type[Stage] | Stage) -> str:
    return stage.map_step or f"{stage.name}_map"


def run_steps(plan: RunPlan) -> list[Step]:
    """The run's steps in order: a per-shard stage is one step; a global stage is its map step (if
    it has one), its plan, then its per-shard apply."""
    steps = []
    for name in plan.stages:
        stage = stage_named(name, plan.registry)
        if issubclass(stage, GlobalStage):
            if stage.map_schema is not None:
                steps.append(Step(_map_step_name(stage), name, True, _map_step))
            steps.append(Step(f"{name}_plan", name, False, _plan_step))
        steps.append(Step(name, name, True, _apply_step))
    return steps


@dataclass(frozen=True)
class ShardChain:
    """Consecutive per-shard steps that one task runs over one shard, in order. A shard's next
    step reads only that shard's output of the step before, so only a global step (a plan over
    every shard) needs every shard done first. One task per shard per chain rather than per
    step: an orchestrated task costs more than many steps do (Prefect's set-up of a task in a
    pool worker is ~0.15 s: its settings and API client rebuilt each time), and each extra
    barrier leaves cores idle while the slowest shard finishes. Retried, a chain redoes only
    the steps whose outputs are missing."""

    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        return "+".join(step.name for step in self.steps)

    def fn(self, plan: RunPlan, shard: Shard) -> list[dict | None]:
        return [step.fn(plan, shard) for step in self.steps]


def scheduled_steps(plan: RunPlan) -> list[ShardChain | Step]:
    """`run_steps` as the flow schedules them: each run of consecutive per-shard steps as one
    chain, each global step on its own."""
    scheduled: list[ShardChain | Step] = []
    for step in run_steps(plan):
        if not step.per_shard:
            scheduled.append(step)
        elif scheduled and isinstance(scheduled[-1], ShardChain):
            scheduled[-1] = ShardChain((*scheduled[-1].steps, step))
        else:
            scheduled.append(ShardChain((step,)))
    return scheduled


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
    first = plan.stages[0]
    problems = []
    input_rows = 0
    for shard in plan.shards:
        where = f"{shard.id} ({shard.input_path})"
        ingest = by_key[(first, shard.id)]
        declared = json.loads(ingest["extra"]).get("input_rows")
        if declared is not None:
            input_rows += declared
            if ingest["docs_in"] != declared:
                problems.append(f"{first}/{where}: the file declares {declared} rows, ingest read {ingest['docs_in']}")
        for i, stage in enumerate(plan.stages):
            s = by_key[(stage, shard.id)]
            paths = plan.paths(stage, shard)
            if not StageStats.from_record(s).balances():
                problems.append(f"{stage}/{where}: in {s['docs_in']} != out {s['docs_out']} + rejected {s['docs_rejected']}")
            if _rows_in(paths.curated) != s["docs_out"]:
                problems.append(
                    f"{stage}/{where}: {paths.curated} holds {_rows_in(paths.curated)} rows, stats say {s['docs_out']}"
                )
            if _rows_in(paths.rejected) != s["docs_rejected"]:
                problems.append(
                    f"{stage}/{where}: {paths.rejected} holds {_rows_in(paths.rejected)} rows, stats say {s['docs_rejected']}"
                )
            if i and by_key[(plan.stages[i - 1], shard.id)]["docs_out"] != s["docs_in"]:
                problems.append(f"{stage}/{where}: in {s['docs_in']} != previous stage's out")
    written = sum(_rows_in(p) for p in plan.curated_files(plan.stages[-1]))
    written += sum(_rows_in(plan.paths(stage, s).rejected) for stage in plan.stages for s in plan.shards)
    if written != input_rows:
        problems.append(f"run {plan.run_id}: input files hold {input_rows} rows, curated + rejected files hold {written}")
    if problems:
        raise AccountingError("accounting does not balance:\n  " + "\n  ".join(problems))


def _check_some_input_was_read(plan: RunPlan, stats: list[dict]) -> None:
    readable = [s for s in stats if s["stage"] == plan.stages[0] and "input_error" not in json.loads(s["extra"])]
    if not readable:
        markers = [json.loads(m.read_text()) for m in sorted((plan.run_dir / "input_errors").glob("*.json"))]
        errors = [f"{e['input_file']}: {e['error']}" for e in [*plan.input_errors, *markers]]
        raise RunError(f"run {plan.run_id}: no input file could be read:\n  " + "\n  ".join(errors))


def funnel(plan: RunPlan, stats: list[dict]) -> list[dict]:
    """Per stage, the sum of its shards' stats."""
    rows = []
    for stage in plan.stages:
        total = sum((StageStats.from_record(s) for s in stats if s["stage"] == stage), StageStats())
        rows.append(total.funnel_row(stage))
    return rows


def _finish_context(plan: RunPlan, stage: str, final_curated: list[Path]) -> FinishContext:
    return FinishContext(
        run_id=plan.run_id,
        run_dir=plan.run_dir,
        stage_dir=plan.stage_dir(stage),
        map_outputs=plan.map_outputs(stage),
        final_curated=final_curated,
        shard_ids=[s.id for s in plan.shards],
    )


def finalize_run(plan: RunPlan) -> dict:
    # a worker killed mid-write within this run (Dask reran its task elsewhere) left its
    # temporary; every task has ended, so nothing is still writing one
    _remove_partial_files(plan.run_dir)
    stats = _load_stats(plan)
    _check_some_input_was_read(plan, stats)
    check_accounting(plan, stats)
    final_stage = plan.stages[-1]
    final_curated = plan.curated_files(final_stage)
    files = {
        "documents": [str(p) for p in final_curated],
        "rejected": [str(plan.paths(stage, s).rejected) for stage in plan.stages for s in plan.shards],
    }
    # no setup: finishing reads and writes files, it loads no model
    finishing = [
        (stage_named(name, plan.registry)(plan.config), _finish_context(plan, name, final_curated)) for name in plan.stages
    ]
    for stage, ctx in finishing:
        files.update(stage.run_files(ctx))
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
    manifest = json.loads((plan.run_dir / "run.json").read_text())
    if plan.config.input.skip_curated:
        summary["skipped_inputs"] = manifest.get("skipped_inputs", [])
    for stage, ctx in finishing:
        summary.update(stage.run_summary(ctx))
    # the summary first: a run the warehouse calls completed always has one to show
    write_json_atomic(plan.run_dir / "summary.json", summary)
    plan.warehouse.job_completed(
        RUN,
        plan.run_id,
        files,
        totals,
        output_dir=plan.run_dir,
        config=plan.config.model_dump(mode="json"),
        input_paths=[s.input_path for s in plan.shards],
        stats=stats,
        input_errors=input_errors,
        input_files=[f for f in manifest.get("input_files", []) if f["sha256"] is not None],
    )
    if plan.replaces is not None:
        shutil.rmtree(plan.replaces, ignore_errors=True)
    return summary


def fail_run(plan: RunPlan, err: BaseException) -> None:
    plan.warehouse.job_failed(RUN, plan.run_id, "".join(traceback.format_exception_only(err)).strip())


def run_pipeline(
    cfg: RunConfig, run_id: str | None = None, force: bool = False, registry: tuple[type[Stage], ...] = STAGES
) -> dict:
    """Run every step serially in this process, without Prefect."""
    run_id = run_id or new_run_id()
    with exclusive_run(cfg, run_id):
        plan = prepare_run(cfg, run_id, force, registry)
        if plan.completed_summary is not None:
            return plan.completed_summary
        try:
            setup_stages(plan)
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
