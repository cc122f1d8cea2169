"""Real generation: vLLM's offline engine on CPU with the bundled SmolLM2, a kill in the middle of
a run, and a real vLLM OpenAI-compatible server started on 127.0.0.1 and killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import make_config, write_shard

from curation.rewrite.engines import VLLMEngine
from curation.rewrite.runner import run_rewrite
from curation.runner import run_pipeline
from schemas.config import load_rewrite_config
from schemas.rewrite import GENERATION
from scorers.losses import VLLM_CPU_ENV, weights_fingerprint
from scorers.models import model_path
from warehouse.warehouse import Warehouse

pytestmark = pytest.mark.slow

NO_FILTERS = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}
MODEL = "smollm2-135m-instruct"


def curated_warehouse(root: Path, docs: list[str]) -> Path:
    write_shard(root / "in/0.parquet", {"id": [f"d{i}" for i in range(len(docs))], "text": docs})
    run_pipeline(make_config(root, [str(root / "in/*.parquet")], **NO_FILTERS), run_id="crawl1")
    return root / "warehouse.duckdb"


def write_config(root: Path, **overrides) -> Path:
    data = {
        "rewrite_id": "rw",
        "warehouse": str(root / "warehouse.duckdb"),
        "output_root": str(root / "out"),
        "source": {"limit": 3},
        "routes": [{"styles": [{"style": "wrap_wikipedia"}, {"style": "wrap_qa"}]}],
        "sampling": {"temperature": 0.2, "seed": 3},
        "batch_size": 4,
        **overrides,
    }
    path = root / "rewrite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def rows(warehouse: Path, sql: str) -> list[dict]:
    cols, result = Warehouse(warehouse).query(sql)
    return [dict(zip(cols, r)) for r in result]


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_real_generation_resumes_after_a_kill_to_the_same_records(tmp_path, wiki_docs):
    docs = wiki_docs[10:14]
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    curated_warehouse(killed_root, docs)
    curated_warehouse(clean_root, docs)
    config = write_config(killed_root)

    # a run killed (SIGKILL, no clean-up) in the middle: once its first batch is on disk
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "rewrite", "run", str(config), "--local"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    parts = killed_root / "out/rewrites/rw/parts"
    try:
        wait_for(lambda: any(parts.glob("*.parquet")) or proc.poll() is not None, 600, "the first batch")
        alive_when_killed = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert alive_when_killed and proc.returncode == -signal.SIGKILL, f"the run was not killed mid-run (exit {proc.returncode})"
    written_before_kill = {r["record_id"]: r for p in parts.glob("*.parquet") for r in pq.read_table(p).to_pylist()}

    cfg = load_rewrite_config(config)
    engine = VLLMEngine(model_path(MODEL), cfg.engine)
    resumed = run_rewrite(cfg, engine=engine)
    clean = run_rewrite(load_rewrite_config(write_config(clean_root)), engine=engine)
    engine.close()

    assert 0 < len(written_before_kill) < clean["work_items"]
    assert resumed["already_done"] == len(written_before_kill)
    assert resumed["generated_now"] == clean["work_items"] - len(written_before_kill)
    assert resumed["records"] == clean["records"] == clean["work_items"] > 2
    killed_rows = rows(killed_root / "warehouse.duckdb", "SELECT * FROM generations ORDER BY record_id")
    clean_rows = rows(clean_root / "warehouse.duckdb", "SELECT * FROM generations ORDER BY record_id")
    # What the killed run wrote is kept as written, texts included, never generated again.
    for row in killed_rows:
        if row["record_id"] in written_before_kill:
            before = written_before_kill[row["record_id"]]
            assert {k: row[k] for k in ("text", "raw_output", "seed", "sampling_params", "generated_at")} == {
                k: before[k] for k in ("text", "raw_output", "seed", "sampling_params", "generated_at")
            }
    # Every record has the provenance the uninterrupted run gives it: same work, prompts, seeds,
    # sampling and model. Texts generated after the resume are compared by key only: vLLM on CPU
    # is not bit-reproducible across engine histories (cached prefixes, batch scheduling), so a
    # seeded sample can drift after a few hundred tokens.
    provenance = set(GENERATION.names) - {
        "text",
        "raw_output",
        "accepted",
        "reject_reason",
        "gate_verdicts",
        "tokens_out",
        "finish_reason",
        "generated_at",
        "batch_seconds",
    }
    assert set(clean_rows[0]) >= provenance
    assert [{k: r[k] for k in provenance} for r in killed_rows] == [{k: r[k] for k in provenance} for r in clean_rows]
    assert len({r["record_id"] for r in killed_rows}) == len(killed_rows)

    fingerprint = weights_fingerprint(model_path(MODEL))
    for row in clean_rows:
        assert row["engine"] == "vllm" and row["model_name"] == MODEL and row["model_hash"] == fingerprint
        params = json.loads(row["sampling_params"])
        assert params["temperature"] == 0.2 and params["seed"] == row["seed"] and params["max_tokens"] > 16
        assert row["tokens_in"] > row["tokens_out"] / 10 and 0 < row["tokens_out"] <= params["max_tokens"]
        assert row["finish_reason"] in {"stop", "length"} and row["raw_output"]
        assert set(json.loads(row["gate_verdicts"])) >= {"empty", "refusal", "truncated", "near_copy", "wrong_language"}
        assert (row["reject_reason"] is None) == row["accepted"]
        assert row["finish_reason"] != "length" or row["reject_reason"] is not None
    styles = {r["style"] for r in rows(clean_root / "warehouse.duckdb", "SELECT DISTINCT style FROM generations")}
    assert styles == {"wrap_wikipedia", "wrap_qa"}
    counts = rows(
        clean_root / "warehouse.duckdb",
        "SELECT (SELECT count(*) FROM synthetic) AS a, (SELECT count(*) FROM synthetic_rejected) AS r",
    )
    assert counts[0]["a"] + counts[0]["r"] == len(clean_rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, **VLLM_CPU_ENV, "VLLM_LOGGING_LEVEL": "WARNING"}
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the server runs its engine in its own process
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_path(MODEL)),
        "--served-model-name",
        "smol",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "2048",
        "--enforce-eager",
        "--no-enable-chunked-prefill",
    ]
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_endpoint_client_against_a_real_vllm_server_killed_mid_run(tmp_path, wiki_docs):
    warehouse = curated_warehouse(tmp_path, wiki_docs[20:24])
    port = free_port()
    server = start_server(port, tmp_path / "server.log")
    try:
        wait_for(lambda: healthy(port) or server.poll() is not None, 300, "the vLLM server")
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        engine = {
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "served_model": "smol",
            "tokenizer": str(model_path(MODEL)),
            "concurrency": 4,
            "timeout_s": 120,
            "max_retries": 1,
            "backoff_s": 0.2,
        }
        first = run_rewrite(
            load_rewrite_config(
                write_config(tmp_path, rewrite_id="ep1", engine=engine, routes=[{"styles": [{"style": "wrap_wikipedia"}]}])
            )
        )
        assert first["records"] == first["work_items"] > 0 and first["failures"] == {}
        served = rows(warehouse, "SELECT * FROM generations WHERE rewrite_id = 'ep1'")
        assert {r["engine"] for r in served} == {f"openai:http://127.0.0.1:{port}/v1"}
        assert all(r["tokens_in"] > 0 and r["tokens_out"] > 0 and r["finish_reason"] in {"stop", "length"} for r in served)

        # a server slower than the client's timeout: timeouts are recorded, nothing is written
        slow = run_rewrite(
            load_rewrite_config(
                write_config(
                    tmp_path,
                    rewrite_id="ep-timeout",
                    engine={**engine, "timeout_s": 0.05, "max_retries": 0},
                    routes=[{"styles": [{"style": "wrap_hard"}]}],
                    source={"limit": 1},
                )
            )
        )
        assert slow["records"] == 0 and slow["failures"] == {"timeout": slow["work_items"]} and slow["work_items"] > 0

        # the server dies while a run is under way
        config = write_config(
            tmp_path,
            rewrite_id="ep2",
            engine={**engine, "concurrency": 1},
            batch_size=1,
            routes=[{"styles": [{"style": "wrap_qa"}, {"style": "wrap_easy"}]}],
        )
        outcome: dict = {}
        worker = threading.Thread(target=lambda: outcome.update(summary=run_rewrite(load_rewrite_config(config))))
        worker.start()
        wait_for(
            lambda: any((tmp_path / "out/rewrites/ep2/parts").glob("*.parquet")) or not worker.is_alive(), 600, "a first part"
        )
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        worker.join(600)
        summary = outcome["summary"]
        assert 0 < summary["records"] < summary["work_items"]
        assert sum(summary["failures"].values()) == summary["work_items"] - summary["records"]
        assert set(summary["failures"]) <= {"engine_error", "timeout"}

        # a rerun while the server is still down: what was generated is not asked for again
        again = run_rewrite(load_rewrite_config(config))
        assert (
            again["generated_now"] == 0 and again["already_done"] == summary["records"] and again["records"] == summary["records"]
        )
        failures = rows(warehouse, "SELECT * FROM rewrite_failures WHERE rewrite_id = 'ep2'")
        assert len(failures) == summary["work_items"] - summary["records"]
        keys = [r["record_id"] for r in rows(warehouse, "SELECT record_id FROM generations")]
        assert len(keys) == len(set(keys))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_a_model_folder_vllm_cannot_load_is_a_clear_error(tmp_path, wiki_docs):
    import shutil

    from curation.rewrite.engines import EngineLoadError

    warehouse = curated_warehouse(tmp_path, wiki_docs[:2])
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(model_path(MODEL) / name, broken / name)  # everything but the weights
    config = write_config(tmp_path, rewrite_id="broken", engine={"model": str(broken)})
    with pytest.raises(EngineLoadError, match="cannot load model .*broken-model with vLLM"):
        run_rewrite(load_rewrite_config(config))
    (row,) = rows(warehouse, "SELECT status, error FROM rewrites")
    assert row["status"] == "failed" and "broken-model" in row["error"]
    assert rows(warehouse, "SELECT count(*) AS n FROM generations") == [{"n": 0}]
