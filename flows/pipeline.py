"""The end-to-end flow over one project: curate → (optionally) retrain the PreSelect scorer →
rewrite → mix, each step a subflow that also runs alone, each skipping work already done by the
runner's own resume (continual curation reads only new or changed input files, a rewrite
generates only what has no record, a mixture is rebuilt from the warehouse's new state).

Selection is the curation run's scoring stage (`scoring.preselect.scorer_dir` in the run config):
a scorer retrained here is the one the next run selects with. With no new input and no retraining,
nothing downstream can change, and the rewrite and the mixture are skipped
(`skip_when_nothing_new`). Every step's config is loaded before the first step starts.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.curate import curate_from_file
from flows.mix import mix_flow
from flows.preselect import preselect_flow
from flows.rewrite import rewrite_flow
from schemas.config import load_project


@flow(name="pipeline")
def pipeline_flow(project_path: str) -> dict:
    logger = get_run_logger()
    project = load_project(project_path)
    steps: dict[str, dict | str | None] = {"curate": curate_from_file(project.curate)}
    nothing_new = bool(steps["curate"].get("nothing_new"))
    if project.preselect:
        steps["preselect"] = preselect_flow(project.preselect)
    if nothing_new and project.skip_when_nothing_new and not project.preselect:
        logger.info("no new input: the rewrite and the mixture are current, nothing else to do")
        steps.update({name: None for name in ("rewrite", "mix") if getattr(project, name)})
    else:
        if project.rewrite:
            steps["rewrite"] = rewrite_flow(project.rewrite)
        if project.mix:
            steps["mix"] = mix_flow(project.mix, force=True)
    create_markdown_artifact(_steps_markdown(steps), key="pipeline-steps", description=f"Project {project_path}")
    return steps


def _steps_markdown(steps: dict) -> str:
    lines = ["# Pipeline run", "", "| step | outcome |", "|---|---|"]
    for name, result in steps.items():
        lines.append(f"| {name} | {_outcome(name, result)} |")
    return "\n".join(lines) + "\n"


def _outcome(name: str, result) -> str:
    if result is None:
        return "skipped: no new input"
    if name == "curate":
        if result.get("nothing_new"):
            return f"nothing new ({len(result['skipped_inputs'])} files curated before)"
        totals = result["totals"]
        return f"run {result['run_id']}: {totals['docs_in']:,} documents in, {totals['docs_out']:,} kept"
    if name == "preselect":
        return f"scorer {result}"
    if name == "rewrite":
        return (
            f"rewrite {result['rewrite_id']}: {result['generated_now']:,} generated now, {result['accepted']:,} accepted in all"
        )
    return f"mixture {result['mixture_id']}: {result['tokens']:,} tokens, {result['shards']} shards"
