"""Sections 12 and 13: near-duplicate detection.

12 (`minhash`): MinHash signatures per core, ours (`curation.dedup.shard_bands`: read a shard,
band keys a batch at a time, write the band rows) against datatrove's `MinhashDedupSignature` in
its own `LocalPipelineExecutor` (read, sign, write its signature files), each in a child process
on one core, on the benchmark corpus. Beside the speed: on the same corpus plus planted near
copies of its articles (true 5-gram Jaccard >= 0.8 on datatrove's own shingles), the share of
planted pairs each finds as candidates (recall) and the candidate pairs each proposes whose true
Jaccard is low (false candidates).

13 (`plan`): the near-dedup plan (`curation.dedup.plan_near_dedup`: nodes, bucket links, connected
components, decisions) on synthetic band keys of 1M and 4M documents (14 bands each; 5 % of them
copies of an earlier document sharing a random non-empty subset of its bands), each in a child
process: seconds and peak RSS, and whether the decisions are exactly the planted ones.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.children import run_child
from benchmarks.probes import proc_status_kb, timed_datatrove_run

PLAN_SHARD_DOCS = 250_000
COPY_SHARE = 0.05
JACCARD = 0.8
FALSE_BELOW = 0.5  # a candidate pair this far below the LSH threshold (~0.72) is a false candidate


# ---------------------------------------------------------------- children


def child_datatrove(spec: dict) -> dict:
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
    from datatrove.pipeline.readers import ParquetReader

    pipeline = [
        ParquetReader(spec["corpus"], glob_pattern="*.parquet"),
        MinhashDedupSignature(output_folder=spec["out"], config=MinhashConfig()),
    ]
    return timed_datatrove_run(pipeline, spec["logging_dir"])


def child_ours(spec: dict) -> dict:
    """What the near-dedup stage's map step does per shard: batches read, band rows written."""
    import pyarrow.compute as pc

    from curation.dedup import shard_bands
    from schemas.config import NearDedupConfig
    from scorers.minhash import min_hasher
    from warehouse.shards import iter_parquet_batches, write_table_atomic

    def stage_batch(batch: pa.Table, path: str, offset: int) -> pa.Table:
        return pa.table(
            {
                "input_file": pa.array([path] * batch.num_rows, pa.string()),
                "input_row": pa.array(np.arange(offset, offset + batch.num_rows)),
                "doc_id": pc.cast(batch.column("id"), pa.string()),
                "text": batch.column("text"),
            }
        )

    hasher = min_hasher(NearDedupConfig())
    # one batch of one short text through every step first: the one-offs (the word splitter's
    # load, pyarrow's import of pandas on its first conversion) are no batch's cost
    shard_bands(stage_batch(pa.table({"id": ["w"], "text": ["warm up the word splitter of the shingles"]}), "w", 0), hasher)
    out = Path(spec["out"])
    started = time.perf_counter()
    rows = 0
    for index, path in enumerate(spec["files"]):
        tables, offset = [], 0
        for batch in iter_parquet_batches(path, spec["batch_size"], columns=["id", "text"]):
            batch = stage_batch(batch, path, offset)
            offset += batch.num_rows
            tables.append(shard_bands(batch, hasher))
        table = pa.concat_tables(tables)
        rows += table.num_rows
        write_table_atomic(out / f"shard-{index:05d}.parquet", table)
    return {"seconds": time.perf_counter() - started, "band_rows": rows, "vmhwm_kb": proc_status_kb("VmHWM")}


def child_plan(spec: dict) -> dict:
    from curation.dedup import plan_near_dedup

    rss_before = proc_status_kb("VmRSS")
    started = time.perf_counter()
    summary = plan_near_dedup([Path(f) for f in spec["files"]], [], Path(spec["out"]))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "summary": summary, "rss_before_kb": rss_before, "vmhwm_kb": proc_status_kb("VmHWM")}


CHILD_MODES = {"minhash-datatrove": child_datatrove, "minhash-ours": child_ours, "near-plan": child_plan}


# ---------------------------------------------------------------- section 12


def _edit_words(text: str, share: float, rng: random.Random) -> str:
    words = text.split(" ")
    for position in rng.sample(range(len(words)), max(1, int(len(words) * share))):
        words[position] = rng.choice(words)
    return " ".join(words)


