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

import hashlib
import logging
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.stage import DocumentStage, FinishContext, GlobalStage, PlanContext, Rejection, ShardContext
from schemas.documents import DECISIONS, MINHASH_BANDS, RUN_BANDS
from scorers.minhash import MinHasher, min_hasher
from warehouse.shards import iter_parquet_batches, write_table_atomic
from warehouse.warehouse import Warehouse

log = logging.getLogger(__name__)


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


def _band_rows(batch: pa.Table, id_columns: list[str], hasher: MinHasher) -> pa.Table:
    """One row per (document, band) of a batch: its `id_columns`, `band` and `band_key`; a
    document without a shingle has none."""
    keys, signed = hasher.band_keys(batch.column("text").to_pylist())
    signed_rows = np.flatnonzero(signed)
    ids = batch.select(id_columns).take(np.repeat(signed_rows, hasher.bands))
    bands = pa.array(np.tile(np.arange(hasher.bands, dtype=np.int16), len(signed_rows)))
    return ids.append_column("band", bands).append_column("band_key", pa.array(keys[signed_rows].ravel()))


def shard_bands(table: pa.Table, hasher: MinHasher) -> pa.Table:
    """The near-dedup map's rows of a batch (`RUN_BANDS`)."""
    return _band_rows(table, ["input_file", "input_row", "doc_id"], hasher).cast(RUN_BANDS)


