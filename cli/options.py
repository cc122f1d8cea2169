"""Options several commands share, declared once so every command spells them the same way.

The config rule: a command that cannot work without a config takes it as the positional CONFIG
argument (`curate run CONFIG`, `curate rewrite run CONFIG`, `curate preselect train CONFIG`); a
command for which a config is optional, because it only tells where the warehouse is or adds
styles, takes it as `--config CONFIG` (`curate status --config CONFIG`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import CommandError
from cli.render import OutputFormat, RowsFormat

DEFAULT_WAREHOUSE = "warehouse/curation.duckdb"

RunConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG", help="run config YAML (see `curate init`)")]
TrainingConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG", help="PreSelect training config YAML")]
RewriteConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG", help="rewrite config YAML (see `curate rewrite init`)")]
WarehouseConfigOpt = Annotated[Path | None, typer.Option("--config", help="take the warehouse path from this config")]
WarehouseOpt = Annotated[Path | None, typer.Option("--warehouse", help="warehouse DuckDB file")]

FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="table or json")]
RowsFormatOpt = Annotated[RowsFormat, typer.Option("--format", help="table, csv or json")]
LocalOpt = Annotated[bool, typer.Option("--local", help="run without Prefect, serially")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", help="show Prefect's (and vLLM's) logs")]
OverwriteOpt = Annotated[bool, typer.Option("--force", help="overwrite an existing file")]


def warehouse_path(config: Path | None, warehouse: Path | None) -> Path:
    """`--warehouse` if given, else the warehouse of `--config`, else the default one."""
    from schemas.config import load_config

    if warehouse:
        return warehouse
    if config:
        return Path(load_config(config).warehouse.path)
    return Path(DEFAULT_WAREHOUSE)


def write_starter_config(path: Path, text: str, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise CommandError(f"{path} exists; use --force to overwrite")
    path.write_text(text, encoding="utf-8")
