"""The DuckDB warehouse: one catalogue of jobs and views over their Parquet outputs.

Data stays in Parquet under the output root; the database holds small tables (the jobs, stage
stats, input errors, the list of each job's files) and views over the files by absolute path, so
plain `duckdb <file>` sees the same thing `curate sql` does.

A job is a curation run, a rewrite or a mixture. All kinds live one life in one table, `_jobs`, keyed by
(kind, id): started, then completed or failed. Only completed jobs' files are in the views, so a
job in progress or a failed one never leaks half its output into `documents` or `generations`,
and a completed job stays completed, its files visible, until a replacement completes. Ids are
unique within a kind only, so every lookup names the kind. What differs by kind is data, not
life: a job's summary is JSON (a run's totals, a rewrite's counts, a mixture's manifest path and
totals), a run also records stage stats and unreadable inputs, and the `runs`, `rewrites` and
`mixtures` views give each kind the columns users query.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.documents import (
    CURATED_DOCUMENT,
    INPUT_ERROR,
    INPUT_FILE,
    MINHASH_BANDS,
    REJECTED_DOCUMENT,
    STAGE_STATS,
)
from schemas.mixture import DECONTAMINATED, MIXTURE_RECORD
from schemas.rewrite import GENERATION, REWRITE_FAILURE
from schemas.scoring import SCORES
from warehouse.secrets import without_secrets

# view name -> (kind of job file it reads, schema of those files)
FILE_VIEWS = {
    "documents": ("documents", CURATED_DOCUMENT),
    "rejected": ("rejected", REJECTED_DOCUMENT),
    "minhash_index": ("minhash_index", MINHASH_BANDS),
    "scores": ("scores", SCORES),
    "generations": ("generations", GENERATION),
    "rewrite_failures": ("rewrite_failures", REWRITE_FAILURE),
    "mixture_records": ("mixture_records", MIXTURE_RECORD),
    "decontaminated": ("decontaminated", DECONTAMINATED),
}

# views over other views: what most queries of synthetic data want
DERIVED_VIEWS = {
    "synthetic": "SELECT * FROM generations WHERE accepted",
    "synthetic_rejected": "SELECT * FROM generations WHERE NOT accepted",
}

# Every file belongs to a job of one kind: a curation run or a rewrite. A rewrite named like a run
# must never hide, replace or delete that run's files, so files are listed under (kind, id).
RUN, REWRITE, MIXTURE = "run", "rewrite", "mixture"
JOB_KINDS = (RUN, REWRITE, MIXTURE)
JOB_KIND_OF_FILES = {
    "documents": RUN,
    "rejected": RUN,
    "minhash_index": RUN,
    "scores": RUN,
    "generations": REWRITE,
    "rewrite_failures": REWRITE,
    "mixture_records": MIXTURE,
    "decontaminated": MIXTURE,
}

# a run's summary in the catalogue: its totals, which the `runs` view shows as columns
RUN_TOTALS = ("docs_in", "docs_out", "docs_rejected", "input_errors")
_RUN_TOTAL_COLUMNS = ", ".join(f"CAST(json_extract_string(summary, '$.{t}') AS BIGINT) AS {t}" for t in RUN_TOTALS)

_JOBS_DDL = [
    """CREATE TABLE IF NOT EXISTS _jobs (
        job_kind VARCHAR NOT NULL, job_id VARCHAR NOT NULL, status VARCHAR, started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ, output_dir VARCHAR, input_paths VARCHAR, config VARCHAR, summary VARCHAR,
        error VARCHAR, PRIMARY KEY (job_kind, job_id))""",
    "CREATE TABLE IF NOT EXISTS _job_files (job_kind VARCHAR, job_id VARCHAR, kind VARCHAR, path VARCHAR)",
]

_DDL = [
    *_JOBS_DDL,
    f"""CREATE OR REPLACE VIEW runs AS SELECT job_id AS run_id, status, started_at, finished_at, output_dir,
        input_paths, config, {_RUN_TOTAL_COLUMNS}, error FROM _jobs WHERE job_kind = '{RUN}'""",
    f"""CREATE OR REPLACE VIEW rewrites AS SELECT job_id AS rewrite_id, status, started_at, finished_at,
        output_dir, config, summary, error FROM _jobs WHERE job_kind = '{REWRITE}'""",
    f"""CREATE OR REPLACE VIEW mixtures AS SELECT job_id AS mixture_id, status, started_at, finished_at, output_dir,
        json_extract_string(summary, '$.manifest') AS manifest,
        CAST(json_extract_string(summary, '$.tokens') AS BIGINT) AS tokens,
        CAST(json_extract_string(summary, '$.records') AS BIGINT) AS records,
        json_extract_string(summary, '$.spec_hash') AS spec_hash, config, summary, error
        FROM _jobs WHERE job_kind = '{MIXTURE}'""",
    """CREATE TABLE IF NOT EXISTS _scorers (
        scorer_id VARCHAR PRIMARY KEY, path VARCHAR, trained_at TIMESTAMPTZ, holdout_accuracy DOUBLE,
        holdout_roc_auc DOUBLE, positives BIGINT, negatives BIGINT, card VARCHAR)""",
    "CREATE OR REPLACE VIEW scorers AS SELECT * FROM _scorers",
]

# the input files of completed runs: what continual curation has already read
_CURATED_INPUTS = f"""SELECT f.*, j.finished_at FROM _input_files f
    JOIN _jobs j ON j.job_kind = '{RUN}' AND j.job_id = f.run_id WHERE j.status = 'completed'"""

# What `_ensure_schema` creates, fingerprinted: a file that records the current fingerprint needs
# none of its statements (a write connection is opened several times per job).
_CATALOGUE_FINGERPRINT = hashlib.sha256(
    json.dumps(
        [
            _DDL,
            DERIVED_VIEWS,
            {view: [kind, str(schema)] for view, (kind, schema) in FILE_VIEWS.items()},
            [str(STAGE_STATS), str(INPUT_ERROR), str(INPUT_FILE), _CURATED_INPUTS],
        ]
    ).encode()
).hexdigest()

# files of completed jobs, oldest job first
_COMPLETED_FILES = """SELECT f.path, f.job_id, j.started_at FROM _job_files f JOIN _jobs j USING (job_kind, job_id)
                      WHERE j.status = 'completed' AND f.kind = ?"""


def sql_string(value: str) -> str:
    """A SQL string literal of `value` (for statements that take no parameters: views, COPY, ATTACH)."""
    return "'" + value.replace("'", "''") + "'"


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]).fetchall())


def _catalogue_is_current(con: duckdb.DuckDBPyConnection) -> bool:
    if not _has_table(con, "_catalogue_version"):
        return False
    return con.execute("SELECT fingerprint FROM _catalogue_version").fetchall() == [(_CATALOGUE_FINGERPRINT,)]


def _has_legacy_catalogue(con: duckdb.DuckDBPyConnection) -> bool:
    """Warehouses written before the job catalogue kept runs in `_runs` and rewrites in `_rewrites`."""
    return _has_table(con, "_runs")


def _check_kind(kind: str) -> None:
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}: one of {', '.join(JOB_KINDS)}")


def _now() -> datetime:
    return datetime.now(UTC)


class Warehouse:
    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()

    def cache_dir(self, kind: str, identity: str) -> Path:
        """Where derived per-record facts (token counts, decontamination verdicts) computed under
        one identity (a tokenizer, an eval-set index) are kept beside the warehouse, as Parquet
        parts that later jobs read instead of recomputing."""
        key = hashlib.sha256(identity.encode()).hexdigest()[:24]
        return self.path.parent / f"{self.path.stem}-cache" / kind / key

    @contextmanager
    def connect(self, read_only: bool = False):
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"warehouse {self.path} does not exist yet: run `curate run` first")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only)
        try:
            if not read_only:
                self._ensure_schema(con)
            yield con
        finally:
            con.close()

    def _open(self, read_only: bool, wait_seconds: float = 60.0) -> duckdb.DuckDBPyConnection:
        """DuckDB allows one writing process per file: another run registering, or a long `curate
        sql`, holds it for a moment. Wait for it rather than fail a finished run at the last step."""
        deadline = time.monotonic() + wait_seconds
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as err:
                if "lock" not in str(err).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextmanager
    def _read_catalogue(self):
        """A read-only connection to the job catalogue, or None where there is none yet (no file,
        or one no writer has opened). An old layout is migrated first: the one write a reader makes."""
        if not self.path.exists():
            yield None
            return
        with self.connect(read_only=True) as con:
            legacy = _has_legacy_catalogue(con)
            if not legacy:
                yield con if _has_table(con, "_jobs") else None
                return
        with self.connect():
            pass
        with self.connect(read_only=True) as con:
            yield con

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        if _catalogue_is_current(con):
            return
        if _has_legacy_catalogue(con):
            self._migrate_legacy_catalogue(con)
        for ddl in _DDL:
            con.execute(ddl)
        for name, schema in (("_stage_stats", STAGE_STATS), ("_input_errors", INPUT_ERROR), ("_input_files", INPUT_FILE)):
            if not _has_table(con, name):
                empty = schema.empty_table()  # noqa: F841 - read by DuckDB's replacement scan
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM empty")
        con.execute("CREATE OR REPLACE VIEW stage_stats AS SELECT * FROM _stage_stats")
        con.execute("CREATE OR REPLACE VIEW input_errors AS SELECT * FROM _input_errors")
        con.execute(f"CREATE OR REPLACE VIEW input_files AS {_CURATED_INPUTS}")
        # a catalogue that was migrated or made by another version: every view over the files of
        # its completed jobs, as this version defines them
        self._refresh_file_views(con)
        for view, sql in DERIVED_VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {sql}")
        con.execute("CREATE OR REPLACE TABLE _catalogue_version (fingerprint VARCHAR)")
        con.execute("INSERT INTO _catalogue_version VALUES (?)", [_CATALOGUE_FINGERPRINT])

    @staticmethod
    def _migrate_legacy_catalogue(con: duckdb.DuckDBPyConnection) -> None:
        """Move `_runs`, `_rewrites` and `_run_files` into the job catalogue, every row, in one
        transaction (a process killed halfway leaves the old layout whole). `_rewrites` came with
        the rewrite stage and `_run_files.job_kind` later still: before it, a file's kind told
        which kind of job wrote it."""
        con.execute("BEGIN TRANSACTION")
        for ddl in _JOBS_DDL:
            con.execute(ddl)
        totals = ", ".join(f"'{t}', {t}" for t in RUN_TOTALS)
        con.execute(
            f"""INSERT INTO _jobs (job_kind, job_id, status, started_at, finished_at, output_dir, input_paths, config, summary, error)
                SELECT '{RUN}', run_id, status, started_at, finished_at, output_dir, input_paths, config,
                       CASE WHEN coalesce({", ".join(RUN_TOTALS)}) IS NULL THEN NULL ELSE json_object({totals})::VARCHAR END,
                       error
                FROM _runs"""
        )
        if _has_table(con, "_rewrites"):
            con.execute(
                f"""INSERT INTO _jobs (job_kind, job_id, status, started_at, finished_at, output_dir, config, summary, error)
                    SELECT '{REWRITE}', rewrite_id, status, started_at, finished_at, output_dir, config, summary, error
                    FROM _rewrites"""
            )
        if _has_table(con, "_run_files"):
            by_file_kind = " ".join(f"WHEN {sql_string(k)} THEN {sql_string(j)}" for k, j in JOB_KIND_OF_FILES.items())
            job_kind = f"CASE kind {by_file_kind} END"
            columns = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = '_run_files'"
                ).fetchall()
            }
            if "job_kind" in columns:
                job_kind = f"coalesce(job_kind, {job_kind})"
            con.execute(
                f"INSERT INTO _job_files (job_kind, job_id, kind, path) SELECT {job_kind}, run_id, kind, path FROM _run_files"
            )
        for view in ("runs", "rewrites"):
            con.execute(f"DROP VIEW IF EXISTS {view}")
        for table in ("_runs", "_rewrites", "_run_files"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute("COMMIT")

    def _set_files(self, con, job_kind: str, job_id: str, files: dict[str, list]) -> None:
        con.execute("DELETE FROM _job_files WHERE job_kind = ? AND job_id = ?", [job_kind, job_id])
        for kind, paths in files.items():
            if JOB_KIND_OF_FILES[kind] != job_kind:
                raise ValueError(f"{kind} files belong to a {JOB_KIND_OF_FILES[kind]}, not a {job_kind}")
            con.executemany(
                "INSERT INTO _job_files (job_kind, job_id, kind, path) VALUES (?, ?, ?, ?)",
                [[job_kind, job_id, kind, str(Path(p).resolve())] for p in paths],
            )

    @staticmethod
    def _create_file_view(con, view: str, schema: pa.Schema, files: list[str]) -> None:
        empty_name = f"_empty_{view}"
        if not _has_table(con, empty_name):
            empty = schema.empty_table()  # noqa: F841 - read by DuckDB's replacement scan
            con.execute(f"CREATE TABLE {empty_name} AS SELECT * FROM empty")
        if files:
            listed = ", ".join(sql_string(f) for f in files)
            source = f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"
        else:
            source = f"SELECT * FROM {empty_name}"
        con.execute(f"CREATE OR REPLACE VIEW {view} AS {source}")

    def _refresh_file_views(self, con, job_kind: str | None = None) -> None:
        """Recreate the views over the files of `job_kind`'s jobs (all jobs' when None): a job's
        files are only ever of its own kind's (`_set_files`), so when one job changes, the other
        views still list the right files. Each view reads its files' schemas when created (~5 ms
        per view for the benchmark's warehouse, more with every file)."""
        for view, (kind, schema) in FILE_VIEWS.items():
            if job_kind is not None and JOB_KIND_OF_FILES[kind] != job_kind:
                continue
            rows = con.execute(f"SELECT path FROM ({_COMPLETED_FILES}) ORDER BY started_at, path", [kind]).fetchall()
            self._create_file_view(con, view, schema, [r[0] for r in rows])

    # ------------------------------------------------------------------ the job lifecycle

    def job_status(self, kind: str, job_id: str) -> tuple[str, str] | None:
        """(status, output_dir) of a job, or None if the warehouse has never seen it."""
        _check_kind(kind)
        with self._read_catalogue() as con:
            if con is None:
                return None
            rows = con.execute(
                "SELECT status, output_dir FROM _jobs WHERE job_kind = ? AND job_id = ?", [kind, job_id]
            ).fetchall()
        return rows[0] if rows else None

    def job_started(self, kind: str, job_id: str, output_dir: Path, config: dict, input_paths: list[str] | None = None) -> bool:
        """Record a job as running; False where a completed version exists, which is left as it
        is: a completed job is never set back to running, its files stay in the views until a
        replacement completes (`job_completed` swaps them in one transaction). A caller that
        must not replace a completed job asks here, in the same connection, not in another."""
        _check_kind(kind)
        key = [kind, job_id]
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            if con.execute("SELECT 1 FROM _jobs WHERE job_kind = ? AND job_id = ? AND status = 'completed'", key).fetchall():
                con.execute("ROLLBACK")
                return False
            con.execute("DELETE FROM _jobs WHERE job_kind = ? AND job_id = ?", key)
            con.execute(
                """INSERT INTO _jobs (job_kind, job_id, status, started_at, output_dir, input_paths, config)
                   VALUES (?, ?, 'running', ?, ?, ?, ?)""",
                [
                    *key,
                    _now(),
                    str(output_dir),
                    self._input_paths_json(input_paths),
                    json.dumps(without_secrets(config), default=str),
                ],
            )
            con.execute("COMMIT")
        return True

    def job_failed(self, kind: str, job_id: str, error: str) -> None:
        """A failed job says why; a failed replacement of a completed job leaves the completed
        version visible and says why the replacement failed."""
        _check_kind(kind)
        error = without_secrets(error)
        with self.connect() as con:
            con.execute(
                """UPDATE _jobs SET status = CASE WHEN status = 'completed' THEN status ELSE 'failed' END,
                   finished_at = CASE WHEN status = 'completed' THEN finished_at ELSE ? END,
                   error = CASE WHEN status = 'completed' THEN 'replacement failed: ' || ? ELSE ? END
                   WHERE job_kind = ? AND job_id = ?""",
                [_now(), error, error, kind, job_id],
            )

    def job_completed(
        self,
        kind: str,
        job_id: str,
        files: dict[str, list],
        summary: dict,
        *,
        output_dir: Path | None = None,
        config: dict | None = None,
        input_paths: list[str] | None = None,
        stats: Iterable[dict] = (),
        input_errors: Iterable[dict] = (),
        input_files: Iterable[dict] = (),
    ) -> None:
        """Mark a job completed and swap its files into the views, in one transaction. `output_dir`,
        `config` and `input_paths`, when given, replace what was recorded: a replacement's may
        differ from the completed version it replaces. A run (and only a run) also records its
        stage stats and unreadable inputs, replacing its earlier version's."""
        _check_kind(kind)
        stats, input_errors, input_files = list(stats), list(input_errors), list(input_files)
        if kind != RUN and (stats or input_errors or input_files):
            raise ValueError(f"a {kind} has no stage stats, input errors or input files")
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            self._set_files(con, kind, job_id, files)
            if kind == RUN:
                self._set_run_records(con, job_id, stats, input_errors, input_files)
            con.execute(
                """UPDATE _jobs SET status = 'completed', finished_at = ?, summary = ?, error = NULL,
                   output_dir = coalesce(?, output_dir), config = coalesce(?, config), input_paths = coalesce(?, input_paths)
                   WHERE job_kind = ? AND job_id = ?""",
                [
                    _now(),
                    json.dumps(without_secrets(summary), default=str),
                    str(output_dir) if output_dir else None,
                    json.dumps(without_secrets(config), default=str) if config is not None else None,
                    self._input_paths_json(input_paths),
                    kind,
                    job_id,
                ],
            )
            self._refresh_file_views(con, kind)
            con.execute("COMMIT")

    @staticmethod
    def _input_paths_json(input_paths: list[str] | None) -> str | None:
        return None if input_paths is None else json.dumps(without_secrets(list(input_paths)))

    @staticmethod
    def _set_run_records(con, run_id: str, stats: list[dict], input_errors: list[dict], input_files: list[dict]) -> None:
        stats_table = pa.Table.from_pylist(stats, schema=STAGE_STATS)  # noqa: F841 - read by DuckDB
        errors_table = pa.Table.from_pylist(without_secrets(input_errors), schema=INPUT_ERROR)  # noqa: F841
        files_table = pa.Table.from_pylist([{**f, "run_id": run_id} for f in input_files], schema=INPUT_FILE)  # noqa: F841
        for table, rows in (("_stage_stats", "stats_table"), ("_input_errors", "errors_table"), ("_input_files", "files_table")):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            con.execute(f"INSERT INTO {table} SELECT * FROM {rows}")

    def add_run_files(self, run_id: str, kind: str, paths: list[Path]) -> None:
        """Attach more files to a completed job (e.g. a run's scores computed later); the file kind
        names the job kind. Idempotent."""
        job_kind = JOB_KIND_OF_FILES[kind]
        with self.connect() as con:
            for path in paths:
                row = [job_kind, run_id, kind, str(Path(path).resolve())]
                con.execute("DELETE FROM _job_files WHERE job_kind = ? AND job_id = ? AND kind = ? AND path = ?", row)
                con.execute("INSERT INTO _job_files (job_kind, job_id, kind, path) VALUES (?, ?, ?, ?)", row)
            self._refresh_file_views(con, job_kind)

    # ------------------------------------------------------------------ other writes

    def register_scorer(self, scorer_id: str, path: Path, card: dict) -> None:
        with self.connect() as con:
            con.execute("DELETE FROM _scorers WHERE scorer_id = ?", [scorer_id])
            con.execute(
                "INSERT INTO _scorers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    scorer_id,
                    str(Path(path).resolve()),
                    _now(),
                    card["holdout"]["accuracy"],
                    card["holdout"]["roc_auc"],
                    card["labels"]["positive"],
                    card["labels"]["negative"],
                    json.dumps(card),
                ],
            )

    # ------------------------------------------------------------------ reads

    def select(self, sql: str, params: list | None = None) -> pa.Table:
        """A query's result as an Arrow table (read-only connection)."""
        with self.connect(read_only=True) as con:
            return con.sql(sql, params=params or None).to_arrow_table()

    def curated_inputs(self) -> list[dict]:
        """The input files completed runs read: path, size, modified, sha256, run_id."""
        with self._read_catalogue() as con:
            if con is None or not _has_table(con, "_input_files"):
                return []
            return con.sql(f"SELECT * FROM ({_CURATED_INPUTS}) ORDER BY finished_at, path").to_arrow_table().to_pylist()

    def completed_files(self, kind: str, exclude_run: str | None = None) -> list[str]:
        """Files of one kind from completed jobs, e.g. what a new run deduplicates against;
        `exclude_run` names a job of the kind that writes such files (a run for `documents`, a
        rewrite for `generations`)."""
        return sorted(path for paths in self.completed_files_by_job(kind, exclude_run).values() for path in paths)

    def completed_files_by_job(self, kind: str, exclude_job: str | None = None) -> dict[str, list[str]]:
        """`completed_files`, per job id (jobs in id order, each one's paths sorted)."""
        with self._read_catalogue() as con:
            if con is None:
                return {}
            rows = con.execute(
                f"SELECT job_id, path FROM ({_COMPLETED_FILES}) WHERE job_id IS DISTINCT FROM ? ORDER BY job_id, path",
                [kind, exclude_job],
            ).fetchall()
        by_job: dict[str, list[str]] = {}
        for job_id, path in rows:
            by_job.setdefault(job_id, []).append(path)
        return by_job

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        with self.connect(read_only=True) as con:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            return columns, cursor.fetchall()
