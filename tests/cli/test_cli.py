"""The `curate` command line: init, run, status, sql (table/csv/json), JSON from every table
command, the version, the one error path and config rule, and the demo."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import typer
import yaml
from conftest import write_shard
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture
def configured(tmp_path, wiki_docs):
    write_shard(tmp_path / "data/0.parquet", {"text": wiki_docs[:4] + [wiki_docs[0], None]})
    assert _invoke("init", tmp_path / "curate.yaml").exit_code == 0
    return tmp_path / "curate.yaml"


def test_init_refuses_to_overwrite(configured):
    result = _invoke("init", configured)
    assert result.exit_code == 1 and "exists" in result.output


def test_run_then_query_in_every_format(configured, tmp_path):
    result = _invoke("run", configured, "--run-id", "cli", "--local")
    assert result.exit_code == 0, result.output
    assert "Funnel of run cli" in result.output and "exact_duplicate" in result.output and "null_text" in result.output

    query = "SELECT stage, reason, count(*) AS n FROM rejected GROUP BY ALL ORDER BY stage"
    as_json = json.loads(_invoke("sql", "--config", configured, "--format", "json", query).stdout)
    assert as_json == [
        {"stage": "exact_dedup", "reason": "exact_duplicate", "n": 1},
        {"stage": "ingest", "reason": "null_text", "n": 1},
    ]
    as_csv = list(csv.reader(io.StringIO(_invoke("sql", "--config", configured, "--format", "csv", query).stdout)))
    assert as_csv == [["stage", "reason", "n"], ["exact_dedup", "exact_duplicate", "1"], ["ingest", "null_text", "1"]]
    assert "exact_duplicate" in _invoke("sql", "--config", configured, query).stdout

    status = json.loads(_invoke("status", "--config", configured, "--format", "json").stdout)
    assert [(r["run_id"], r["status"], r["docs_in"], r["docs_out"]) for r in status] == [("cli", "completed", 6, 4)]

    # plain duckdb sees the same views
    con = duckdb.connect(str(tmp_path / "warehouse/curation.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM documents").fetchall() == [(4,)]
    assert {r[0] for r in con.execute("SELECT stage FROM stage_stats").fetchall()} >= {"ingest", "quality"}


def test_sql_is_read_only_and_errors_are_clear(configured):
    assert _invoke("run", configured, "--run-id", "ro", "--local").exit_code == 0
    result = _invoke("sql", "--config", configured, "DELETE FROM _jobs")
    assert result.exit_code == 1 and "read-only" in result.output.lower()
    result = _invoke("sql", "--config", configured, "SELECT nope FROM documents")
    assert result.exit_code == 1 and "nope" in result.output


def test_bad_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input:\n  paths: [x]\n  txt_column: body\n")
    result = _invoke("run", bad)
    assert result.exit_code == 2 and "input.txt_column: unknown key" in result.output


def test_status_without_a_warehouse(tmp_path):
    result = _invoke("status", "--warehouse", tmp_path / "none.duckdb")
    assert result.exit_code == 1 and "does not exist yet" in result.output


def test_version_is_the_installed_package_version():
    result = _invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"cpt-curate {version('cpt-curate')}\n"


# every command that reads a config, as it is invoked with the config at `{config}`
CONFIG_COMMANDS = {
    "run": ["run", "{config}", "--local"],
    "serve": ["serve", "--config", "{config}"],
    "preselect losses": ["preselect", "losses", "{config}"],
    "preselect benchmark": ["preselect", "benchmark", "{config}"],
    "preselect train": ["preselect", "train", "{config}", "--local"],
    "rewrite run": ["rewrite", "run", "{config}", "--local"],
    "sql": ["sql", "SELECT 1", "--config", "{config}"],
    "status": ["status", "--config", "{config}"],
    "preselect apply": ["preselect", "apply", "scorer", "--run-id", "r", "--config", "{config}"],
    "rewrite styles": ["rewrite", "styles", "--config", "{config}"],
    "report": ["report", "r", "--config", "{config}"],
}


@pytest.mark.parametrize("command", list(CONFIG_COMMANDS))
def test_every_command_reports_a_bad_config_the_same_way(tmp_path, command):
    bad = tmp_path / "bad.yaml"
    bad.write_text("bogus_key: 1\n")
    result = _invoke(*[str(bad) if a == "{config}" else a for a in CONFIG_COMMANDS[command]])
    assert result.exit_code == 2, result.output
    # on stderr, in red, naming the file and the key; stdout stays clean for --format json
    assert f"invalid config {bad}" in result.stderr and "bogus_key: unknown key" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", [["status"], ["sql", "SELECT count(*) FROM runs"]])
def test_a_missing_warehouse_is_one_clear_line(tmp_path, command):
    missing = tmp_path / "none.duckdb"
    result = _invoke(*command, "--warehouse", missing)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"FileNotFoundError: warehouse {missing} does not exist yet: run `curate run` first\n"
    assert not missing.exists()


def test_a_failed_run_exits_1_naming_the_failure(tmp_path):
    config = tmp_path / "curate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input": {"paths": [str(tmp_path / "nothing/*.parquet")]},
                "output": {"root": str(tmp_path / "out")},
                "warehouse": {"path": str(tmp_path / "w.duckdb")},
            }
        )
    )
    result = _invoke("run", config, "--local", "--format", "json")
    assert result.exit_code == 1 and result.stdout == ""
    # after the (closed) progress display: the action, the error's type and its message, one line
    assert result.stderr.strip() == (
        f"run failed: RunError: no input shards found for input.paths ({tmp_path}/nothing/*.parquet: no file matches this pattern)"
    )


def _commands(group, prefix: str = ""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group: typer ships its own copy of click
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_one_way_to_name_the_config_and_to_ask_for_json():
    commands = dict(_commands(typer.main.get_command(app)))
    takes_config = {}
    for name, command in commands.items():
        for param in command.params:
            if "--config" in getattr(param, "opts", []) or param.name == "config":
                # a required config is the positional CONFIG, an optional one is --config
                if param.param_type_name == "argument":
                    assert param.required and param.metavar == "CONFIG", name
                    takes_config[name] = "CONFIG"
                else:
                    assert param.opts == ["--config"] and not param.required, name
                    takes_config[name] = "--config"
    assert takes_config == {name: "--config" if "--config" in args else "CONFIG" for name, args in CONFIG_COMMANDS.items()}
    prints_json = {name for name, c in commands.items() for p in c.params if "--format" in getattr(p, "opts", [])}
    # `curate export --format` names the trainer format (hf, megatron, mds, nanotron), as trainers' users say it
    assert prints_json - {"export"} == {
        "run",
        "sql",
        "status",
        "preselect losses",
        "preselect benchmark",
        "preselect apply",
        "rewrite styles",
        "rewrite run",
        "mix run",
        "manifest verify",
        "calibrate",
    }


def test_run_prints_its_summary_as_json(configured, tmp_path):
    result = _invoke("run", configured, "--run-id", "js", "--local", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run_id"] == "js" and summary["input_errors"] == []
    assert summary["totals"] == {"docs_in": 6, "docs_out": 4, "docs_rejected": 2, "input_errors": 0}
    reasons = {row["stage"]: row["reasons"] for row in summary["funnel"] if row["reasons"]}
    assert reasons == {"ingest": {"null_text": 1}, "exact_dedup": {"exact_duplicate": 1}}
    # what the run recorded, unrounded; asked again (the old --json spelling), the same summary
    assert summary == json.loads((Path(summary["run_dir"]) / "summary.json").read_text())
    # and its report, written when it ended, its path on stderr
    report = Path(summary["run_dir"]) / "report.html"
    assert f"report: {report}" in result.stderr and "<h2>Funnel</h2>" in report.read_text()
    again = _invoke("run", configured, "--run-id", "js", "--local", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout) == summary


def test_status_json_has_iso_times(configured):
    assert _invoke("run", configured, "--run-id", "t", "--local").exit_code == 0
    (row,) = json.loads(_invoke("status", "--config", configured, "--format", "json").stdout)
    assert datetime.fromisoformat(row["finished_at"]) >= datetime.fromisoformat(row["started_at"])
    assert row["input_errors"] == 0 and row["docs_rejected"] == 2


def test_rewrite_styles_as_json():
    from curation.rewrite.styles import load_registry

    result = _invoke("rewrite", "styles", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["style"]: row for row in json.loads(result.stdout)}
    registry = load_registry()
    assert set(rows) == set(registry) and len(rows) >= 10
    assert (rows["nemotron_distill"]["chunk_tokens"], rows["nemotron_distill"]["max_output_tokens"]) == (2000, 1600)
    assert (rows["wrap_wikipedia"]["chunk_tokens"], rows["wrap_wikipedia"]["max_output_tokens"]) == (300, 512)
    assert rows["sentence_shuffle"]["kind"] == "shuffle" and rows["wrap_wikipedia"]["kind"] == "llm"
    assert all(rows[s]["hash"] == registry[s].content_hash and rows[s]["version"] == registry[s].version for s in rows)
    assert rows["wrap_wikipedia"]["paper"].startswith("arXiv:")


def test_rewrite_run_summary_as_json(configured, tmp_path):
    assert _invoke("run", configured, "--run-id", "src", "--local").exit_code == 0
    config = tmp_path / "rewrite.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "rewrite_id": "rw",
                "warehouse": str(tmp_path / "warehouse/curation.duckdb"),
                "output_root": str(tmp_path / "rw"),
                "routes": [{"styles": [{"style": "sentence_shuffle"}]}],
            }
        )
    )
    result = _invoke("rewrite", "run", config, "--local", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    con = duckdb.connect(str(tmp_path / "warehouse/curation.duckdb"), read_only=True)
    accepted = con.execute("SELECT count(*) FROM synthetic WHERE rewrite_id = 'rw'").fetchall()[0][0]
    assert summary["rewrite_id"] == "rw" and summary["documents"] == 4 and summary["accepted"] == accepted > 0
    assert summary["by_style"] == {"sentence_shuffle": {"accepted": accepted}}
    assert json.loads(con.execute("SELECT summary FROM rewrites WHERE rewrite_id = 'rw'").fetchall()[0][0]) == summary


def _training_config(tmp_path: Path, **models) -> Path:
    config = tmp_path / "preselect.yaml"
    data = {
        "documents": {"paths": [str(tmp_path / "docs/*.parquet")]},
        "models": [{"name": name, "path": path, **extra} for name, (path, extra) in models.items()],
        "engine": "transformers",
        "max_len": 64,
        "cache_dir": str(tmp_path / "loss-cache"),
    }
    config.write_text(yaml.safe_dump(data))
    return config


def test_preselect_benchmark_as_json(tmp_path):
    config = _training_config(
        tmp_path, small=("nowhere-a", {"benchmark_score": 0.3}), large=("nowhere-b", {"benchmark_score": 0.45})
    )
    result = _invoke("preselect", "benchmark", config, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"model": "small", "score": 0.3, "source": "given"},
        {"model": "large", "score": 0.45, "source": "given"},
    ]


def test_preselect_apply_as_json(configured, tmp_path, wiki_docs):
    from scorers import fasttext_scorer

    scorer = tmp_path / "scorer"
    fasttext_scorer.train(wiki_docs[:20], ["buy now cheap"] * 20, None, 0.0, 0, out_path=scorer / "model.bin")
    (scorer / "scorer_card.json").write_text(json.dumps({"scorer_id": "sc", "label": "__label__positive"}))
    assert _invoke("run", configured, "--run-id", "r", "--local").exit_code == 0
    result = _invoke(
        "preselect", "apply", scorer, "--run-id", "r", "--config", configured, "--top-share", "0.5", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    con = duckdb.connect(str(tmp_path / "warehouse/curation.duckdb"), read_only=True)
    ((docs, chars),) = con.execute("SELECT count(*), sum(n_chars) FROM documents WHERE run_id = 'r'").fetchall()
    scores = [s for (s,) in con.execute("SELECT score FROM scores WHERE run_id = 'r' AND scorer_id = 'sc'").fetchall()]
    assert report["run_id"] == "r" and report["scorer_id"] == "sc" and report["documents"] == docs == len(scores) == 4
    assert report["total_chars"] == chars and 0 < report["kept_chars"] <= chars and 0 < report["kept_docs"] < docs
    assert report["kept_docs"] == sum(s >= report["threshold"] for s in scores)
    assert Path(report["scores_path"]).is_file()


@pytest.mark.slow
def test_preselect_losses_as_json_match_the_cache_and_the_table(tmp_path, wiki_docs):
    write_shard(tmp_path / "docs/0.parquet", {"doc_id": ["a", "b", "c", "e"], "text": [d[:300] for d in wiki_docs[:3]] + ["  "]})
    config = _training_config(tmp_path, smollm2=("smollm2-135m-instruct", {}), gemma3=("gemma3-270m", {}))
    result = _invoke("preselect", "losses", config, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["documents"], report["skipped_empty"], report["cache_dir"]) == (3, 1, str(tmp_path / "loss-cache"))
    cached = dict(
        duckdb.sql(f"SELECT model, avg(bits_per_char) FROM '{tmp_path}/loss-cache/*/part-*.parquet' GROUP BY ALL").fetchall()
    )
    assert {r["model"]: r["mean_bits_per_char"] for r in report["models"]} == pytest.approx(cached)
    assert [(r["computed_now"], r["from_cache"]) for r in report["models"]] == [(3, 0), (3, 0)]
    # the table shows the same numbers, now all from the cache
    table = _invoke("preselect", "losses", config)
    rows = sorted([c.strip() for c in line.split("│")[1:-1]] for line in table.stdout.splitlines() if "@" in line and "│" in line)
    assert rows == sorted([r["model"], "0", "3", f"{r['mean_bits_per_char']:.4f}"] for r in report["models"])


@pytest.mark.slow
def test_demo_end_to_end_through_prefect(tmp_path):
    result = _invoke("demo", "--workdir", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(tmp_path / "demo/warehouse.duckdb"), read_only=True)
    removed = dict(con.execute("SELECT stage, count(*) FROM rejected GROUP BY ALL").fetchall())
    # every removing stage removed something, and the three crawls completed
    assert set(removed) == {"ingest", "exact_dedup", "near_dedup", "language", "quality", "toxicity", "score"}
    assert all(n > 0 for n in removed.values())
    reasons = {r[0] for r in con.execute("SELECT reason FROM rejected").fetchall()}
    assert {"exact_duplicate_of_curated", "near_duplicate_of_curated", "duplicate_id", "url_blocklist:domain"} <= reasons
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'completed'").fetchall() == [(3,)]
    # crawl3 allows en, es and fr: each language's clean pages kept, its four junk pages dropped
    from provision.demo_corpus import MULTILINGUAL_JUNK, MULTILINGUAL_PAGES

    per_language = con.execute(
        "SELECT language, count(*) FROM documents WHERE run_id = 'demo-crawl3' GROUP BY ALL ORDER BY language"
    ).fetchall()
    assert per_language == [(lang, MULTILINGUAL_PAGES) for lang in ("en", "es", "fr")]
    junk_dropped = con.execute("SELECT count(*) FROM rejected WHERE run_id = 'demo-crawl3'").fetchall()[0][0]
    assert junk_dropped == 3 * len(MULTILINGUAL_JUNK)
    assert "dropped_as" in result.output  # the funnel per language was printed
    # a report per run, rewrite and mixture, each path printed
    for view, column in (("runs", "run_id"), ("rewrites", "rewrite_id"), ("mixtures", "mixture_id")):
        for job_id, output_dir in con.execute(f"SELECT {column}, output_dir FROM {view}").fetchall():
            report = Path(output_dir) / "report.html"
            assert report.is_file() and f"report: {report}" in result.output, job_id
    assert con.execute("SELECT sum(pii_redactions) > 0 FROM documents").fetchall() == [(True,)]
    # the PreSelect scorer trained on crawl1 selected crawl2: scores for every scored document
    assert con.execute("SELECT scorer_id FROM scorers").fetchall() == [("demo-preselect",)]
    scored = con.execute("SELECT count(*) FROM scores WHERE run_id = 'demo-crawl2'").fetchall()[0][0]
    kept = con.execute("SELECT count(*) FROM documents WHERE run_id = 'demo-crawl2'").fetchall()[0][0]
    dropped = con.execute("SELECT count(*) FROM rejected WHERE run_id = 'demo-crawl2' AND stage = 'score'").fetchall()[0][0]
    assert scored == kept + dropped and dropped > 0
    assert "Scorer card" in result.output
    # each run's totals are what its readable input files hold and what the views show
    for run_id, inputs, docs_in, docs_out, docs_rejected in con.execute(
        "SELECT run_id, input_paths, docs_in, docs_out, docs_rejected FROM runs"
    ).fetchall():
        unreadable = {r[0] for r in con.execute("SELECT input_file FROM input_errors WHERE run_id = ?", [run_id]).fetchall()}
        readable = [f for f in json.loads(inputs) if f not in unreadable]
        assert docs_in == sum(pq.ParquetFile(f).metadata.num_rows for f in readable) > 0
        assert docs_out == con.execute("SELECT count(*) FROM documents WHERE run_id = ?", [run_id]).fetchall()[0][0]
        assert docs_rejected == con.execute("SELECT count(*) FROM rejected WHERE run_id = ?", [run_id]).fetchall()[0][0]
    # the rewrite of a crawl2 sample: records in both WRAP styles and the shuffle, with provenance,
    # gate verdicts shown
    styles = dict(con.execute("SELECT style, count(*) FROM generations GROUP BY ALL").fetchall())
    assert set(styles) == {"wrap_wikipedia", "wrap_qa", "sentence_shuffle"}
    assert con.execute(
        "SELECT count(*) FROM generations g JOIN documents d USING (doc_id) WHERE d.run_id = 'demo-crawl2' "
        "AND g.model_name = 'smollm2-135m-instruct' AND g.model_hash IS NOT NULL AND g.tokens_out > 0"
    ).fetchall() == [(styles["wrap_wikipedia"] + styles["wrap_qa"],)]
    assert con.execute("SELECT status FROM rewrites").fetchall() == [("completed",)]
    assert "Output gates" in result.output and "Records per style" in result.output
    # the mixture: three sources, the pasted MMLU questions removed, verified, exported four ways
    assert con.execute("SELECT status FROM mixtures WHERE mixture_id = 'demo-mixture'").fetchall() == [("completed",)]
    sources = {r[0] for r in con.execute("SELECT DISTINCT source FROM mixture_records").fetchall()}
    assert sources == {"curated", "synthetic", "replay"}
    removed = con.execute(
        "SELECT eval_set, CAST(split_part(record_id, '#', 2) AS BIGINT) FROM decontaminated WHERE source = 'replay' ORDER BY ALL"
    ).fetchall()
    assert removed == [("mmlu", 11), ("mmlu", 97)]
    # its lineage names the scorer that selected crawl2, the styles and models of the rewrite's
    # accepted records (only those are in `synthetic`) and the eval set
    from curation.mixture.manifest import load_manifest

    lineage = load_manifest(tmp_path / "demo/mixtures/demo-mixture")["lineage"]
    assert lineage["scorer_ids"] == ["demo-preselect"]
    assert lineage["rewrite_ids"] == ["demo-rewrite"]
    accepted = "FROM synthetic WHERE rewrite_id = 'demo-rewrite' ORDER BY 1"
    assert [m["model_name"] for m in lineage["models"]] == [
        r[0] for r in con.execute(f"SELECT DISTINCT model_name {accepted}").fetchall()
    ]
    assert [s["style"] for s in lineage["styles"]] == [r[0] for r in con.execute(f"SELECT DISTINCT style {accepted}").fetchall()]
    assert [e["name"] for e in lineage["eval_sets"]] == ["mmlu"]
    assert "curate manifest verify" in result.output and "ok" in result.output
    for fmt in ("hf", "megatron", "mds", "nanotron"):
        assert any((tmp_path / "demo/exports" / fmt).rglob("*")), fmt


def test_warehouse_waits_for_another_process_holding_the_lock(tmp_path):
    import subprocess
    import sys
    import time

    from warehouse.warehouse import Warehouse

    path = tmp_path / "w.duckdb"
    with Warehouse(path).connect():
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(2)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    columns, rows = Warehouse(path).query("SELECT count(*) FROM runs")
    holder.wait()
    assert rows == [(0,)] and time.monotonic() - started > 0.5
