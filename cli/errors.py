"""The one way a command ends on a failure it expects: a red message on stderr and an exit code.

Every command wraps its work in `reported(...)`; nothing else in cli/ prints errors or picks exit
codes. The codes:

- 2: a config that does not load or validate. The message is the ConfigError's, which names the
  file and every bad key, so it is printed as it is.
- 1: anything else that stops the command: a failed run, a missing warehouse, a bad query, a file
  the command refuses to overwrite. The exception's type is printed with its message because the
  same message can come from very different places (DuckDB, a model loader, the runner).

The runner records its own failures in the warehouse before they reach here, so turning them into
a message loses nothing; a traceback would only bury the message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.text import Text

from cli.render import console
from schemas.config import ConfigError

BAD_CONFIG = 2
FAILED = 1


class CommandError(Exception):
    """A failure the command itself detects; its message is the whole story (no type name)."""


@contextmanager
def reported(action: str | None = None) -> Iterator[None]:
    """Turn an exception raised inside the block into a message and an exit code. `action` names
    what failed ("run", "demo run crawl1") where the command does several things."""
    try:
        yield
    except typer.Exit:
        raise
    except ConfigError as err:
        _exit(str(err), BAD_CONFIG)
    except CommandError as err:
        _exit(str(err), FAILED)
    except Exception as err:  # noqa: BLE001 - every failure of the work becomes a message, see the module docstring
        _exit(f"{action + ' failed: ' if action else ''}{type(err).__name__}: {err}", FAILED)


def _exit(message: str, code: int) -> NoReturn:
    # Text, not markup: messages quote configs and SQL, whose brackets rich would eat
    console.print(Text(message, style="red"))
    raise typer.Exit(code) from None
