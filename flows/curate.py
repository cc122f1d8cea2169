"""The curation pipeline as a Prefect flow: one task per shard per chain of per-shard steps,
global steps (plans over every shard) in between.

The flow is a thin driver over `curation.runner`: the same steps `run_pipeline` runs serially,
chained per shard between global steps (`scheduled_steps`).
Resume is the runner's (outputs written atomically and skipped when present), so tasks use no
Prefect result cache; Prefect adds retries, observability, schedules and the task runner (by
default a pool of processes, one per core of this machine; Dask when one machine is not enough).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from prefect import flow, get_run_logger, task, unmapped
from prefect import task_runners as prefect_task_runners
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from curation.runner import (
    RunPlan,
    Shard,
    ShardChain,
    Step,
    exclusive_run,
    fail_run,
    finalize_run,
    new_run_id,
    prepare_run,
    scheduled_steps,
    setup_stages,
)
from flows.artifacts import publish_run, report_of
from flows.cluster import prepare_workers
from flows.retries import retry_unless_final
from schemas import progress
from schemas.config import RunConfig, load_config
from warehouse.warehouse import RUN


@task(
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=2,
    retry_condition_fn=retry_unless_final,
    task_run_name="{chain.name}-{shard.id}",
)
def shard_task(chain: ShardChain, plan: RunPlan, shard: Shard) -> list[dict | None]:
    records = chain.fn(plan, shard)
    for step, record in zip(chain.steps, records, strict=True):
        if record and "docs_in" in record:
            get_run_logger().info(
                "%s %s: %d in, %d kept, %d dropped (process %d)",
                step.name,
                shard.id,
                record["docs_in"],
                record["docs_out"],
                record["docs_rejected"],
                os.getpid(),
            )
        elif record is None:
            get_run_logger().info("%s %s: done before (resumed; process %d)", step.name, shard.id, os.getpid())
    return records


_in_worker = False  # set in a pool's worker process by its initializer


def _start_worker(message_queue, parent: int) -> None:
    """A pool worker's start: a watch that exits the worker once `parent`, the run's process, is
    gone (it may be gone already: the worker has just imported everything), then Prefect's own
    set-up. Without it a pool's workers outlive a killed run and go on writing into the run
    folder its rerun owns; what they leave half-written is never taken as done (atomic writes)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    global _in_worker
    _in_worker = True
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    prefect_task_runners._initialize_process_pool_worker(message_queue)


class WorkerPool(ProcessPoolTaskRunner):
    """Prefect's process pool, whose workers exit when the run's process is gone (killed, say):
    a worker idle in the pool, or busy with a task, would otherwise live on. The pool starts its
    processes on the first task, so the executor is swapped for one whose workers start with
    the watch before any exists.

    A worker takes ~2 s to start (a fresh interpreter importing Prefect, spaCy and the stages),
    so the flow starts all of them once it knows the run has work, to start while it sets up
    the stages, and lets them go as soon as the last shard task is done, to exit while it
    finalises the run."""

    def __enter__(self):
        super().__enter__()
        prefect_s = self._executor
        self._executor = ProcessPoolExecutor(
            max_workers=self._max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self._subprocess_message_queue, os.getpid()),
        )
        prefect_s.shutdown(wait=False)
        return self

    def start_workers(self) -> None:
        """Start every worker now rather than with the first task."""
        for _ in range(self._max_workers):
            self._executor.submit(int)  # each submit to a pool with no idle worker starts one

    def duplicate(self):
        """The runner a flow run enters: this pool in the run's process. In a worker, Prefect enters
        one around every task it runs (for tasks that task might submit); a pool of pools there
        would be ~50 ms of queues and threads per task for nothing, so it is a thread pool."""
        if _in_worker:
            return ThreadPoolTaskRunner(max_workers=1)
        return super().duplicate()

    def release_workers(self) -> None:
        """No more tasks will come: the workers exit now; the pool's exit waits for them."""
        self._executor.shutdown(wait=False)


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2, retry_condition_fn=retry_unless_final, task_run_name="{step.name}")
def global_task(step: Step, plan: RunPlan) -> dict | None:
    return step.fn(plan, None)


