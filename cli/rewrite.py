"""`curate rewrite`: write a rewrite config, list the style registry, run a rewrite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import reported
from cli.execute import quiet_prefect, rewrite
from cli.options import FormatOpt, LocalOpt, OverwriteOpt, RewriteConfigArg, VerboseOpt, write_starter_config
from cli.render import OutputFormat, out, paper_of, print_rewrite_summary, print_styles, show
from cli.report import report_after
from schemas.config import load_rewrite_config
from warehouse.warehouse import REWRITE

app = typer.Typer(
    no_args_is_help=True, help="Rewrite curated documents with a language model (WRAP, Nemotron-CC, Physics of LMs styles)."
)


@app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="where to write the rewrite config")] = Path("rewrite.yaml"),
    force: OverwriteOpt = False,
) -> None:
    """Write a commented rewrite config with every default."""
    from schemas.rewrite import DEFAULT_REWRITE_YAML

    with reported():
        write_starter_config(path, DEFAULT_REWRITE_YAML, force)
    out.print(f"wrote {path}")


@app.command("styles")
def styles(
    config: Annotated[Path | None, typer.Option("--config", help="also list this config's own styles")] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The style registry: bundled styles plus those a config adds."""
    from curation.rewrite.styles import load_registry

    with reported():
        cfg = load_rewrite_config(config) if config else None
        registry = load_registry(cfg.styles_dirs, cfg.styles, cfg.style_overrides) if cfg else load_registry()
    rows = [
        {
            "style": style.id,
            "version": style.version,
            "hash": style.content_hash,
            "kind": style.kind,
            "chunk_tokens": style.chunk_tokens,
            "max_output_tokens": style.max_output_tokens,
            "paper": paper_of(style.cites),
        }
        for style in sorted(registry.values(), key=lambda s: s.id)
    ]
    show(rows, fmt, print_styles)


@app.command("run")
def run(
    config: RewriteConfigArg, local: LocalOpt = False, verbose: VerboseOpt = False, fmt: FormatOpt = OutputFormat.table
) -> None:
    """Rewrite curated documents in the routed styles. Rerunning the same config resumes: only
    work without a record is generated."""
    quiet_prefect(verbose)
    with reported():
        cfg = load_rewrite_config(config)
        summary = rewrite(config, local)
    report_after(cfg.warehouse, REWRITE, cfg.rewrite_id, summary)
    show(summary, fmt, lambda s: print_rewrite_summary(s, cfg.warehouse))