def connected_components(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each node's component, named by its smallest node, from the edges `a[i] - b[i]`: every
    round hooks the larger root of each edge whose ends differ under the smaller one, then points
    every node straight at its root (pointer jumping), until no edge joins two components. Whole
    arrays per step, no loop per node or edge; the rounds are few (each at least halves the
    components that still have an edge out)."""
    labels = np.arange(count, dtype=np.int64)
    while len(a):
        ends_a, ends_b = labels[a], labels[b]
        crossing = ends_a != ends_b
        if not crossing.any():
            break
        a, b, ends_a, ends_b = a[crossing], b[crossing], ends_a[crossing], ends_b[crossing]
        np.minimum.at(labels, np.maximum(ends_a, ends_b), np.minimum(ends_a, ends_b))
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
    return labels


def plan_near_dedup(bands: list[Path], prior_index: list[str], out: Path) -> dict:
    """Cluster the run's documents by shared LSH bands and decide each cluster's survivor.

    Every (band, key) pair links the documents that share it; rather than materialise all pairs,
    each document is linked to the first document (in input order) of every bucket it is in,
    which connects the same components (`connected_components`, each rooted at its earliest
    document). A cluster that touches an earlier run's index (`prior_index`, files signed the way
    this run signs) loses every member to that earlier document (`near_duplicate_of_curated`, the
    smallest matching id); otherwise its root survives and the others are `near_duplicate`.
    Documents without a shingle (shorter than one n-gram) have no bands and are never clustered.
    A survivor of a cluster of two or more is kept with `duplicate_cluster` set, so clusters stay
    queryable. The links, the prior matches and the decisions are DuckDB queries; only the
    components are computed in numpy.
    """
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")  # every result here is ordered explicitly
    files = _paths(bands)
    # a node per document, numbered in (input_file, input_row) order without joining every band
    # row to a table of documents: each file's rows are offset by the rows of the files before it
    con.execute(
        """CREATE TABLE files AS SELECT input_file, sum(rows) OVER (ORDER BY input_file) - rows AS base
           FROM (SELECT input_file, max(input_row) + 1 AS rows FROM read_parquet(?) GROUP BY input_file)""",
        [files],
    )
    # a signed document has a row in every band, band 0 included (`shard_bands`)
    con.execute(
        """CREATE TABLE nodes AS SELECT f.base + b.input_row AS node, b.input_file, b.input_row, b.doc_id
           FROM read_parquet(?) b JOIN files f USING (input_file) WHERE b.band = 0""",
        [files],
    )
    con.execute(
        """CREATE TABLE linked AS SELECT b.band, b.band_key, f.base + b.input_row AS node
           FROM read_parquet(?) b JOIN files f USING (input_file)""",
        [files],
    )
    count = con.execute("SELECT coalesce(max(node) + 1, 0) FROM nodes").fetchone()[0]
    # only buckets of two or more documents link anything; one band at a time keeps the
    # aggregation's hash table to one band's keys
    parts = []
    for (band,) in con.execute("SELECT DISTINCT band FROM linked ORDER BY band").fetchall():
        parts.append(
            con.execute(
                """WITH l AS (SELECT band_key, node FROM linked WHERE band = ?)
                   SELECT s.root, l.node FROM l JOIN (
                       SELECT band_key, min(node) AS root FROM l GROUP BY band_key HAVING count(*) > 1
                   ) s USING (band_key) WHERE l.node <> s.root""",
                [band],
            ).fetchnumpy()
        )
    roots_of_edges, nodes_of_edges = (
        np.concatenate([np.empty(0, np.int64)] + [np.asarray(p[k], np.int64) for p in parts]) for k in ("root", "node")
    )
    del parts
    components = connected_components(count, roots_of_edges, nodes_of_edges)
    roots = pa.table({"node": np.arange(count, dtype=np.int64), "root": components})
    del roots_of_edges, nodes_of_edges, components
    con.register("roots", roots)
    if prior_index:
        con.execute(
            """CREATE TABLE prior_match AS SELECT l.node, min(p.doc_id) AS prior_doc
               FROM linked l JOIN read_parquet(?) p ON p.band = l.band AND p.band_key = l.band_key GROUP BY l.node""",
            [prior_index],
        )
    else:
        con.execute("CREATE TABLE prior_match (node BIGINT, prior_doc VARCHAR)")
    con.execute(
        """CREATE TABLE clusters AS
           SELECT r.root, count(*) AS size, min(m.prior_doc) AS prior_doc
           FROM roots r LEFT JOIN prior_match m USING (node) GROUP BY r.root"""
    )
    table = con.sql(
        """SELECT n.input_file, n.input_row,
                  CASE WHEN c.prior_doc IS NOT NULL THEN 'near_duplicate_of_curated'
                       WHEN r.node <> r.root THEN 'near_duplicate' END AS reason,
                  CASE WHEN c.prior_doc IS NOT NULL THEN 'MinHash LSH match with a document curated by an earlier run'
                       WHEN r.node <> r.root THEN 'MinHash LSH match earlier in this run' END AS detail,
                  CASE WHEN c.prior_doc IS NOT NULL THEN c.prior_doc WHEN r.node <> r.root THEN rep.doc_id END AS duplicate_of,
                  coalesce(c.prior_doc, rep.doc_id) AS duplicate_cluster
           FROM roots r JOIN nodes n USING (node) JOIN clusters c USING (root) JOIN nodes rep ON rep.node = r.root
           WHERE c.prior_doc IS NOT NULL OR c.size > 1
           ORDER BY n.input_file, n.input_row"""
    ).to_arrow_table()
    write_table_atomic(out, table.cast(DECISIONS))
    clusters, prior_matches = con.execute(
        "SELECT (SELECT count(*) FROM clusters WHERE size > 1), (SELECT count(*) FROM prior_match)"
    ).fetchone()
    return {"decisions": table.num_rows, "clusters": clusters, "prior_matches": prior_matches}


def curated_index(bands: list[Path], final_curated: list[Path], run_id: str, signature: str, out: Path) -> int:
    """The band keys of this run's survivors: what later runs deduplicate against."""
    con = duckdb.connect()
    table = con.sql(
        """SELECT b.doc_id, ? AS run_id, b.band, b.band_key, ? AS signature
           FROM read_parquet(?) b JOIN read_parquet(?) c USING (input_file, input_row)
           ORDER BY b.band, b.band_key""",
        params=[run_id, signature, _paths(bands), _paths(final_curated)],
    ).to_arrow_table()
    write_table_atomic(out, table.cast(MINHASH_BANDS))
    return table.num_rows


