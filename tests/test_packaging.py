"""The built wheel works on its own: installed into a fresh virtualenv, away from the checkout.

Every other test imports the project from the checkout (the editable install), so a module or a data
file that the wheel leaves out would go unnoticed until a user installs the package. This test builds
the wheel from the files git knows, installs it without dependencies into a new venv and runs the
installed `curate` command from a folder outside the checkout.

The dependencies are borrowed from the venv running the tests: a `.pth` file in the fresh venv lists
that venv's site-packages. Python appends the listed folder to `sys.path` without reading the `.pth`
files inside it, so the editable install's import hook (itself started by a `.pth` file there) stays
off and the checkout cannot leak in. The last assertions check exactly that.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import duckdb
import pytest
import yaml
from conftest import write_shard

from scorers.models import models_dir

ROOT = Path(__file__).resolve().parents[1]
STYLES_DIR = ROOT / "curation" / "rewrite" / "styles"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _copy_sources(dest: Path) -> Path:
    """The files a clean clone would have (tracked or new, not ignored): a build never writes into the checkout."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():  # a file deleted but not yet staged is still listed
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _build_wheel(src: Path, out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, src], cwd=src)
    (wheel,) = out.glob("cpt_curate-*.whl")
    return wheel


def _fresh_venv(venv: Path, wheel: Path) -> Path:
    """A venv holding only the wheel, with the test venv's packages visible through a `.pth` file."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], cwd=venv.parent)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=venv.parent).stdout.strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(
        CURATE_MODELS_DIR=str(models_dir()),
        PREFECT_HOME=str(tmp / "prefect-home"),
        COLUMNS="250",  # rich tables wider than the default 80 columns: style ids are not cut
    )
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory, assets):
    tmp = tmp_path_factory.mktemp("packaging")
    wheel = _build_wheel(_copy_sources(tmp / "src"), tmp / "dist")
    python = _fresh_venv(tmp / "venv", wheel)
    env = _clean_env(tmp)
    env["CURATE_ASSETS_DIR"] = str(assets)
    work = tmp / "work"
    work.mkdir()
    return python, env, work


def _bundled_style_ids() -> set[str]:
    return {yaml.safe_load(path.read_text())["id"] for path in STYLES_DIR.glob("*.yaml")}


@pytest.mark.slow
def test_installed_wheel_lists_the_bundled_rewrite_styles(installed):
    python, env, work = installed
    listed = _run([python.parent / "curate", "rewrite", "styles"], cwd=work, env=env).stdout
    expected = _bundled_style_ids()
    assert len(expected) >= 10
    assert {s for s in expected if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", listed)} == expected, listed


@pytest.mark.slow
def test_installed_wheel_runs_the_pipeline(installed, wiki_docs):
    python, env, work = installed
    docs = wiki_docs[:4] + [wiki_docs[0]]  # the repeat is dropped by exact dedup
    shard = write_shard(work / "in" / "part-0.parquet", {"id": [f"d{i}" for i in range(len(docs))], "text": docs})
    config = work / "curate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input": {"paths": [str(shard)]},
                "output": {"root": str(work / "out")},
                "warehouse": {"path": str(work / "warehouse.duckdb")},
            }
        )
    )
    _run([python.parent / "curate", "run", config, "--run-id", "pkg"], cwd=work, env=env, timeout=900)

    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT status, docs_in, docs_out FROM runs WHERE run_id = 'pkg'").fetchall() == [("completed", 5, 4)]
    kept = con.execute("SELECT doc_id, input_row, text FROM documents WHERE run_id = 'pkg' ORDER BY input_row").fetchall()
    assert [(doc_id, row) for doc_id, row, _ in kept] == [("d0", 0), ("d1", 1), ("d2", 2), ("d3", 3)]
    # normalisation may change whitespace (blank lines), never the words
    assert [text.split() for _, _, text in kept] == [doc.split() for doc in wiki_docs[:4]]


@pytest.mark.slow
def test_installed_wheel_does_not_import_the_checkout(installed):
    python, env, work = installed
    probe = (
        "import sys, curation, cli.main, curation.rewrite.styles as s;"
        "print(curation.__file__); print(s.BUNDLED_DIR);"
        "print(sorted(m for m in sys.modules if m.startswith('__editable__')))"
    )
    module, styles, hooks = _run([python, "-c", probe], cwd=work, env=env).stdout.splitlines()
    venv = python.parent.parent
    assert Path(module).is_relative_to(venv) and not Path(module).is_relative_to(ROOT), module
    assert Path(styles).is_relative_to(venv) and sorted(p.name for p in Path(styles).glob("*.yaml")) == sorted(
        p.name for p in STYLES_DIR.glob("*.yaml")
    )
    assert hooks == "[]"
