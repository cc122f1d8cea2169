"""Exact and near-duplicate removal, within a run and against everything already curated.

Both work in three steps so shards stay independent tasks: a per-shard map (keys), one global
decision over all keys of the run plus the warehouse (DuckDB over Parquet), and a per-shard apply.

Near duplicates use datatrove's MinHash signatures (its shingling, text normalisation and hash
permutations) with LSH banding. The bucket join and clustering are ours: datatrove's index files
keep hashes without document identity, so a match against an earlier run could not say which
document it duplicates, and its clustering picks survivors by cluster size; here the survivor is
always the document curated earliest (an earlier run's, else the first by input file and row).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.stage import DocumentStage, FinishContext, GlobalStage, PlanContext, Rejection, ShardContext
from schemas.config import NearDedupConfig
from schemas.documents import DECISIONS, MINHASH_BANDS, RUN_BANDS
from scorers.minhash import band_keys
from warehouse.shards import write_table_atomic


def _paths(files: list[Path]) -> list[str]:
    return [str(p) for p in files]


# ---------------------------------------------------------------- exact


def plan_exact_dedup(curated: list[Path], prior_documents: list[str], out: Path) -> dict:
    """Decide, for the whole run, which documents are duplicate ids or exact duplicates."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE docs AS SELECT doc_id, content_hash, input_file, input_row FROM read_parquet(?)",
        [_paths(curated)],
    )
    if prior_documents:
        con.execute(
            "CREATE TABLE prior AS SELECT content_hash, min(doc_id) AS doc_id FROM read_parquet(?) GROUP BY ALL",
            [prior_documents],
        )
    else:
        con.execute("CREATE TABLE prior (content_hash VARCHAR, doc_id VARCHAR)")
    decisions = con.sql(
        """
        WITH ranked_ids AS (
            SELECT *, row_number() OVER (PARTITION BY doc_id ORDER BY input_file, input_row) AS id_rank,
                   first(input_file || ':' || input_row) OVER (PARTITION BY doc_id ORDER BY input_file, input_row) AS first_use
            FROM docs
        ),
        unique_ids AS (SELECT * FROM ranked_ids WHERE id_rank = 1),
        ranked AS (
            SELECT u.*, row_number() OVER w AS hash_rank, first(u.doc_id) OVER w AS representative,
                   count(*) OVER (PARTITION BY u.content_hash) AS group_size, p.doc_id AS prior_doc
            FROM unique_ids u LEFT JOIN prior p USING (content_hash)
            WINDOW w AS (PARTITION BY u.content_hash ORDER BY u.input_file, u.input_row)
        )
        SELECT input_file, input_row, 'duplicate_id' AS reason,
               'id first used at ' || first_use AS detail, doc_id AS duplicate_of, NULL AS duplicate_cluster
        FROM ranked_ids WHERE id_rank > 1
        UNION ALL
        SELECT input_file, input_row, 'exact_duplicate_of_curated', 'same normalised text curated by an earlier run',
               prior_doc, prior_doc
        FROM ranked WHERE prior_doc IS NOT NULL
        UNION ALL
        SELECT input_file, input_row, 'exact_duplicate', 'same normalised text earlier in this run',
               representative, representative
        FROM ranked WHERE prior_doc IS NULL AND hash_rank > 1
        UNION ALL
        SELECT input_file, input_row, NULL, NULL, NULL, doc_id
        FROM ranked WHERE prior_doc IS NULL AND hash_rank = 1 AND group_size > 1
        ORDER BY input_file, input_row
        """
    ).to_arrow_table()
    write_table_atomic(out, decisions.cast(DECISIONS))
    return {"decisions": decisions.num_rows}


def load_decisions(path: Path, input_file: str) -> dict[int, dict]:
    table = pq.read_table(path, filters=[("input_file", "=", input_file)])
    return {row["input_row"]: row for row in table.to_pylist()}


def apply_decision(decision: dict | None, row: dict) -> Rejection | None:
    """A global decision about one document: reject it, or annotate its cluster and keep it."""
    if decision is None:
        return None
    if decision["duplicate_cluster"] is not None:
        row["duplicate_cluster"] = decision["duplicate_cluster"]
    if decision["reason"] is None:
        return None
    return Rejection(decision["reason"], decision["detail"], decision["duplicate_of"])


# ---------------------------------------------------------------- near


def shard_bands(table: pa.Table, cfg: NearDedupConfig) -> pa.Table:
    rows = []
    for doc in table.select(["input_file", "input_row", "doc_id", "text"]).to_pylist():
        for band, key in enumerate(band_keys(doc["text"], cfg)):
            rows.append(
                {
                    "input_file": doc["input_file"],
                    "input_row": doc["input_row"],
                    "doc_id": doc["doc_id"],
                    "band": band,
                    "band_key": key,
                }
            )
    return pa.Table.from_pylist(rows, schema=RUN_BANDS)