def index_signature(path: str | Path) -> str | None:
    """The `signature_id` an index file's keys were made with: None for an index written before
    the column existed, "" for an empty one (nothing in it to compare)."""
    meta = pq.ParquetFile(path).metadata
    names = meta.schema.to_arrow_schema().names
    if "signature" not in names:
        return None
    if meta.num_rows == 0:
        return ""
    column = names.index("signature")
    found = set()
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            found.update(pq.read_table(path, columns=["signature"]).column(0).unique().to_pylist())
            break
        found.update({stats.min, stats.max})
    return found.pop() if len(found) == 1 else None


def sign_documents(documents: list[str], run_id: str, hasher: MinHasher, out: Path, batch_size: int = 2_000) -> int:
    """A run's index made again from its curated documents, the way `hasher` signs."""
    parts = []
    for path in documents:
        for batch in iter_parquet_batches(path, batch_size, columns=["doc_id", "text"]):
            rows = _band_rows(batch, ["doc_id"], hasher)
            rows = rows.append_column("run_id", pa.array([run_id] * rows.num_rows, pa.string()))
            rows = rows.append_column("signature", pa.array([hasher.signature_id] * rows.num_rows, pa.string()))
            parts.append(rows.select(MINHASH_BANDS.names).cast(MINHASH_BANDS))
    table = pa.concat_tables(parts) if parts else MINHASH_BANDS.empty_table()
    table = table.sort_by([("band", "ascending"), ("band_key", "ascending"), ("doc_id", "ascending")])
    write_table_atomic(out, table)
    return table.num_rows


def signed_prior_index(warehouse: Warehouse, run_id: str, hasher: MinHasher) -> list[str]:
    """The index files of earlier completed runs, all signed the way `hasher` signs. Keys made by
    another scheme or other parameters never match, so comparing them would miss every near
    duplicate silently: a run whose index was made another way is re-signed from its curated
    documents once, and the new index is attached to it in the warehouse (its old one stays, with
    its own `signature`)."""
    indexes = warehouse.completed_files_by_job("minhash_index", exclude_job=run_id)
    documents = warehouse.completed_files_by_job("documents", exclude_job=run_id)
    current = []
    for job, files in indexes.items():
        signatures = {path: index_signature(path) for path in files}
        signed = [path for path, signature in signatures.items() if signature == hasher.signature_id]
        if signed or all(signature == "" for signature in signatures.values()):
            current += signed
            continue
        tag = hashlib.sha256(hasher.signature_id.encode()).hexdigest()[:12]
        out = Path(files[0]).parent / f"minhash_index.{tag}.parquet"
        log.info(
            "re-signing the MinHash index of run %s (%s) as %s",
            job,
            sorted(set(map(str, signatures.values()))),
            hasher.signature_id,
        )
        sign_documents(documents.get(job, []), job, hasher, out)
        warehouse.add_run_files(job, "minhash_index", [out])
        current.append(str(out.resolve()))
    return sorted(current)


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
        # the hasher and its word splitter (spaCy's): once per process, here rather than in the
        # first shard
        min_hasher(self.config).band_keys(["warm up the word splitter of the shingles"])

    def map(self, batch: pa.Table) -> pa.Table:
        return shard_bands(batch, min_hasher(self.config))

    def plan(self, ctx: PlanContext) -> dict:
        prior = signed_prior_index(ctx.warehouse, ctx.run_id, min_hasher(self.config)) if self.config.against_warehouse else []
        return plan_near_dedup(ctx.map_outputs, prior, ctx.stage_dir / "decisions.parquet")

    def run_files(self, ctx: FinishContext) -> dict[str, list[str]]:
        index = ctx.run_dir / "minhash_index.parquet"
        curated_index(ctx.map_outputs, ctx.final_curated, ctx.run_id, min_hasher(self.config).signature_id, index)
        return {"minhash_index": [str(index)]}
