"""`curate`: the command line. It starts runs and flows and reads the warehouse; nothing imports it.

This module only assembles the app; each command group lives in its own module:

- cli/run.py       init, run, serve (curation runs)
- cli/query.py     sql, status (reading the warehouse)
- cli/demo.py      demo (the bundled corpus end to end)
- cli/preselect.py preselect losses | benchmark | train | apply
- cli/rewrite.py   rewrite init | styles | run
- cli/mix.py       mix [run] SPEC | mix init, manifest verify, export

and what they share: cli/options.py (options, the config rule), cli/execute.py (starting work
locally or as a Prefect flow), cli/render.py (tables, JSON, summaries, progress bars) and
cli/errors.py (the one way a failure becomes a message and an exit code).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from cli import calibrate, demo, mix, preselect, query, report, rewrite, run

HELP = (
    "Curate Parquet corpora for continual pre-training.\n\n"
    "A command that needs a config takes it as the positional CONFIG (`curate run CONFIG`); where a config is optional, "
    "because it only tells where the warehouse is or adds styles, it is `--config CONFIG`. "
    "Every command that prints a table prints JSON with `--format json`. "
    "Exit code 2: a bad config (the message names the key); 1: any other failure."
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)


def _print_version(asked: bool) -> None:
    if asked:
        try:
            print(f"cpt-curate {version('cpt-curate')}")
        except PackageNotFoundError:  # running from a checkout that was never installed
            print("cpt-curate (not installed: version unknown)")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    pass


for command in (run.init, run.run, query.sql, query.status, demo.demo, run.serve, calibrate.calibrate, report.report):
    app.command()(command)
app.add_typer(preselect.app, name="preselect")
app.add_typer(rewrite.app, name="rewrite")
app.add_typer(mix.app, name="mix")
app.add_typer(mix.manifest_app, name="manifest")
app.command("export")(mix.export)


if __name__ == "__main__":  # pragma: no cover - `python -m cli.main`
    app()
