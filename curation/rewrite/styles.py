"""The style registry: versioned prompt templates, bundled as YAML files and extendable from config.

A style file is data, not code: users add one (a folder in `styles_dirs`, or inline under
`styles:`) and route documents to it without touching Python.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from schemas.rewrite import LANGUAGE_SLOT, TEXT_SLOT, StyleSpec

BUNDLED_DIR = Path(__file__).parent / "styles"

# The document is data inside these markers; a document cannot close the block early.
_OPEN, _CLOSE = "<document>", "</document>"


class StyleError(ValueError):
    """A style file or reference that cannot be used; the message names the file or style."""


def load_style_file(path: Path) -> StyleSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return StyleSpec.model_validate(data)
    except OSError as err:
        raise StyleError(f"cannot read style file {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise StyleError(f"invalid YAML in style file {path}: {err}") from None
    except ValidationError as err:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in err.errors())
        raise StyleError(f"invalid style file {path}: {fields}") from None


def _merge(base: dict, patch: dict) -> dict:
    merged = dict(base)
    for key, value in patch.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def load_registry(
    extra_dirs: list[str] | None = None,
    inline: list[StyleSpec] | None = None,
    overrides: dict[str, dict] | None = None,
) -> dict[str, StyleSpec]:
    """Bundled styles, then each extra folder, then inline styles; a later one with the same id wins.
    `overrides` patch single fields of a style (e.g. switch on QA appending) and so change its hash."""
    registry: dict[str, StyleSpec] = {}
    for folder in [BUNDLED_DIR, *(Path(d) for d in extra_dirs or [])]:
        if not folder.is_dir():
            raise StyleError(f"styles folder {folder} does not exist")
        for path in sorted(folder.glob("*.yaml")):
            style = load_style_file(path)
            registry[style.id] = style
    for style in inline or []:
        registry[style.id] = style
    for style_id, patch in (overrides or {}).items():
        if style_id not in registry:
            raise StyleError(f"style_overrides names unknown style {style_id!r}; known: {sorted(registry)}")
        try:
            registry[style_id] = StyleSpec.model_validate(_merge(registry[style_id].model_dump(), patch))
        except ValidationError as err:
            fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise StyleError(f"invalid style_overrides.{style_id}: {fields}") from None
    return registry


def _as_data(text: str) -> str:
    return text.replace(_CLOSE, "</ document>").replace(_OPEN, "< document>")


UNKNOWN_LANGUAGE = "the passage's own language"


def language_name(code: str | None) -> str:
    """The English name of a language-ID code ("fr" -> "French"), from Babel's CLDR data; for a
    document of unknown language, or a code CLDR does not name, the passage's own language."""
    if not code:
        return UNKNOWN_LANGUAGE
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(code.replace("-", "_")).get_language_name("en") or UNKNOWN_LANGUAGE
    except (UnknownLocaleError, ValueError):
        return UNKNOWN_LANGUAGE


def names_language(style: StyleSpec) -> bool:
    """Whether the style's prompt depends on the document's language."""
    return LANGUAGE_SLOT in style.user or LANGUAGE_SLOT in (style.system or "")


def _filled(template: str, language: str | None) -> str:
    return template.replace(LANGUAGE_SLOT, language_name(language))


def render_messages(style: StyleSpec, chunk: str, language: str | None = None) -> list[dict[str, str]]:
    """Chat messages for one chunk of a document in `language` (a language-ID code). The system
    prompt comes first so that every request of a style shares the longest possible prefix (the
    engine's prefix cache reuses it)."""
    user = _filled(style.user, language).replace(TEXT_SLOT, _as_data(chunk))
    messages = [{"role": "system", "content": _filled(style.system, language)}] if style.system else []
    return messages + [{"role": "user", "content": user}]


def style_instructions(style: StyleSpec, language: str | None = None) -> str:
    """The style's own words around the chunk (system prompt and user template without the slot):
    what an output must not echo."""
    parts = (_filled(style.system or "", language), _filled(style.user, language).replace(TEXT_SLOT, ""))
    return "\n".join(part for part in parts if part)
