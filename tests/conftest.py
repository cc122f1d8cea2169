from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

# Each test session gets its own Prefect home: the temporary server's SQLite file can lock.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from provision.assets import fetch_assets  # noqa: E402
from schemas.config import config_from_dict  # noqa: E402
from schemas.scoring import FastTextParams  # noqa: E402
from scorers import fasttext_scorer  # noqa: E402
from scorers.assets import assets_dir  # noqa: E402


@pytest.fixture(scope="session")
def assets() -> Path:
    return fetch_assets(assets_dir())


@pytest.fixture(scope="session")
def wiki_docs(assets) -> list[str]:
    """Real multi-paragraph English documents that pass the heuristic filters: Wikipedia leads of
    one topic, five at a time."""
    data = json.loads((assets / "wiki" / "summaries_en-us.json").read_text())
    by_topic: dict[str, list[str]] = {}
    for entry in data.values():
        by_topic.setdefault(entry.get("topic") or "misc", []).append(entry["extract"])
    docs = []
    for extracts in by_topic.values():
        for i in range(0, len(extracts) - 4, 5):
            docs.append("\n\n".join(extracts[i : i + 5]))
    return docs


@pytest.fixture(scope="session")
def spanish_docs(assets) -> list[str]:
    data = json.loads((assets / "wiki" / "summaries_es-es.json").read_text())
    extracts = [e["extract"] for e in data.values()]
    return ["\n\n".join(extracts[i : i + 5]) for i in range(0, 100, 5)]


@pytest.fixture(scope="session")
def messy_docs(assets) -> list[str]:
    """Messy real text (SMS, Reddit, lyrics from nlp-corpus), 25 sentences to a document."""
    docs = []
    for index in range(3):
        sentences = json.loads((assets / "nlp-corpus" / f"doc-{index}.json").read_text())
        docs += [" ".join(sentences[i : i + 25]) for i in range(0, len(sentences), 25)]
    return docs


def write_shard(path: Path, columns: dict[str, list], schema: pa.Schema | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path)
    return path


def make_config(tmp_path: Path, paths: list[str], **sections):
    data = {
        "input": {"paths": paths},
        "output": {"root": str(tmp_path / "out")},
        "warehouse": {"path": str(tmp_path / "warehouse.duckdb")},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return config_from_dict(data)


def rejected_rows(summary: dict) -> list[dict]:
    from warehouse.warehouse import Warehouse

    cols, rows = Warehouse(summary["warehouse"]).query(
        f"SELECT * FROM rejected WHERE run_id = '{summary['run_id']}' ORDER BY input_file, input_row"
    )
    return [dict(zip(cols, r)) for r in rows]


def curated_rows(summary: dict) -> list[dict]:
    from warehouse.warehouse import Warehouse

    cols, rows = Warehouse(summary["warehouse"]).query(
        f"SELECT * FROM documents WHERE run_id = '{summary['run_id']}' ORDER BY input_file, input_row"
    )
    return [dict(zip(cols, r)) for r in rows]


# what legitimately differs between two runs of the same work in two folders: timings, and where
# the run and its warehouse live (which the config, and so its fingerprint, names)
_VOLATILE = {
    "seconds",
    "created_at",
    "run_dir",
    "documents_dir",
    "warehouse",
    "generated_at",
    "batch_seconds",
    "config",
    "config_fingerprint",
}


def _stable_json(value):
    if isinstance(value, dict):
        return {k: _stable_json(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable_json(v) for v in value]
    return value


def assert_same_run_outputs(dir_a: Path, dir_b: Path, reports: bool = True) -> None:
    """Two run folders hold the same files: Parquet byte for byte, JSON equal but for timings, a
    report in each (`reports=False`: the report left out, for a run made without one, as
    `run_pipeline` makes them; a flow run writes one)."""

    def files(root: Path) -> list[Path]:
        found = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
        return found if reports else [p for p in found if p.name != "report.html"]

    files_a, files_b = files(dir_a), files(dir_b)
    assert files_a == files_b
    assert any(f.suffix == ".parquet" for f in files_a)
    for rel in files_a:
        a, b = (dir_a / rel), (dir_b / rel)
        if rel.name == "report.html":
            # a page of the run's times, timings and folders (what the JSON's volatile keys hold):
            # it is drawn from the warehouse, which warehouse_views compares
            assert "<h2>Funnel</h2>" in a.read_text() and "<h2>Funnel</h2>" in b.read_text(), rel
        elif rel.suffix == ".json":
            assert _stable_json(json.loads(a.read_text())) == _stable_json(json.loads(b.read_text())), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel


def warehouse_views(warehouse: Path, run_id: str) -> dict:
    """What the warehouse shows of one run, minus timings and its folder."""
    from warehouse.warehouse import Warehouse

    wh = Warehouse(warehouse)
    views = {}
    for view in ("documents", "rejected", "minhash_index", "input_errors"):
        cols, rows = wh.query(f"SELECT * FROM {view} WHERE run_id = '{run_id}' ORDER BY ALL")
        views[view] = (cols, rows)
    cols, rows = wh.query(f"SELECT * EXCLUDE (seconds) FROM stage_stats WHERE run_id = '{run_id}' ORDER BY ALL")
    views["stage_stats"] = (cols, rows)
    cols, rows = wh.query(
        f"SELECT run_id, status, input_paths, docs_in, docs_out, docs_rejected, input_errors, error FROM runs WHERE run_id = '{run_id}'"
    )
    views["runs"] = (cols, rows)
    return views


# ---------------------------------------------------------------- a real PreSelect scorer and quality classifier

SMALL_FASTTEXT = FastTextParams(epoch=20, lr=0.5, bucket=50_000)


def junk_text(i: int) -> str:
    import random

    words = "click here buy now free offer best price deal shop online today cheap sale win prize hot new top".split()
    rng = random.Random(i)
    return " ".join(rng.choice(words) for _ in range(60))


@pytest.fixture(scope="module")
def scorer_dir(tmp_path_factory, wiki_docs):
    """A real fastText scorer (wiki text against junk) in the folder layout `curate preselect train` writes."""
    out = tmp_path_factory.mktemp("scorer")
    fasttext_scorer.train(
        wiki_docs[100:220], [junk_text(i) for i in range(120)], SMALL_FASTTEXT, 0.1, 0, out_path=out / "model.bin"
    )
    (out / "scorer_card.json").write_text(json.dumps({"scorer_id": "test", "label": fasttext_scorer.POSITIVE}))
    return out


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, wiki_docs):
    """A real quality classifier that looks for something else than that scorer (science topics)."""
    out = tmp_path_factory.mktemp("clf") / "topic.bin"
    science = [d for d in wiki_docs[:300] if "science" in d.lower()][:40]
    other = [d for d in wiki_docs[:300] if "science" not in d.lower()][:40]
    fasttext_scorer.train(science, other, SMALL_FASTTEXT, 0.0, 0, out_path=out)
    return out


NO_FILTERS = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}


def artifacts_of(state) -> dict:
    """The artifacts a flow run created, by key, read back from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        return {a.key: a for a in client.read_artifacts(flow_run_filter=flow_run)}
