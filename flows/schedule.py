"""Scheduled curation: serve the file-driven flow as a Prefect deployment with a cron schedule.

Schedules need a Prefect server (`prefect server start`, PREFECT_API_URL pointing at it); the
serving process polls it and runs each scheduled flow run in a subprocess. Every scheduled run gets
a fresh run id, and the warehouse deduplicates it against everything curated before.
"""

from __future__ import annotations

from pathlib import Path

from flows.curate import curate_from_file
from schemas.config import load_config


def serve_curation(config_path: str | Path, name: str, cron: str | None = None, interval_seconds: int | None = None) -> None:
    path = str(Path(config_path).resolve())
    load_config(path)  # a bad config fails now, not at the first scheduled run
    schedule = {"cron": cron} if cron else {"interval": interval_seconds} if interval_seconds else {}
    curate_from_file.serve(name=name, parameters={"config_path": path}, **schedule)