def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def plan_near_dedup(bands: list[Path], prior_index: list[str], out: Path) -> dict:
    """Cluster the run's documents by shared LSH bands and decide each cluster's survivor.

    Every (band, key) pair links the documents that share it; rather than materialise all pairs,
    each document is linked to the first document (in input order) of every bucket it is in,
    which connects the same components. Union-find over those links gives the clusters, each rooted
    at its earliest document. A cluster that touches an earlier run's index (`prior_index`) loses
    every member to that earlier document (`near_duplicate_of_curated`, the smallest matching id);
    otherwise its root survives and the others are `near_duplicate`. Documents without a shingle
    (shorter than one n-gram) have no bands and are never clustered. A survivor of a cluster of
    two or more is kept with `duplicate_cluster` set, so clusters stay queryable.
    """
    con = duckdb.connect()
    con.execute("CREATE TABLE b AS SELECT * FROM read_parquet(?)", [_paths(bands)])
    con.execute(
        """CREATE TABLE nodes AS
           SELECT row_number() OVER (ORDER BY input_file, input_row) - 1 AS node, input_file, input_row, doc_id
           FROM (SELECT DISTINCT input_file, input_row, doc_id FROM b)"""
    )
    nodes = con.execute("SELECT input_file, input_row, doc_id FROM nodes ORDER BY node").fetchall()
    edges = con.execute(
        """SELECT min(n.node) OVER (PARTITION BY b.band, b.band_key) AS root, n.node
           FROM b JOIN nodes n USING (input_file, input_row)"""
    ).fetchnumpy()
    parent = np.arange(len(nodes), dtype=np.int64)
    for a, b in zip(edges["root"].tolist(), edges["node"].tolist()):
        if a != b:
            ra, rb = _find(parent, a), _find(parent, b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)  # the earliest document roots its cluster
    prior_match: dict[int, str] = {}
    if prior_index:
        rows = con.execute(
            """SELECT n.node, min(p.doc_id) FROM b JOIN nodes n USING (input_file, input_row)
               JOIN read_parquet(?) p ON p.band = b.band AND p.band_key = b.band_key GROUP BY n.node""",
            [prior_index],
        ).fetchall()
        prior_match = dict(rows)
    roots = np.array([_find(parent, i) for i in range(len(nodes))], dtype=np.int64)
    cluster_prior: dict[int, str] = {}
    for node, prior_doc in prior_match.items():
        root = int(roots[node])
        cluster_prior[root] = min(cluster_prior.get(root, prior_doc), prior_doc)
    sizes = np.bincount(roots, minlength=len(nodes)) if len(nodes) else np.array([], dtype=np.int64)

    decisions = []
    for node, (input_file, input_row, doc_id) in enumerate(nodes):
        root = int(roots[node])
        if root in cluster_prior:
            prior_doc = cluster_prior[root]
            decisions.append(
                (
                    input_file,
                    input_row,
                    "near_duplicate_of_curated",
                    "MinHash LSH match with a document curated by an earlier run",
                    prior_doc,
                    prior_doc,
                )
            )
        elif sizes[root] > 1:
            representative = nodes[root][2]
            if node == root:
                decisions.append((input_file, input_row, None, None, None, doc_id))
            else:
                decisions.append(
                    (
                        input_file,
                        input_row,
                        "near_duplicate",
                        "MinHash LSH match earlier in this run",
                        representative,
                        representative,
                    )
                )
    table = pa.Table.from_pylist([dict(zip(DECISIONS.names, d)) for d in decisions], schema=DECISIONS)
    write_table_atomic(out, table)
    return {
        "decisions": table.num_rows,
        "clusters": int(sum(1 for r in set(roots.tolist()) if sizes[r] > 1)),
        "prior_matches": len(prior_match),
    }


def curated_index(bands: list[Path], final_curated: list[Path], run_id: str, out: Path) -> int:
    """The band keys of this run's survivors: what later runs deduplicate against."""
    con = duckdb.connect()
    table = con.sql(
        """SELECT b.doc_id, ? AS run_id, b.band, b.band_key
           FROM read_parquet(?) b JOIN read_parquet(?) c USING (input_file, input_row)
           ORDER BY b.band, b.band_key""",
        params=[run_id, _paths(bands), _paths(final_curated)],
    ).to_arrow_table()
    write_table_atomic(out, table.cast(MINHASH_BANDS))
    return table.num_rows


# ---------------------------------------------------------------- the stages


class _DecisionApply(GlobalStage, DocumentStage):
    """Applies the plan's decisions.parquet to a shard, row by row."""

    def begin_shard(self, ctx: ShardContext) -> None:
        self.decisions = load_decisions(ctx.stage_dir / "decisions.parquet", ctx.input_path)

    def check(self, row: dict) -> Rejection | None:
        return apply_decision(self.decisions.get(row["input_row"]), row)


class ExactDedup(_DecisionApply):
    name = "exact_dedup"
    config_section = "exact_dedup"

    def plan(self, ctx: PlanContext) -> dict:
        prior = ctx.warehouse.completed_files("documents", exclude_run=ctx.run_id) if self.config.against_warehouse else []
        return plan_exact_dedup(ctx.previous_curated, prior, ctx.stage_dir / "decisions.parquet")


class NearDedup(_DecisionApply):
    name = "near_dedup"
    config_section = "near_dedup"
    map_schema = RUN_BANDS
    map_step = "near_dedup_signatures"

    def setup(self) -> None:
        # the signer and its word splitter (spaCy's, loaded on first use): once per process, here
        # rather than in the first shard
        band_keys("warm up the word splitter of the shingles", self.config)

    def map(self, batch: pa.Table) -> pa.Table:
        return shard_bands(batch, self.config)

    def plan(self, ctx: PlanContext) -> dict:
        prior = ctx.warehouse.completed_files("minhash_index", exclude_run=ctx.run_id) if self.config.against_warehouse else []
        return plan_near_dedup(ctx.map_outputs, prior, ctx.stage_dir / "decisions.parquet")

    def run_files(self, ctx: FinishContext) -> dict[str, list[str]]:
        index = ctx.run_dir / "minhash_index.parquet"
        curated_index(ctx.map_outputs, ctx.final_curated, ctx.run_id, index)
        return {"minhash_index": [str(index)]}
