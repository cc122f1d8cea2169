"""The mixture manifest: what a checkpoint was trained on, verifiable byte for byte.

Layout (JSON, `schema_version` = schemas.mixture.MANIFEST_SCHEMA_VERSION):

    schema_version, mixture_id, spec (the validated spec), spec_hash, code_version,
    tokenizer: {name, path, sha256, eos_token, eos_id, vocab_size},
    sources: {name: {kind, requested_share, realised_share, requested_tokens, tokens, records,
                     unique_records, available_tokens, epochs, decontaminated: {eval_set: records},
                     unselected_source_records}},
    shards: [{path (relative to the manifest), rows, bytes, tokens, sha256}],
    totals: {tokens, records, shards},
    lineage: {runs, rewrite_ids, scorer_ids, styles: [{style, template_version, template_hash}],
              models, eval_sets: [{name, path, sha256, ..., language}]}

Shards concatenated in manifest order, rows in file order, are the training order (`position`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.mixture import MANIFEST_SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"


class ManifestError(ValueError):
    """A manifest that does not parse, or shards that no longer match it."""


def load_manifest(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ManifestError(f"cannot read manifest {path}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise ManifestError(f"manifest {path} is not JSON: {err}") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != MANIFEST_SCHEMA_VERSION:
        raise ManifestError(f"manifest {path}: schema_version {version!r}, this version reads {MANIFEST_SCHEMA_VERSION}")
    manifest["_path"] = str(path.resolve())
    return manifest


def shard_paths(manifest: dict) -> list[Path]:
    """Absolute paths of the shards, in training order."""
    root = Path(manifest["_path"]).parent
    return [root / shard["path"] for shard in manifest["shards"]]


def iter_batches(manifest: dict, columns: list[str] | None = None, batch_size: int = 4096) -> Iterator[pa.RecordBatch]:
    """The mixture's records in training order, a batch at a time (never the whole mixture in memory)."""
    for path in shard_paths(manifest):
        if not path.is_file():
            raise ManifestError(f"shard {path} listed in the manifest is missing")
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns)


def code_version() -> str:
    """The git commit of this checkout when there is one (with `+dirty` for local edits), else the
    installed package version."""
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            return f"git:{commit}{'+dirty' if dirty else ''}"
        except (OSError, subprocess.CalledProcessError):
            pass
    try:
        return f"cpt-curate {version('cpt-curate')}"
    except PackageNotFoundError:
        return "unknown"


def build_manifest(spec, tokenizer, sources: dict, shards: list[dict], lineage: dict, code: str) -> dict:
    """No timestamp: the same spec over the same records gives the same manifest bytes (when the
    mixture was made is in the warehouse's `mixtures` view). `code`: `code_version()`."""
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "mixture_id": spec.mixture_id,
        "spec": spec.model_dump(mode="json"),
        "spec_hash": spec.spec_hash(),
        "code_version": code,
        "tokenizer": {
            "name": tokenizer.name,
            "path": str(tokenizer.path),
            "sha256": tokenizer.sha256,
            "eos_token": tokenizer.eos_token,
            "eos_id": tokenizer.eos_id,
            "vocab_size": tokenizer.vocab_size,
        },
        "sources": sources,
        "shards": shards,
        "totals": {
            "tokens": sum(s["tokens"] for s in shards),
            "records": sum(s["rows"] for s in shards),
            "shards": len(shards),
        },
        "lineage": lineage,
    }


def manifest_tokenizer(manifest: dict):
    """The manifest's tokenizer, refused if its file changed since the mixture was made."""
    from scorers.tokens import load_tokenizer

    recorded = manifest["tokenizer"]
    tokenizer = load_tokenizer(recorded["path"], append_eos=recorded["eos_token"] is not None, eos_token=recorded["eos_token"])
    if tokenizer.sha256 != recorded["sha256"]:
        raise ManifestError(
            f"tokenizer {recorded['path']} changed since the mixture was made (sha256 {tokenizer.sha256}, manifest {recorded['sha256']})"
        )
    return tokenizer


def verify_manifest(path: str | Path) -> dict:
    """Re-hash every shard and re-count its rows and tokens (re-tokenizing the text with the
    manifest's tokenizer); the first mismatch is an error naming the file."""
    import pyarrow.compute as pc

    from warehouse.files import sha256_file

    manifest = load_manifest(path)
    tokenizer = manifest_tokenizer(manifest)
    per_source: dict[str, int] = {}
    for shard, file in zip(manifest["shards"], shard_paths(manifest), strict=True):
        if not file.is_file():
            raise ManifestError(f"shard {file} listed in the manifest is missing")
        digest = sha256_file(file)
        if digest != shard["sha256"]:
            raise ManifestError(
                f"shard {file} changed since the manifest was written (sha256 {digest}, manifest {shard['sha256']})"
            )
        rows = tokens = 0
        for batch in pq.ParquetFile(file).iter_batches(columns=["text", "tokens", "source", "record_id"]):
            counted = tokenizer.count_batch(batch.column("text").to_pylist())
            recorded = batch.column("tokens").to_pylist()
            for i, (a, b) in enumerate(zip(counted, recorded, strict=True)):
                if a != b:
                    raise ManifestError(f"shard {file}: record {batch.column('record_id')[i]} has {a} tokens, the shard says {b}")
            for source, n in zip(batch.column("source").to_pylist(), counted, strict=True):
                per_source[source] = per_source.get(source, 0) + n
            rows += batch.num_rows
            tokens += int(pc.sum(batch.column("tokens")).as_py() or 0)
        if rows != shard["rows"] or tokens != shard["tokens"]:
            raise ManifestError(
                f"shard {file}: {rows} rows and {tokens} tokens, the manifest says {shard['rows']} and {shard['tokens']}"
            )
    for source, stats in manifest["sources"].items():
        if per_source.get(source, 0) != stats["tokens"]:
            raise ManifestError(
                f"source {source}: the shards hold {per_source.get(source, 0)} tokens, the manifest says {stats['tokens']}"
            )
    return {
        "manifest": manifest["_path"],
        "shards": len(manifest["shards"]),
        "records": manifest["totals"]["records"],
        "tokens": manifest["totals"]["tokens"],
    }
