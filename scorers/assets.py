"""Where the offline assets are at run time (language-ID model, word lists, reference text).

Fetching them from registry packages is set-up work (`provision/assets.py`, `make assets`);
runtime code only reads paths, and a missing asset is an error that says how to fetch it.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CURATE_ASSETS_DIR"


def assets_dir() -> Path:
    """`$CURATE_ASSETS_DIR` if set, else `<repo root>/assets`."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "assets"


def asset_path(relative: str, root: Path | None = None) -> Path:
    """Path of one asset file, or `FileNotFoundError` saying how to fetch the assets."""
    root = Path(root) if root is not None else assets_dir()
    path = root / relative
    if not path.exists():
        raise FileNotFoundError(
            f"asset {relative!r} not found in {root}. Fetch the offline assets first with "
            f"`make assets` (or `python -m provision.assets"
            f"{'' if root == assets_dir() else f' --dest {root}'}`); "
            f"set {ENV_VAR} to use another assets directory."
        )
    return path
