"""The rewrite stage end to end over a real curated warehouse: records, provenance, resume, no
duplicates, failures kept; the endpoint client against a local HTTP server that misbehaves on
purpose (malformed bodies, empty outputs, 5xx, slow answers cannot be had from a healthy vLLM)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import make_config, write_shard

from curation.rewrite.endpoint import EndpointEngine
from curation.rewrite.engines import EngineResultError, GenerationRequest
from curation.rewrite.runner import run_rewrite
from curation.rewrite.styles import StyleError
from curation.runner import run_pipeline
from schemas.rewrite import EngineConfig, RewriteConfig
from warehouse.warehouse import Warehouse

NO_FILTERS = {"quality": {"enabled": False}, "language": {"enabled": False}, "toxicity": {"enabled": False}}


def curate_six_documents(root: Path, wiki_docs: list[str]) -> Path:
    """A warehouse with one completed curation run of six real documents."""
    write_shard(root / "in/0.parquet", {"id": [f"d{i}" for i in range(6)], "text": wiki_docs[:6]})
    run_pipeline(make_config(root, [str(root / "in/*.parquet")], **NO_FILTERS), run_id="crawl1")
    return root


@pytest.fixture()
def curated(tmp_path, wiki_docs) -> Path:
    return curate_six_documents(tmp_path, wiki_docs)


def rewrite_config(root: Path, **overrides) -> RewriteConfig:
    data = {
        "warehouse": str(root / "warehouse.duckdb"),
        "output_root": str(root / "out"),
        "routes": [{"styles": [{"style": "sentence_shuffle", "variants": 2}]}],
        "batch_size": 4,
        **overrides,
    }
    return RewriteConfig.model_validate(data)


def records(root: Path, sql: str) -> list[dict]:
    cols, rows = Warehouse(root / "warehouse.duckdb").query(sql)
    return [dict(zip(cols, r)) for r in rows]


def test_records_carry_provenance_and_are_queryable(curated):
    summary = run_rewrite(rewrite_config(curated, rewrite_id="rw1"))
    rows = records(curated, "SELECT * FROM synthetic ORDER BY record_id")
    assert summary["records"] == len(rows) == summary["work_items"] > 6
    docs = {r["doc_id"]: r["text"] for r in records(curated, "SELECT doc_id, text FROM documents")}
    for row in rows:
        source_chunk = docs[row["doc_id"]][row["chunk_start"] : row["chunk_end"]]
        assert sorted(row["text"].split()) == sorted(source_chunk.split())  # a permutation of its chunk
        assert row["style"] == "sentence_shuffle" and row["template_version"] == 1 and len(row["template_hash"]) == 16
        assert "arXiv:2309.14316" in row["template_cites"] and row["source_run_id"] == "crawl1"
        assert json.loads(row["sampling_params"]) == {"seed": row["seed"]} and row["engine"] == "none"
        assert json.loads(row["gate_verdicts"])["empty"] == "pass" and row["generated_at"] is not None
    assert {r["variant"] for r in rows} == {0, 1}
    (rewrite,) = records(curated, "SELECT status, summary FROM rewrites")
    assert rewrite["status"] == "completed" and json.loads(rewrite["summary"])["accepted"] == len(rows)


def test_rerun_and_later_rewrites_generate_only_what_is_missing(curated):
    cfg = rewrite_config(curated, rewrite_id="rw1")
    first = run_rewrite(cfg)
    parts = sorted((curated / "out/rewrites/rw1/parts").glob("*.parquet"))
    assert len(parts) == -(-first["work_items"] // 4)  # one part per batch
    again = run_rewrite(cfg)
    assert again["generated_now"] == 0 and again["already_done"] == first["work_items"]
    # a batch lost to a crash: only its records are generated again
    lost = pq.read_table(parts[1]).num_rows
    parts[1].unlink()
    resumed = run_rewrite(cfg)
    assert resumed["generated_now"] == lost and resumed["records"] == first["records"]
    # another rewrite asking for the same work (same keys) finds it in the warehouse
    other = run_rewrite(rewrite_config(curated, rewrite_id="rw2"))
    assert other["already_done"] == first["work_items"] and other["records"] == 0
    keys = [r["record_id"] for r in records(curated, "SELECT record_id FROM generations")]
    assert len(keys) == len(set(keys)) == first["work_items"]
    # more variants: only the new ones are generated
    more = run_rewrite(
        rewrite_config(curated, rewrite_id="rw3", routes=[{"styles": [{"style": "sentence_shuffle", "variants": 3}]}])
    )
    assert more["generated_now"] == first["work_items"] // 2


def test_a_source_selection_and_routes_pick_documents(curated):
    cfg = rewrite_config(
        curated,
        source={"where": "doc_id IN ('d0', 'd1', 'd2')", "limit": 2},
        routes=[{"name": "only-es", "when": {"languages": ["es"]}, "styles": [{"style": "sentence_shuffle"}]}],
    )
    summary = run_rewrite(cfg)
    assert summary["documents"] == 2 and summary["unrouted_documents"] == 2 and summary["records"] == 0


def test_an_unknown_style_fails_before_any_work_and_is_recorded(curated):
    with pytest.raises(StyleError, match="routes\\[0\\] names unknown style 'wikipedia'"):
        run_rewrite(rewrite_config(curated, rewrite_id="bad", routes=[{"styles": [{"style": "wikipedia"}]}]))
    assert records(curated, "SELECT status FROM rewrites WHERE rewrite_id = 'bad'") == []  # failed before it started


def test_a_style_that_cannot_fit_the_context_is_a_clear_error(curated):
    cfg = rewrite_config(
        curated, rewrite_id="long", routes=[{"styles": [{"style": "nemotron_distill"}]}], engine={"max_model_len": 1024}
    )
    with pytest.raises(
        StyleError, match=r"nemotron_distill: its input \(chunk_tokens 2000, prompt \d+ tokens included\).*needs 3600 tokens"
    ):
        run_rewrite(cfg)
    (row,) = records(curated, "SELECT status, error FROM rewrites WHERE rewrite_id = 'long'")
    assert row["status"] == "failed" and "max_model_len" in row["error"]


# ---------------------------------------------------------------- the endpoint client


class Misbehaving(BaseHTTPRequestHandler):
    """Answers according to the first word of the user message."""

    calls: dict[str, int] = {}
    auth: list[str] = []
    paths: list[str] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Misbehaving.auth.append(self.headers.get("Authorization", ""))
        Misbehaving.paths.append(self.path)
        prompt = body["messages"][-1]["content"]
        kind = prompt.split()[0]
        Misbehaving.calls[kind] = Misbehaving.calls.get(kind, 0) + 1
        if kind == "malformed":
            return self._send(200, b"{not json")
        if kind == "nochoices":
            return self._send(200, json.dumps({"id": "x"}).encode())
        if kind == "empty":
            return self._reply(None)
        if kind == "flaky" and Misbehaving.calls[kind] < 3:
            return self._send(503, b"overloaded")
        if kind == "slow":
            time.sleep(1.0)
        if kind == "bad":
            return self._send(400, b"bad request")
        return self._reply(f"echo of {prompt[:200]} with max_tokens {body['max_tokens']} seed {body['seed']}")

    def _reply(self, content):
        payload = {
            "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7},
        }
        self._send(200, json.dumps(payload).encode())

    def _send(self, status, data: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client gave up on a slow answer: that is the point of "slow"
            self.wfile.write(data)


@pytest.fixture()
def server():
    Misbehaving.calls, Misbehaving.auth, Misbehaving.paths = {}, [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def request(text: str, key: str | None = None) -> GenerationRequest:
    return GenerationRequest(
        key=key or text,
        messages=[{"role": "user", "content": text}],
        max_tokens=64,
        temperature=0.5,
        top_p=0.9,
        repetition_penalty=1.0,
        seed=7,
    )


def test_endpoint_client_handles_every_kind_of_bad_answer(server, monkeypatch):
    monkeypatch.setenv("TEST_ENDPOINT_KEY", "sk-secret-123")
    cfg = EngineConfig(
        kind="openai",
        base_url=server + "/",
        served_model="m",
        api_key_env="TEST_ENDPOINT_KEY",
        concurrency=4,
        timeout_s=0.5,
        max_retries=2,
        backoff_s=0.0,
    )
    engine = EndpointEngine(cfg)
    results = {
        r.key: r
        for r in engine.generate([request(k) for k in ("good", "malformed", "nochoices", "empty", "flaky", "slow", "bad")])
    }
    engine.close()
    assert results["good"].text.startswith("echo of good") and "seed 7" in results["good"].text
    assert results["good"].tokens_in == 11 and results["good"].tokens_out == 7 and results["good"].finish_reason == "stop"
    assert results["malformed"].error == "malformed_response" and "after 3 attempts" in results["malformed"].detail
    assert results["nochoices"].error == "malformed_response"
    assert results["empty"].text == "" and results["empty"].error is None  # for the gates to reject
    assert results["flaky"].text.startswith("echo of flaky") and Misbehaving.calls["flaky"] == 3
    assert results["slow"].error == "timeout"
    assert results["bad"].error == "engine_error" and Misbehaving.calls["bad"] == 1  # a 400 is not retried
    assert set(Misbehaving.auth) == {"Bearer sk-secret-123"}
    assert engine.name == f"openai:{server}"


def test_an_unset_api_key_is_a_clear_error(server, monkeypatch):
    from curation.rewrite.engines import EngineLoadError

    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(EngineLoadError, match="NO_SUCH_KEY"):
        EndpointEngine(EngineConfig(kind="openai", base_url=server, api_key_env="NO_SUCH_KEY"))


def test_failed_work_is_kept_then_retried_by_the_next_run(curated, server, monkeypatch):
    monkeypatch.setenv("TEST_ENDPOINT_KEY", "sk-secret-123")
    from scorers.models import model_path

    engine = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "served_model": "smol",
        "tokenizer": str(model_path("smollm2-135m-instruct")),
        "api_key_env": "TEST_ENDPOINT_KEY",
        "max_retries": 1,
        "backoff_s": 0.0,
        "timeout_s": 2.0,
    }
    routes = [{"styles": [{"style": "wrap_wikipedia"}]}]
    cfg = rewrite_config(curated, rewrite_id="ep", routes=routes, engine=engine, source={"limit": 2})
    down = run_rewrite(cfg)  # nothing listens on port 9
    assert down["records"] == 0 and down["failures"] == {"engine_error": down["work_items"]} and down["work_items"] > 0
    failed = records(curated, "SELECT * FROM rewrite_failures")
    assert len(failed) == down["work_items"] and "connection failed" in failed[0]["detail"]

    # the server is back (here: at another address; the work keys name the model, not the URL)
    up = run_rewrite(cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"base_url": server})}))
    assert up["generated_now"] == up["records"] == down["work_items"] and up["failures"] == {}
    assert records(curated, "SELECT * FROM rewrite_failures") == []
    rows = records(curated, "SELECT * FROM generations")
    assert {r["engine"] for r in rows} == {f"openai:{server}"} and {r["model_name"] for r in rows} == {"smol"}
    assert all(r["model_hash"] is None for r in rows)
    # the echo server's outputs copy the prompt, template included: the gates reject them
    assert {r["reject_reason"] for r in rows} <= {
        "prompt_echo",
        "low_overlap",
        "near_copy",
        "length_ratio",
        "near_duplicate",
        "repetition",
    }
    # the key is never written anywhere
    for path in (curated / "out").rglob("*"):
        if path.is_file():
            assert b"sk-secret-123" not in path.read_bytes()
    assert b"sk-secret-123" not in (curated / "warehouse.duckdb").read_bytes()


# ---------------------------------------------------------------- flow, CLI, unusable models


def _write_yaml(root: Path, **overrides) -> Path:
    import yaml

    path = root / "rewrite.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "warehouse": "warehouse.duckdb",
                "output_root": "out",
                "routes": [{"styles": [{"style": "sentence_shuffle"}]}],
                **overrides,
            }
        )
    )
    return path


def test_the_prefect_flow_runs_and_resumes(curated):
    from prefect.testing.utilities import prefect_test_harness

    from flows.rewrite import rewrite_flow

    config = _write_yaml(curated, rewrite_id="flowed")
    with prefect_test_harness(server_startup_timeout=60):
        first = rewrite_flow(str(config))
        again = rewrite_flow(str(config))
    assert first["records"] == first["work_items"] > 0
    assert again["generated_now"] == 0 and again["already_done"] == first["work_items"]
    assert records(curated, "SELECT status FROM rewrites") == [{"status": "completed"}]


def test_cli_rewrite_commands(curated):
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["rewrite", "init", str(curated / "new.yaml")])
    assert result.exit_code == 0 and "routes:" in (curated / "new.yaml").read_text()
    result = runner.invoke(app, ["rewrite", "styles"])
    assert result.exit_code == 0 and "wrap_wikipedia" in result.output and "2000/1600" in result.output
    result = runner.invoke(app, ["rewrite", "run", str(_write_yaml(curated)), "--local"])
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output and "Records per style" in result.output
    bad = _write_yaml(curated, routes=[{"styles": [{"style": "sentence_shuffle", "variants": 0}]}])
    result = runner.invoke(app, ["rewrite", "run", str(bad), "--local"])
    assert result.exit_code == 2 and "routes.0.styles.0.variants" in result.output


def test_a_model_that_is_not_there_is_a_clear_error(curated):
    from scorers.models import ModelLoadError

    cfg = rewrite_config(
        curated,
        rewrite_id="nomodel",
        routes=[{"styles": [{"style": "wrap_qa"}]}],
        engine={"model": str(curated / "no-such-model")},
    )
    with pytest.raises(ModelLoadError, match="no-such-model does not exist"):
        run_rewrite(cfg)
    assert records(curated, "SELECT status FROM rewrites WHERE rewrite_id = 'nomodel'") == [{"status": "failed"}]


# ---------------------------------------------------------------- engine faults and secrets


def endpoint_config(base_url: str) -> dict:
    from scorers.models import model_path

    return {
        "kind": "openai",
        "base_url": base_url,
        "served_model": "smol",
        "max_retries": 0,
        "tokenizer": str(model_path("smollm2-135m-instruct")),
    }


class LosesResults:
    """A real endpoint client whose batches come back short or with results for other requests:
    an engine fault a healthy server cannot be made to show."""

    def __init__(self, inner: EndpointEngine, fault: str):
        self.inner, self.fault = inner, fault
        self.name, self.model_name, self.model_hash = inner.name, inner.model_name, inner.model_hash
        self.lost: list[str] = []

    def generate(self, requests):
        results = self.inner.generate(requests)
        self.lost.append(results[0].key)
        if self.fault == "drop":
            return results[1:]
        return [dataclasses.replace(results[0], key="not-asked-for"), *results[1:]]

    def close(self):
        self.inner.close()


def test_a_result_the_engine_did_not_return_is_a_failure_never_a_substitute(curated, server):
    cfg = rewrite_config(
        curated,
        rewrite_id="short",
        routes=[{"styles": [{"style": "wrap_wikipedia"}]}],
        engine=endpoint_config(server),
        source={"limit": 3},
    )
    engine = LosesResults(EndpointEngine(cfg.engine), "drop")
    summary = run_rewrite(cfg, engine=engine)
    engine.close()
    assert summary["failures"] == {"missing_result": len(engine.lost)} and len(engine.lost) >= 2
    assert summary["records"] == summary["work_items"] - len(engine.lost)
    failed = records(curated, "SELECT record_id, reason FROM rewrite_failures ORDER BY record_id")
    assert failed == [{"record_id": k, "reason": "missing_result"} for k in sorted(engine.lost)]
    rows = records(curated, "SELECT record_id, raw_output FROM generations")
    assert not set(engine.lost) & {r["record_id"] for r in rows}
    assert all(r["raw_output"].startswith("echo of ") for r in rows)  # every record is the server's answer

    # the next run asks the engine for exactly the lost work
    healthy = EndpointEngine(cfg.engine)
    again = run_rewrite(cfg, engine=healthy)
    healthy.close()
    assert again["generated_now"] == len(engine.lost) and again["failures"] == {}
    assert again["records"] == again["work_items"]


def test_a_result_for_a_request_not_made_is_an_error(curated, server):
    cfg = rewrite_config(
        curated,
        rewrite_id="wrongkey",
        routes=[{"styles": [{"style": "wrap_wikipedia"}]}],
        engine=endpoint_config(server),
        source={"limit": 1},
    )
    engine = LosesResults(EndpointEngine(cfg.engine), "rename")
    with pytest.raises(EngineResultError, match="not-asked-for"):
        run_rewrite(cfg, engine=engine)
    engine.close()
    assert not list((curated / "out/rewrites/wrongkey/parts").glob("*.parquet"))
    (row,) = records(curated, "SELECT status, error FROM rewrites")
    assert row["status"] == "failed" and "not-asked-for" in row["error"]


SECRETS = (b"s3cretpass", b"t0psecret")


def test_credentials_in_the_engine_url_are_used_but_never_stored(curated, server):
    port = server.split(":")[2].split("/")[0]
    secret_url = f"http://user:s3cretpass@127.0.0.1:{port}/v1?token=t0psecret"
    cfg = rewrite_config(
        curated,
        rewrite_id="secret",
        routes=[{"styles": [{"style": "wrap_wikipedia"}]}],
        engine=endpoint_config(secret_url),
        source={"limit": 2},
    )
    summary = run_rewrite(cfg)
    assert summary["records"] == summary["work_items"] > 0
    for path in curated.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in SECRETS if s in data], path
    for table, column in records_of_text_columns(curated):
        values = records(curated, f'SELECT DISTINCT CAST("{column}" AS VARCHAR) AS v FROM "{table}"')
        assert not [v for v in values if v["v"] and any(s.decode() in v["v"] for s in SECRETS)], (table, column)
    (row,) = records(curated, "SELECT config FROM rewrites")
    assert json.loads(row["config"])["engine"]["base_url"] == f"http://127.0.0.1:{port}/v1"
    assert {r["engine"] for r in records(curated, "SELECT engine FROM generations")} == {f"openai:http://127.0.0.1:{port}/v1"}
    # the server was reached with the credentials: Basic auth, and the query kept on the request path
    assert set(Misbehaving.paths) == {"/v1/chat/completions?token=t0psecret"}
    assert set(Misbehaving.auth) == {"Basic " + base64.b64encode(b"user:s3cretpass").decode()}


def records_of_text_columns(root: Path) -> list[tuple[str, str]]:
    rows = records(root, "SELECT table_name, column_name FROM information_schema.columns WHERE data_type = 'VARCHAR'")
    assert len(rows) > 20  # every table and view of the warehouse, not an empty schema
    return [(r["table_name"], r["column_name"]) for r in rows]
