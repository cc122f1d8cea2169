"""Arrow schemas for every table the pipeline reads or writes.

These are the data contracts: stages, the warehouse and tests import them from here and never
restate a column list of their own.
"""

from __future__ import annotations

import pyarrow as pa

# Logical input fields. Only ``text`` is required; the physical column name of each is mappable in
# the run config (``input.text_column``, ``input.id_column``, ``input.columns``).
INPUT_REQUIRED_FIELDS = ("text",)
INPUT_OPTIONAL_FIELDS = ("id", "url", "source", "crawl_date", "language", "metadata")

TIMESTAMP = pa.timestamp("us", tz="UTC")

# Columns every curated document carries. Annotation columns exist from ingest on and stay null
# until the stage that computes them has run, so every stage reads and writes one schema.
CURATED_DOCUMENT = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),  # hash of the dedup-normalized text
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("url", pa.string()),
        pa.field("crawl_date", TIMESTAMP),
        pa.field("input_file", pa.string(), nullable=False),
        pa.field("input_row", pa.int64(), nullable=False),
        pa.field("metadata", pa.string()),  # JSON object: input metadata plus unmapped input columns
        pa.field("n_chars", pa.int64()),
        pa.field("n_words", pa.int64()),
        pa.field("n_lines", pa.int64()),
        pa.field("input_language", pa.string()),  # language the input claimed, if any
        pa.field("language", pa.string()),
        pa.field("language_score", pa.float64()),
        pa.field("toxicity_score", pa.float64()),
        pa.field("toxicity_classifier_score", pa.float64()),
        pa.field("pii_redactions", pa.int32()),
        pa.field("preselect_score", pa.float64()),
        pa.field("quality_bucket", pa.int8()),  # max over classifiers of their score buckets (0 = lowest)
        pa.field("duplicate_cluster", pa.string()),  # doc_id of the cluster representative
    ]
)

# A rejected document keeps every curated column (as it stood when it was dropped) plus why.
REJECTED_DOCUMENT = (
    CURATED_DOCUMENT.append(pa.field("stage", pa.string(), nullable=False))
    .append(pa.field("reason", pa.string(), nullable=False))
    .append(pa.field("detail", pa.string()))
    .append(pa.field("duplicate_of", pa.string()))
)

# One row per (run, stage, shard); the warehouse view sums them per stage.
STAGE_STATS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("docs_in", pa.int64(), nullable=False),
        pa.field("docs_out", pa.int64(), nullable=False),
        pa.field("docs_rejected", pa.int64(), nullable=False),
        pa.field("bytes_in", pa.int64(), nullable=False),
        pa.field("bytes_out", pa.int64(), nullable=False),
        pa.field("bytes_rejected", pa.int64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("reasons", pa.string()),  # JSON {reason: count}
        pa.field("extra", pa.string()),  # JSON: stage-specific numbers (thresholds used, ...)
    ]
)

# A global stage's decision about one document (deduplication): reject it, or only annotate the
# cluster it belongs to (reason null). Written by the plan step, read by the per-shard apply.
DECISIONS = pa.schema(
    [
        pa.field("input_file", pa.string()),
        pa.field("input_row", pa.int64()),
        pa.field("reason", pa.string()),  # null: keep, only annotate duplicate_cluster
        pa.field("detail", pa.string()),
        pa.field("duplicate_of", pa.string()),
        pa.field("duplicate_cluster", pa.string()),
    ]
)

# LSH band keys of every document of a run, by input position: the near-duplicate plan's input.
RUN_BANDS = pa.schema(
    [
        pa.field("input_file", pa.string()),
        pa.field("input_row", pa.int64()),
        pa.field("doc_id", pa.string()),
        pa.field("band", pa.int16()),
        pa.field("band_key", pa.uint64()),
    ]
)

# LSH band keys of curated documents: the near-duplicate index later runs are compared against.
MINHASH_BANDS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("band", pa.int16(), nullable=False),
        pa.field("band_key", pa.uint64(), nullable=False),
        # how the keys were made (scorers.minhash.signature_id): keys of different signatures never
        # match; absent (NULL in the view) in indexes written before it was recorded
        pa.field("signature", pa.string(), nullable=False),
    ]
)

# A file-level input problem (unreadable, corrupt, missing column): no row can be quarantined, so the
# file itself is recorded and the run goes on with the other shards.
# one input file a run read, by version: continual runs skip files whose content was curated
INPUT_FILE = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("modified", pa.string()),  # modification time, or the object store's etag
        pa.field("sha256", pa.string(), nullable=False),
    ]
)

INPUT_ERROR = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("input_file", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
    ]
)


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
