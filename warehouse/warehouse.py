"""The DuckDB warehouse: a catalogue of runs and views over their Parquet outputs.

Data stays in Parquet under the output root; the database holds small tables (runs, stage stats,
input errors, the list of each run's files) and views over the files by absolute path, so plain
`duckdb <file>` sees the same thing `curate sql` does. Only completed runs' files are in the
views: a run in progress or a failed one never leaks half its output into `documents`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.documents import (
    CURATED_DOCUMENT,
    INPUT_ERROR,
    MINHASH_BANDS,
    REJECTED_DOCUMENT,
    STAGE_STATS,
)
from schemas.rewrite import GENERATION, REWRITE_FAILURE
from schemas.scoring import SCORES
from warehouse.secrets import without_secrets

# view name -> (kind of run file it reads, schema of those files)
FILE_VIEWS = {
    "documents": ("documents", CURATED_DOCUMENT),
    "rejected": ("rejected", REJECTED_DOCUMENT),
    "minhash_index": ("minhash_index", MINHASH_BANDS),
    "scores": ("scores", SCORES),
    "generations": ("generations", GENERATION),
    "rewrite_failures": ("rewrite_failures", REWRITE_FAILURE),
}

# views over other views: what most queries of synthetic data want
DERIVED_VIEWS = {
    "synthetic": "SELECT * FROM generations WHERE accepted",
    "synthetic_rejected": "SELECT * FROM generations WHERE NOT accepted",
}

# Every file belongs to a job of one kind: a curation run or a rewrite. Ids are unique within a
# kind only, so every lookup of a job's files names its kind too: a rewrite named like a run must
# never hide, replace or delete that run's files.
RUN, REWRITE = "run", "rewrite"
JOB_KIND_OF_FILES = {
    "documents": RUN, "rejected": RUN, "minhash_index": RUN, "scores": RUN,
    "generations": REWRITE, "rewrite_failures": REWRITE,
}

# a file is in the views once the job that wrote it has completed
_COMPLETED = """SELECT 'run' AS job_kind, run_id, started_at FROM _runs WHERE status = 'completed'
                UNION ALL SELECT 'rewrite', rewrite_id, started_at FROM _rewrites WHERE status = 'completed'"""

_DDL = [
    """CREATE TABLE IF NOT EXISTS _runs (
        run_id VARCHAR PRIMARY KEY, status VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
        output_dir VARCHAR, input_paths VARCHAR, config VARCHAR,
        docs_in BIGINT, docs_out BIGINT, docs_rejected BIGINT, input_errors BIGINT, error VARCHAR)""",
    "CREATE TABLE IF NOT EXISTS _run_files (run_id VARCHAR, kind VARCHAR, path VARCHAR, job_kind VARCHAR)",
    "CREATE OR REPLACE VIEW runs AS SELECT * FROM _runs",
    """CREATE TABLE IF NOT EXISTS _scorers (
        scorer_id VARCHAR PRIMARY KEY, path VARCHAR, trained_at TIMESTAMPTZ, holdout_accuracy DOUBLE,
        holdout_roc_auc DOUBLE, positives BIGINT, negatives BIGINT, card VARCHAR)""",
    "CREATE OR REPLACE VIEW scorers AS SELECT * FROM _scorers",
    """CREATE TABLE IF NOT EXISTS _rewrites (
        rewrite_id VARCHAR PRIMARY KEY, status VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
        output_dir VARCHAR, config VARCHAR, summary VARCHAR, error VARCHAR)""",
    "CREATE OR REPLACE VIEW rewrites AS SELECT * FROM _rewrites",
]


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Warehouse:
    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()

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

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        for ddl in _DDL:
            con.execute(ddl)
        self._add_job_kind(con)
        for name, schema in (("_stage_stats", STAGE_STATS), ("_input_errors", INPUT_ERROR)):
            if not con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]).fetchall():
                empty = schema.empty_table()  # noqa: F841 - read by DuckDB's replacement scan
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM empty")
        con.execute("CREATE OR REPLACE VIEW stage_stats AS SELECT * FROM _stage_stats")
        con.execute("CREATE OR REPLACE VIEW input_errors AS SELECT * FROM _input_errors")
        for view, (_, schema) in FILE_VIEWS.items():
            if not con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [view]).fetchall():
                self._create_file_view(con, view, schema, [])
        for view, sql in DERIVED_VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {sql}")

    @staticmethod
    def _add_job_kind(con) -> None:
        """Warehouses written before jobs had kinds: every file kind belongs to one job kind."""
        columns = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = '_run_files'").fetchall()}
        if "job_kind" in columns:
            return
        con.execute("ALTER TABLE _run_files ADD COLUMN job_kind VARCHAR")
        for kind, job_kind in JOB_KIND_OF_FILES.items():
            con.execute("UPDATE _run_files SET job_kind = ? WHERE kind = ?", [job_kind, kind])

    def _set_files(self, con, job_kind: str, job_id: str, files: dict[str, list]) -> None:
        con.execute("DELETE FROM _run_files WHERE job_kind = ? AND run_id = ?", [job_kind, job_id])
        for kind, paths in files.items():
            if JOB_KIND_OF_FILES[kind] != job_kind:
                raise ValueError(f"{kind} files belong to a {JOB_KIND_OF_FILES[kind]}, not a {job_kind}")
            con.executemany(
                "INSERT INTO _run_files (run_id, kind, path, job_kind) VALUES (?, ?, ?, ?)",
                [[job_id, kind, str(Path(p).resolve()), job_kind] for p in paths],
            )

    @staticmethod
    def _create_file_view(con, view: str, schema: pa.Schema, files: list[str]) -> None:
        empty_name = f"_empty_{view}"
        if not con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [empty_name]).fetchall():
            empty = schema.empty_table()  # noqa: F841 - read by DuckDB's replacement scan
            con.execute(f"CREATE TABLE {empty_name} AS SELECT * FROM empty")
        if files:
            listed = ", ".join(_sql_str(f) for f in files)
            source = f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"
        else:
            source = f"SELECT * FROM {empty_name}"
        con.execute(f"CREATE OR REPLACE VIEW {view} AS {source}")

    def _refresh_file_views(self, con) -> None:
        for view, (kind, schema) in FILE_VIEWS.items():
            files = [
                r[0]
                for r in con.execute(
                    f"""SELECT f.path FROM _run_files f JOIN ({_COMPLETED}) r USING (job_kind, run_id)
                        WHERE f.kind = ? ORDER BY r.started_at, f.path""",
                    [kind],
                ).fetchall()
            ]
            self._create_file_view(con, view, schema, files)

    # ------------------------------------------------------------------ writes

    def run_status(self, run_id: str) -> tuple[str, str] | None:
        """(status, output_dir) of a run, or None if the warehouse has never seen it."""
        if not self.path.exists():
            return None
        with self.connect() as con:
            rows = con.execute("SELECT status, output_dir FROM _runs WHERE run_id = ?", [run_id]).fetchall()
        return rows[0] if rows else None

    def run_started(self, run_id: str, output_dir: Path, input_paths: list[str], config: dict) -> None:
        """Record a run as running. A completed run is never set back to running: its files stay
        in the views until a replacement completes (`run_completed` swaps them in one transaction)."""
        with self.connect() as con:
            if con.execute("SELECT 1 FROM _runs WHERE run_id = ? AND status = 'completed'", [run_id]).fetchall():
                return
            con.execute("DELETE FROM _runs WHERE run_id = ?", [run_id])
            con.execute(
                "INSERT INTO _runs (run_id, status, started_at, output_dir, input_paths, config) VALUES (?, 'running', ?, ?, ?, ?)",
                [
                    run_id, datetime.now(timezone.utc), str(output_dir), json.dumps(without_secrets(input_paths)),
                    json.dumps(without_secrets(config), default=str),
                ],
            )
            self._refresh_file_views(con)

    def run_failed(self, run_id: str, error: str) -> None:
        """A failed replacement of a completed run leaves the completed version visible and says why."""
        with self.connect() as con:
            con.execute(
                """UPDATE _runs SET status = CASE WHEN status = 'completed' THEN status ELSE 'failed' END,
                   finished_at = CASE WHEN status = 'completed' THEN finished_at ELSE ? END,
                   error = CASE WHEN status = 'completed' THEN 'replacement failed: ' || ? ELSE ? END
                   WHERE run_id = ?""",
                [datetime.now(timezone.utc), without_secrets(error), without_secrets(error), run_id],
            )

    def run_completed(
        self,
        run_id: str,
        files: dict[str, list[str]],
        stats: Iterable[dict],
        input_errors: Iterable[dict],
        totals: dict[str, int],
        output_dir: Path | None = None,
    ) -> None:
        stats_table = pa.Table.from_pylist(list(stats), schema=STAGE_STATS)  # noqa: F841
        errors_table = pa.Table.from_pylist(without_secrets(list(input_errors)), schema=INPUT_ERROR)  # noqa: F841
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            self._set_files(con, RUN, run_id, files)
            con.execute("DELETE FROM _stage_stats WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM _input_errors WHERE run_id = ?", [run_id])
            con.execute("INSERT INTO _stage_stats SELECT * FROM stats_table")
            con.execute("INSERT INTO _input_errors SELECT * FROM errors_table")
            con.execute(
                """UPDATE _runs SET status = 'completed', finished_at = ?, docs_in = ?, docs_out = ?,
                   docs_rejected = ?, input_errors = ?, error = NULL, output_dir = coalesce(?, output_dir)
                   WHERE run_id = ?""",
                [
                    datetime.now(timezone.utc), totals["docs_in"], totals["docs_out"], totals["docs_rejected"],
                    totals["input_errors"], str(output_dir) if output_dir else None, run_id,
                ],
            )
            self._refresh_file_views(con)
            con.execute("COMMIT")

    def add_run_files(self, run_id: str, kind: str, paths: list[Path]) -> None:
        """Attach more files to a completed run (e.g. scores computed later); idempotent."""
        with self.connect() as con:
            for path in paths:
                resolved = str(Path(path).resolve())
                con.execute(
                    "DELETE FROM _run_files WHERE job_kind = ? AND run_id = ? AND kind = ? AND path = ?",
                    [JOB_KIND_OF_FILES[kind], run_id, kind, resolved],
                )
                con.execute(
                    "INSERT INTO _run_files (run_id, kind, path, job_kind) VALUES (?, ?, ?, ?)",
                    [run_id, kind, resolved, JOB_KIND_OF_FILES[kind]],
                )
            self._refresh_file_views(con)

    def register_scorer(self, scorer_id: str, path: Path, card: dict) -> None:
        with self.connect() as con:
            con.execute("DELETE FROM _scorers WHERE scorer_id = ?", [scorer_id])
            con.execute(
                "INSERT INTO _scorers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    scorer_id, str(Path(path).resolve()), datetime.now(timezone.utc),
                    card["holdout"]["accuracy"], card["holdout"]["roc_auc"],
                    card["labels"]["positive"], card["labels"]["negative"], json.dumps(card),
                ],
            )

    def rewrite_started(self, rewrite_id: str, output_dir: Path, config: dict) -> None:
        with self.connect() as con:
            con.execute("DELETE FROM _rewrites WHERE rewrite_id = ?", [rewrite_id])
            con.execute(
                "INSERT INTO _rewrites (rewrite_id, status, started_at, output_dir, config) VALUES (?, 'running', ?, ?, ?)",
                [rewrite_id, datetime.now(timezone.utc), str(output_dir), json.dumps(without_secrets(config), default=str)],
            )
            self._refresh_file_views(con)

    def rewrite_failed(self, rewrite_id: str, error: str) -> None:
        with self.connect() as con:
            con.execute(
                "UPDATE _rewrites SET status = 'failed', finished_at = ?, error = ? WHERE rewrite_id = ?",
                [datetime.now(timezone.utc), without_secrets(error), rewrite_id],
            )

    def rewrite_completed(self, rewrite_id: str, files: dict[str, list[Path]], summary: dict) -> None:
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            self._set_files(con, REWRITE, rewrite_id, files)
            con.execute(
                "UPDATE _rewrites SET status = 'completed', finished_at = ?, summary = ?, error = NULL WHERE rewrite_id = ?",
                [datetime.now(timezone.utc), json.dumps(without_secrets(summary), default=str), rewrite_id],
            )
            self._refresh_file_views(con)
            con.execute("COMMIT")

    # ------------------------------------------------------------------ reads

    def select(self, sql: str, params: list | None = None) -> pa.Table:
        """A query's result as an Arrow table (read-only connection)."""
        with self.connect(read_only=True) as con:
            return con.sql(sql, params=params or None).to_arrow_table()

    def completed_files(self, kind: str, exclude_run: str | None = None) -> list[str]:
        """Files of one kind from completed jobs, e.g. what a new run deduplicates against;
        `exclude_run` names a job of the kind that writes such files."""
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            if not con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = '_rewrites'").fetchall():
                return []  # an empty warehouse, or one no writer of this version has opened yet
            rows = con.execute(
                f"""SELECT f.path FROM _run_files f JOIN ({_COMPLETED}) r USING (job_kind, run_id)
                    WHERE f.kind = ? AND r.run_id IS DISTINCT FROM ? ORDER BY f.path""",
                [kind, exclude_run],
            ).fetchall()
        return [r[0] for r in rows]

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        with self.connect(read_only=True) as con:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            return columns, cursor.fetchall()