def _candidate_pairs(keys_per_text: list[list]) -> set[tuple[int, int]]:
    buckets: dict[tuple, list[int]] = {}
    for index, keys in enumerate(keys_per_text):
        for band, key in enumerate(keys):
            buckets.setdefault((band, key), []).append(index)
    pairs = set()
    for members in buckets.values():
        for i, a in enumerate(members):
            pairs.update((a, b) for b in members[i + 1 :])
    return pairs


def _agreement(texts: list[str], seed: int, log) -> dict:
    """Planted copies of the corpus's longer documents at true Jaccard >= 0.8: the share each scheme finds,
    and each scheme's candidate pairs below `FALSE_BELOW`."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    from schemas.config import NearDedupConfig
    from scorers.minhash import band_keys_of

    signer = MinhashDedupSignature(output_folder=tempfile.gettempdir(), config=MinhashConfig())
    shingles = {}

    def shingle_set(index: int, all_texts: list[str]) -> set:
        if index not in shingles:
            shingles[index] = set(signer.get_shingles(all_texts[index]).ravel().tolist())
        return shingles[index]

    def jaccard(a: int, b: int, all_texts: list[str]) -> float:
        sa, sb = shingle_set(a, all_texts), shingle_set(b, all_texts)
        return len(sa & sb) / len(sa | sb) if sa | sb else 0.0

    rng = random.Random(seed)
    all_texts = list(texts)
    planted = []
    for index in [i for i, text in enumerate(texts) if len(text.split()) >= 200][:400]:
        copy = _edit_words(texts[index], rng.choice([0.005, 0.01, 0.02, 0.03]), rng)
        all_texts.append(copy)
        if jaccard(index, len(all_texts) - 1, all_texts) >= JACCARD:
            planted.append((index, len(all_texts) - 1))
        else:
            shingles.pop(len(all_texts) - 1)
    log(f"minhash agreement: {len(planted)} planted copies at Jaccard >= {JACCARD}, {len(all_texts)} texts")
    ours = band_keys_of(all_texts, NearDedupConfig())
    theirs = []
    for text in all_texts:
        found = signer.get_shingles(text)
        theirs.append([tuple(band) for band in signer.get_signature(found)] if found.size else [])
    result = {"planted_pairs": len(planted), "texts": len(all_texts)}
    for name, keys in (("ours", ours), ("datatrove", theirs)):
        pairs = _candidate_pairs(keys)
        similarity = {pair: jaccard(*pair, all_texts) for pair in pairs}
        result[name] = {
            "recall": round(sum(pair in pairs for pair in planted) / max(1, len(planted)), 4),
            "candidate_pairs": len(pairs),
            f"candidates_below_{JACCARD}": sum(j < JACCARD for j in similarity.values()),
            f"false_candidates_below_{FALSE_BELOW}": sum(j < FALSE_BELOW for j in similarity.values()),
        }
    return result


def minhash_benchmark(corpus, work: Path, seed: int, log=print) -> dict:
    from schemas.config import InputConfig

    texts = [text for path in corpus.files for text in pq.read_table(path, columns=["text"]).column("text").to_pylist()]
    log("minhash signatures: datatrove's MinhashDedupSignature (one core)")
    theirs = run_child(
        "minhash-datatrove",
        {"corpus": str(corpus.root), "out": str(work / "minhash-datatrove"), "logging_dir": str(work / "minhash-datatrove-logs")},
        work,
        "minhash-datatrove",
    )
    log("minhash signatures: ours, the near-dedup map step (one core)")
    ours = run_child(
        "minhash-ours",
        {
            "files": [str(f) for f in corpus.files],
            "out": str(work / "minhash-ours"),
            "batch_size": InputConfig.model_fields["batch_size"].default,
        },
        work,
        "minhash-ours",
    )
    docs = len(texts)
    result = {
        "docs": docs,
        "datatrove_docs_per_s": round(docs / theirs.result["seconds"], 1),
        "ours_docs_per_s": round(docs / ours.result["seconds"], 1),
        "ratio": round(theirs.result["seconds"] / ours.result["seconds"], 2),
        "datatrove_seconds": round(theirs.result["seconds"], 2),
        "ours_seconds": round(ours.result["seconds"], 2),
    }
    result["agreement"] = _agreement(texts, seed, log)
    return result


# ---------------------------------------------------------------- section 13


def synthetic_bands(folder: Path, docs: int, bands: int, seed: int) -> dict:
    """Band rows of `docs` documents in shards of `PLAN_SHARD_DOCS`: random keys, and a share of
    documents that copy an earlier non-copy's keys in a random non-empty subset of bands. Returns
    the number of copies and of originals with copies (the decisions the plan must make)."""
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, np.iinfo(np.uint64).max, size=(docs, bands), dtype=np.uint64, endpoint=True)
    is_copy = rng.random(docs) < COPY_SHARE
    is_copy[0] = False
    originals = np.flatnonzero(~is_copy)
    copies = np.flatnonzero(is_copy)
    below = np.searchsorted(originals, copies)  # originals before each copy (at least document 0)
    sources = originals[(rng.random(len(copies)) * below).astype(np.int64)]
    shared = rng.random((len(copies), bands)) < 0.5
    shared[np.arange(len(copies)), rng.integers(0, bands, len(copies))] = True
    keys[copies] = np.where(shared, keys[sources], keys[copies])
    folder.mkdir(parents=True, exist_ok=True)
    doc_ids = pa.array([f"d{i:010d}" for i in range(docs)], pa.string())
    files = []
    for shard, start in enumerate(range(0, docs, PLAN_SHARD_DOCS)):
        rows = np.arange(start, min(docs, start + PLAN_SHARD_DOCS))
        name = f"shard-{shard:05d}.parquet"
        repeated = np.repeat(rows, bands)
        table = pa.table(
            {
                "input_file": pa.array([name]).take(np.zeros(len(repeated), np.int64)),
                "input_row": pa.array(repeated - start),
                "doc_id": doc_ids.take(repeated),
                "band": pa.array(np.tile(np.arange(bands, dtype=np.int16), len(rows))),
                "band_key": pa.array(keys[rows].ravel()),
            }
        )
        pq.write_table(table, folder / name)
        files.append(str(folder / name))
    return {"files": files, "copies": int(len(copies)), "originals_with_copies": int(len(np.unique(sources)))}


def plan_benchmark(work: Path, sizes: tuple[int, ...], seed: int, log=print) -> dict:
    entries = {}
    for docs in sizes:
        log(f"near-dedup plan: synthetic band keys of {docs:,} documents")
        made = synthetic_bands(work / f"plan-{docs}", docs, 14, seed)
        child = run_child(
            "near-plan", {"files": made["files"], "out": str(work / f"plan-{docs}.decisions.parquet")}, work, f"near-plan-{docs}"
        )
        summary = child.result["summary"]
        decisions = pq.read_table(work / f"plan-{docs}.decisions.parquet", columns=["reason"]).column("reason")
        dropped = int(pa.compute.sum(pa.compute.equal(decisions, "near_duplicate")).as_py() or 0)
        entries[docs] = {
            "docs": docs,
            "seconds": round(child.result["seconds"], 2),
            "peak_rss_mb": round(child.result["vmhwm_kb"] / 1024),
            "rss_before_mb": round(child.result["rss_before_kb"] / 1024),
            "clusters": summary["clusters"],
            "dropped": dropped,
            "planted_copies": made["copies"],
            "planted_clusters": made["originals_with_copies"],
            "agrees": summary["clusters"] == made["originals_with_copies"] and dropped == made["copies"],
        }
    small, large = entries[sizes[0]], entries[sizes[-1]]
    scale = 100_000_000 / large["docs"]
    per_doc_s = (large["seconds"] - small["seconds"]) / (large["docs"] - small["docs"])
    per_doc_mb = (large["peak_rss_mb"] - small["peak_rss_mb"]) / (large["docs"] - small["docs"])
    return {
        "sizes": [entries[d] for d in sizes],
        "extrapolated_100m": {
            "seconds_linear": round(large["seconds"] + per_doc_s * (100_000_000 - large["docs"])),
            "peak_rss_gb_linear": round((large["peak_rss_mb"] + per_doc_mb * (100_000_000 - large["docs"])) / 1024, 1),
            "factor_from_largest": scale,
        },
    }
