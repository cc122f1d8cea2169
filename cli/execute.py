"""Starting the work a command asks for, with progress bars while it runs: serially in this
process (`--local`) or as a Prefect flow, against the Prefect API of PREFECT_API_URL or a private
server that dies with the command.

`curate run`, `curate rewrite run`, `curate preselect train` and `curate demo` all start their work
here, so the demo runs exactly what the commands run. Heavy imports (Prefect, the runner, vLLM)
happen inside the functions: `curate --help` and `curate sql` stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cli.render import progress_bars

if TYPE_CHECKING:
    from schemas.config import RunConfig
    from schemas.scoring import PreSelectTrainingConfig


def quiet_prefect(verbose: bool) -> None:
    """Keep Prefect and vLLM to warnings unless asked, and never phone home."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def curate(cfg: RunConfig, run_id: str | None, force: bool, local: bool) -> dict:
    """Run (or resume) the curation pipeline; returns the run's summary."""
    with progress_bars("shards"):
        if local:
            from curation.runner import run_pipeline

            return run_pipeline(cfg, run_id=run_id, force=force)
        from flows.curate import run_curate_flow
        from flows.server import prefect_api

        with prefect_api():
            return run_curate_flow(cfg, run_id=run_id, force=force)


def rewrite(config_path: Path, local: bool) -> dict:
    """Run (or resume) the rewrite `config_path` describes; returns its summary."""
    with progress_bars("batches"):
        if local:
            from curation.rewrite.runner import run_rewrite
            from schemas.config import load_rewrite_config

            return run_rewrite(load_rewrite_config(config_path))
        from flows.rewrite import rewrite_flow
        from flows.server import prefect_api

        with prefect_api():
            return rewrite_flow(str(config_path.resolve()))


def train_scorer(config_path: Path, cfg: PreSelectTrainingConfig, local: bool) -> Path:
    """Train and register a PreSelect scorer; returns its folder."""
    with progress_bars("batches"):
        if local:
            from flows.preselect import register
            from scorers.preselect import run_training

            scorer_dir = run_training(cfg)
            register(cfg, scorer_dir)
            return scorer_dir
        from flows.preselect import preselect_flow
        from flows.server import prefect_api

        with prefect_api():
            return Path(preselect_flow(str(config_path.resolve())))


def mix(spec_path: Path, force: bool, local: bool) -> dict:
    """Materialise the mixture `spec_path` describes; returns its summary."""
    with progress_bars("batches"):
        if local:
            from curation.mixture.mix import mix as materialise
            from schemas.config import load_mixture_spec

            return materialise(load_mixture_spec(spec_path), force=force)
        from flows.mix import mix_flow
        from flows.server import prefect_api

        with prefect_api():
            return mix_flow(str(spec_path.resolve()), force=force)
