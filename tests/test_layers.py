"""The layer contract, checked over the real import graph read from the source.

schemas (contracts) <- warehouse (storage) <- scorers (text in, numbers out) <- curation (stages,
runner, rewrite) <- flows, cli, provision, benchmarks (entry points and set-up). A module may import its own
layer and the layers below it, never one above; and no two modules import each other, directly or
through others. Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = (
    ("schemas",),
    ("warehouse",),
    ("scorers",),
    ("curation",),
    ("flows", "cli", "provision", "benchmarks"),
)
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path, known: set[str]) -> set[str]:
    """Our modules that `path` imports (the longest known prefix of each imported name)."""
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in known:
                    found.add(candidate)
                    break
    found.discard(here)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    files = [p for package in RANK for p in (root / package).rglob("*.py")]
    known = {module_name(p, root) for p in files}
    return {module_name(p, root): imported_modules(p, root, known) for p in files}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, imports in sorted(graph.items()):
        for target in sorted(imports):
            if RANK[target.split(".")[0]] > RANK[module.split(".")[0]]:
                problems.append(f"{module} imports {target}, a layer above it")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_import_points_down_the_layers():
    assert layer_violations(import_graph(ROOT)) == []


def test_no_module_cycles():
    assert cycles(import_graph(ROOT)) == []


def test_the_graph_is_the_real_one():
    graph = import_graph(ROOT)
    # a few edges every reader of the code can see: the check reads real imports, lazy ones too
    assert "schemas.config" in graph["curation.runner"]
    assert "warehouse.shards" in graph["curation.ingest"]
    assert "scorers.models" in graph["curation.rewrite.runner"]
    assert graph["schemas.documents"] == set()


def _copy_sources(tmp_path: Path) -> Path:
    for package in RANK:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    return tmp_path


def test_a_planted_back_edge_is_caught(tmp_path):
    root = _copy_sources(tmp_path)
    target = root / "scorers" / "toxicity.py"
    target.write_text(target.read_text() + "\n\ndef _later():\n    from curation.runner import run_pipeline\n")
    assert layer_violations(import_graph(root)) == ["scorers.toxicity imports curation.runner, a layer above it"]


def test_a_planted_cycle_is_caught(tmp_path):
    root = _copy_sources(tmp_path)
    target = root / "warehouse" / "files.py"
    target.write_text(target.read_text() + "\nfrom warehouse import shards  # noqa\n")
    assert ["warehouse.files", "warehouse.shards"] in cycles(import_graph(root))
