"""`curate mix`: write a mixture spec, materialise a mixture, verify its manifest, export it.

`curate mix SPEC` materialises (the common case, so it needs no subcommand); `curate mix init`
writes a commented spec. `curate manifest verify` and `curate export` read a manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from cli.errors import reported
from cli.options import FormatOpt, LocalOpt, OverwriteOpt, VerboseOpt, write_starter_config
from cli.render import OutputFormat, out, print_export_summary, print_mixture_summary, show
from cli.report import report_after
from schemas.config import load_mixture_spec
from warehouse.warehouse import MIXTURE


class _RunByDefault(TyperGroup):
    """`curate mix SPEC` means `curate mix run SPEC`: a first word that is no subcommand is a spec."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RunByDefault, no_args_is_help=True, help="Mixtures: `curate mix SPEC` materialises one; `curate mix init` writes a spec."
)
manifest_app = typer.Typer(no_args_is_help=True, help="Check a mixture manifest against its shards.")

SpecArg = Annotated[Path, typer.Argument(metavar="SPEC", help="mixture spec YAML (see `curate mix init`)")]
ManifestArg = Annotated[Path, typer.Argument(metavar="MANIFEST", help="a mixture's manifest.json (or its folder)")]


@app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="where to write the spec")] = Path("mixture.yaml"),
    preset: Annotated[str, typer.Option("--preset", help="replay share: weak (5%) or strong (25%) distribution shift")] = "weak",
    force: OverwriteOpt = False,
) -> None:
    """Write a commented mixture spec with every default and the literature's ratios."""
    from cli.errors import CommandError
    from schemas.mixture import REPLAY_SHARE, starter_spec_yaml

    with reported():
        if preset not in REPLAY_SHARE:
            raise CommandError(f"--preset {preset!r}: one of {', '.join(REPLAY_SHARE)}")
        write_starter_config(path, starter_spec_yaml(preset), force)
    out.print(f"wrote {path}")


@app.command("run")
def run(
    spec: SpecArg,
    force: Annotated[bool, typer.Option("--force", help="replace a completed mixture of the same id")] = False,
    local: LocalOpt = False,
    verbose: VerboseOpt = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Materialise the mixture SPEC describes: select, decontaminate, count tokens, sample, shuffle,
    write shards and the manifest, and register it in the warehouse."""
    from cli.execute import mix, quiet_prefect

    quiet_prefect(verbose)
    with reported("mix"):
        summary = mix(spec, force, local)
        warehouse = load_mixture_spec(spec).warehouse
    report_after(warehouse, MIXTURE, summary["mixture_id"], summary)
    show(summary, fmt, print_mixture_summary)


@manifest_app.command("verify")
def verify(manifest: ManifestArg, fmt: FormatOpt = OutputFormat.table) -> None:
    """Re-hash every shard and re-count its rows and tokens; any mismatch is an error naming the file."""
    from curation.mixture.manifest import verify_manifest

    with reported("verify"):
        summary = verify_manifest(manifest)
    show(
        summary,
        fmt,
        lambda s: out.print(
            f"[green]ok[/green]: {s['shards']} shards, {s['records']:,} records, {s['tokens']:,} tokens match {s['manifest']}"
        ),
    )


def export(
    manifest: ManifestArg,
    fmt_name: Annotated[str, typer.Option("--format", help="hf, megatron, mds or nanotron")],
    out_dir: Annotated[Path, typer.Option("--out", help="the export goes to OUT/FORMAT/ (which must be empty unless --force)")],
    force: Annotated[bool, typer.Option("--force", help="replace a non-empty --out folder")] = False,
) -> None:
    """Export a mixture in a trainer's format: Hugging Face datasets files, Megatron-LM indexed
    datasets with their blend, MosaicML MDS streams, or datatrove/nanotron tokenized files."""
    from cli.errors import CommandError
    from schemas.mixture import EXPORT_FORMATS

    with reported("export"):
        if fmt_name not in EXPORT_FORMATS:
            raise CommandError(f"--format {fmt_name!r}: one of {', '.join(EXPORT_FORMATS)}")
        from curation.export import export_mixture

        summary = export_mixture(manifest, fmt_name, out_dir, force=force)
    print_export_summary(summary)
