"""Trainer exports of a mixture: the same records, in training order, in the files trainers read.

    export_mixture("out/mixtures/m1", "megatron", "exports/m1")   # -> exports/m1/megatron/...

Formats (schemas.mixture.EXPORT_FORMATS), each in `<out_dir>/<format>/`, laid out as its module says:
hf (Parquet + JSONL for `datasets`), megatron (indexed datasets + blend), mds (MosaicML streaming),
nanotron (datatrove tokenized files).

Token ids come from the manifest's tokenizer, whose file must hash to the manifest's sha256; every
record's id count must equal its `tokens` column, and each source's sum the manifest's (see
records.py), or the export fails and names the record or source.

A format is written in a temporary folder beside its target (`.<format>.tmp-XXXXXXXX`) and renamed
into place once complete, so a killed export leaves no folder that looks finished; the next export
of that format into the same `out_dir` removes such leftovers. A target that exists and is not
empty is replaced only with `force`. Two exports into the same `out_dir` at once are not supported.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from curation.export import hf, mds, megatron, nanotron
from curation.export.records import ExportError
from curation.mixture.manifest import load_manifest
from schemas.mixture import EXPORT_FORMATS
from scorers.tokens import load_tokenizer

__all__ = ["ExportError", "export_mixture", "WRITERS"]

WRITERS = {"hf": hf.write, "megatron": megatron.write, "mds": mds.write, "nanotron": nanotron.write}  # one per EXPORT_FORMATS

ExportProgress = Callable[[str, int, int], None]  # (format, tokens done, tokens in the mixture)


def export_mixture(
    manifest_path: str | Path,
    fmt: str | Iterable[str],
    out_dir: str | Path,
    force: bool = False,
    progress: ExportProgress | None = None,
) -> dict:
    """Write the mixture in each requested format under `out_dir`; return what was written, the
    tokens per source, and each format's throughput (tokens/s, tokenization included)."""
    formats = _formats(fmt)
    manifest = load_manifest(manifest_path)
    tokenizer = load_checked_tokenizer(manifest)
    out_dir = Path(out_dir).resolve()
    targets = {name: out_dir / name for name in formats}
    for target in targets.values():
        _check_target(target, force)
    summary = {"mixture_id": manifest.get("mixture_id"), "manifest": manifest["_path"], "out_dir": str(out_dir), "formats": {}}
    for name, target in targets.items():
        report = _export_format(name, manifest, tokenizer, target, progress)
        summary["formats"][name] = report
        summary["tokens_per_source"] = report["tokens_per_source"]
    summary["tokens"] = sum(summary["tokens_per_source"].values())
    return summary


def load_checked_tokenizer(manifest: dict):
    spec = manifest.get("tokenizer") or {}
    missing = [key for key in ("path", "sha256", "eos_token") if key not in spec]
    if missing:
        raise ExportError(f"manifest {manifest['_path']}: tokenizer lacks {', '.join(missing)}")
    tokenizer = load_tokenizer(spec["path"], append_eos=spec["eos_token"] is not None, eos_token=spec["eos_token"])
    if tokenizer.sha256 != spec["sha256"]:
        raise ExportError(
            f"tokenizer {tokenizer.path} has sha256 {tokenizer.sha256}, but the manifest {manifest['_path']} "
            f"was counted with {spec['sha256']}: use the tokenizer file the mixture was made with"
        )
    return tokenizer


def _formats(fmt: str | Iterable[str]) -> list[str]:
    formats = [fmt] if isinstance(fmt, str) else list(fmt)
    unknown = [name for name in formats if name not in WRITERS]
    if unknown or not formats:
        raise ExportError(f"unknown export format(s) {unknown or formats}: choose from {', '.join(EXPORT_FORMATS)}")
    return list(dict.fromkeys(formats))


def _check_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise ExportError(f"export target {target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ExportError(f"export folder {target} is not empty: remove it, or export with --force to replace it")


def _export_format(name: str, manifest: dict, tokenizer, target: Path, progress: ExportProgress | None) -> dict:
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    step = None if progress is None else (lambda done, total: progress(name, done, total))
    try:
        started = time.perf_counter()
        report = WRITERS[name](manifest, tokenizer, staging, step, final_dir=target)
        seconds = time.perf_counter() - started
        files = _listing(staging)
        _install(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    tokens = sum(report["tokens_per_source"].values())
    return {
        "dir": str(target),
        "files": files,
        "bytes": sum(files.values()),
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
        **report,
    }


def _remove_leftovers(target: Path) -> None:
    """Staging folders of killed exports; and a replaced folder whose removal was cut short."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists():
        for stale in target.parent.glob(f".{target.name}.old-*"):
            shutil.rmtree(stale, ignore_errors=True)


def _install(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def _listing(folder: Path) -> dict[str, int]:
    """Bytes of each file, by path relative to the format's folder."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
