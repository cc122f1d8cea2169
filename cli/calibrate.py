"""`curate calibrate`: a language's quality block from reference text (curation/calibration.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import CommandError, reported
from cli.options import FormatOpt, OverwriteOpt
from cli.render import OutputFormat, out, print_calibration, show
from warehouse.files import write_text_atomic


def calibrate(
    reference: Annotated[
        str, typer.Argument(help="a .parquet or .jsonl file of text you trust in the language, or `bundled` (en, es, fr)")
    ],
    language: Annotated[str, typer.Option("--language", help="the language stage's code for it, e.g. fr")],
    out_file: Annotated[Path | None, typer.Option("--out", help="write the block here (default: print it)")] = None,
    text_column: Annotated[str, typer.Option("--text-column", help="the reference's text column")] = "text",
    force: OverwriteOpt = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Calibrate a language's quality settings from reference text and report what share of the
    reference each rule of the result drops. Use the block with quality.languages.<code>: FILE."""
    from curation.calibration import block_yaml, bundled_reference, calibrate, drop_shares, read_reference
    from schemas.config import BUNDLED

    with reported():
        if out_file is not None and out_file.exists() and not force:
            raise CommandError(f"{out_file} exists; pass --force to overwrite it")
        ref = bundled_reference(language) if reference == BUNDLED else read_reference(reference, text_column)
        block = calibrate(ref, language)
        report = drop_shares(block, language, ref.texts)
        block.calibration["reference_drop_shares"] = report
        text = block_yaml(block, language)
        if out_file is not None:
            write_text_atomic(out_file, text)
    if out_file is None and fmt == OutputFormat.table:
        out.print(text, markup=False, highlight=False)
    summary = {"language": language, "reference": ref.name, "out": str(out_file) if out_file else None, **report}
    show(summary, fmt, print_calibration)
