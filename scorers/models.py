"""Where language models are found at run time: one resolver for "a prepared model's name or a
model folder", used by every engine (PreSelect losses, benchmark scores, rewriting).

Preparing the models (taking GGUF files out of registry packages and converting them) is set-up
work and lives in `provision/models.py`; nothing here downloads or converts anything.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CURATE_MODELS_DIR"
MARKER = "CONVERTED.json"  # written last by provision/models.py: marks a complete folder


class ModelLoadError(RuntimeError):
    """A configured model that does not exist or cannot be loaded."""


def models_dir() -> Path:
    """`$CURATE_MODELS_DIR` if set, else `<repo root>/models`."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser().absolute()
    return Path(__file__).resolve().parents[1] / "models"


def model_path(name: str, root: Path | None = None) -> Path:
    """The folder of a prepared model by name."""
    path = (root or models_dir()) / name
    if not (path / MARKER).is_file():
        raise ModelLoadError(f"model {name} is not prepared in {path}: run `make models` (python -m provision.models)")
    return path


def resolve_model(model: str | Path) -> Path:
    """A model folder (an existing folder, or anything written as a path) or a prepared model's
    name; the folder must hold a Hugging Face `config.json`."""
    path = Path(model)
    if path.is_dir():
        path = path.resolve()
    elif "/" in str(model) or str(model).startswith("."):
        raise ModelLoadError(f"model folder {model} does not exist")
    else:
        path = model_path(str(model))
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model path {path} has no config.json (a Hugging Face model folder is expected)")
    return path