def task_runner_for(cfg: RunConfig):
    if cfg.execution.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.execution.dask_address:
            return DaskTaskRunner(address=cfg.execution.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={"n_workers": cfg.execution.workers, "threads_per_worker": 1, "dashboard_address": ":0"}
        )
    if cfg.execution.task_runner == "process":
        return WorkerPool(max_workers=cfg.execution.workers)
    return ThreadPoolTaskRunner(max_workers=cfg.execution.workers)


def _run_shard_chain(chain: ShardChain, plan: RunPlan, out_of_process: bool) -> None:
    """One task per shard; every shard must finish before the next global step. Tasks in other
    processes (a process pool, Dask) cannot reach this process's progress bars, so their
    completions are reported here, as each future completes; in threads the runner reports
    them itself."""
    for step in chain.steps:
        progress.stage_started(step.name, len(plan.shards))
    futures = shard_task.map(unmapped(chain), unmapped(plan), plan.shards)
    shard_of = {future.task_run_id: shard.id for future, shard in zip(futures, plan.shards, strict=True)}
    for future in as_completed(futures):
        records = future.result()  # raises the first failure; later steps need every shard
        if out_of_process:
            for step, record in zip(chain.steps, records, strict=True):
                record = record or {}
                progress.shard_done(step.name, shard_of[future.task_run_id], record.get("docs_in", 0), record.get("docs_out", 0))


def _worker_pool() -> WorkerPool | None:
    runner = FlowRunContext.get().task_runner
    return runner if isinstance(runner, WorkerPool) else None


@flow(name="curate", log_prints=True)
def curate_flow(config: RunConfig, run_id: str | None = None, force: bool = False) -> dict:
    logger = get_run_logger()
    run_id = run_id or new_run_id()
    with exclusive_run(config, run_id):
        plan = prepare_run(config, run_id, force)
        if plan.completed_summary is not None:
            if plan.completed_summary.get("nothing_new"):
                logger.info(
                    "run %s: no new input (%d files already curated); nothing to do",
                    run_id,
                    len(plan.completed_summary["skipped_inputs"]),
                )
            else:
                logger.info("run %s was already completed; --force recomputes it", run_id)
            return plan.completed_summary
        logger.info("run %s: %d shards, stages %s", plan.run_id, len(plan.shards), " -> ".join(plan.stages))
        pool = _worker_pool()
        if pool:
            pool.start_workers()
        try:
            setup_stages(plan)
            out_of_process = config.execution.task_runner != "thread"
            if config.execution.task_runner == "dask":
                prepare_workers(FlowRunContext.get().task_runner.client, plan)
            for scheduled in scheduled_steps(plan):
                if isinstance(scheduled, ShardChain):
                    _run_shard_chain(scheduled, plan, out_of_process)
                else:
                    global_task(scheduled, plan)
            if pool:
                pool.release_workers()
            summary = finalize_run(plan)
        except BaseException as err:
            fail_run(plan, err)
            raise
    logger.info("run %s done: %s", plan.run_id, summary["totals"])
    summary["report"] = report_of(summary["warehouse"], RUN, plan.run_id)
    publish_run(summary)
    return summary


def run_curate_flow(config: RunConfig, run_id: str | None = None, force: bool = False) -> dict:
    """Run the flow with the task runner the config asks for."""
    runner_flow = curate_flow.with_options(task_runner=task_runner_for(config))
    return runner_flow(config=config, run_id=run_id, force=force)


@flow(name="curate-from-file")
def curate_from_file(config_path: str, run_id: str | None = None, force: bool = False) -> dict:
    """Entry point for deployments: the schedule names a config file, each run gets a fresh id."""
    return run_curate_flow(load_config(config_path), run_id=run_id, force=force)
