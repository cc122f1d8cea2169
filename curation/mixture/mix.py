"""`curate mix`: a mixture spec turned into shuffled, checksummed shards and a manifest.

Steps, each over files rather than memory:
1. select: every source's candidate records to Parquet (select.py), by a thread of its own;
2. annotate: token counts with the trainer's tokenizer and decontamination verdicts, each computed
   only for texts their cache does not hold yet (warehouse/record_cache.py), source by source as
   the sources are selected;
3. usable records: clean ones, and synthetic records whose source document the mixture's documents
   sources selected (unless `include_unselected_sources`);
4. allocate: per source, whole passes over all usable records plus a seeded sample of one more
   pass, up to the requested tokens, never beyond `max_epochs`;
5. shuffle and write: a seeded permutation of every emitted copy, applied in buckets of
   `shuffle_buffer_mb` through a spill file (shuffle.py), cut into shards of `shard_tokens`;
6. manifest, then the warehouse registration (views `mixtures`, `mixture_records`, `decontaminated`).

Everything is written under `.work/` first and moved into place at the end: a mix killed at any
point leaves the previous complete mixture (or nothing), and a rerun gives the same shard bytes.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.mixture.manifest import MANIFEST_NAME, build_manifest, code_version
from curation.mixture.select import IDENTITY_COLUMNS, MixtureError, write_candidates
from curation.mixture.shuffle import bucket_sql, read_in_order, spill_by_bucket
from schemas import progress
from schemas.mixture import DECONTAMINATED, MIXTURE_RECORD, DocumentsSource, MixtureSpec, SyntheticSource
from scorers.tokens import TrainerTokenizer, load_tokenizer, serial_batches
from warehouse.arrow import numeric_array, numpy_values, string_array
from warehouse.files import sha256_file, write_json_atomic
from warehouse.memory import arrow_on_system_malloc, map_large_blocks, release_unused_memory
from warehouse.record_cache import TEXT_HASH, TEXT_HASH_SCHEME, CachePart, MissingTexts, cached_relation, find_missing, has_parts
from warehouse.shards import ShardWriter
from warehouse.warehouse import MIXTURE, Warehouse, sql_string

TOKEN_COUNT = pa.schema([TEXT_HASH, pa.field("tokens", pa.int64(), nullable=False)])
VERDICT = pa.schema([TEXT_HASH, pa.field("eval_set", pa.string()), pa.field("ngram", pa.string())])
DECONTAMINATED_FILE = "decontaminated.parquet"
CACHE_BATCH = 2048  # texts per tokenizer / decontamination call
SHUFFLE_BATCH = 2048  # rows per batch of the shuffle's first pass
SHARD_ROW_GROUP = 2048  # rows per row group of a shard (fewer where a shard ends)


def mixture_dir(spec: MixtureSpec) -> Path:
    return Path(spec.output_root) / spec.directory_name


def mix(spec: MixtureSpec, *, force: bool = False) -> dict:
    """Materialise `spec`; returns the summary the CLI prints (the manifest's path and shares)."""
    map_large_blocks()
    with arrow_on_system_malloc():
        return _mix(spec, force)


def _mix(spec: MixtureSpec, force: bool) -> dict:
    warehouse = Warehouse(spec.warehouse)
    out = mixture_dir(spec).resolve()
    with ThreadPoolExecutor(max_workers=2) as pool:
        loading = pool.submit(
            load_tokenizer, spec.tokenizer.path, append_eos=spec.tokenizer.append_eos, eos_token=spec.tokenizer.eos_token
        )
        # git runs in processes of its own, on a core the GIL-bound start leaves idle
        versioning = pool.submit(code_version)
        # one warehouse connection both finds a completed mixture of this id and registers this
        # one: each connection costs ~0.02 s, and nothing else can run while the tokenizer loads
        if not warehouse.job_started(MIXTURE, spec.mixture_id, out, spec.model_dump(mode="json")) and not force:
            raise MixtureError(f"mixture {spec.mixture_id} already exists ({out}): use --force to replace it")
        try:
            groups = _decontamination_groups(spec, warehouse)
            tokenizer = loading.result()  # a tokenizer or an eval set that does not load fails the job here
            return _materialise(spec, warehouse, out, tokenizer, groups, versioning.result())
        except BaseException as err:
            warehouse.job_failed(MIXTURE, spec.mixture_id, f"{type(err).__name__}: {err}")
            raise


@dataclass(frozen=True)
class _DecontaminationGroup:
    """Records whose `language` meets `condition` (SQL over the candidates), checked against the
    eval sets of one decontaminator."""

    label: str
    condition: str
    decontaminator: object  # scorers.decontamination.Decontaminator


def _decontamination_groups(spec: MixtureSpec, warehouse: Warehouse) -> list[_DecontaminationGroup]:
    """Which records are checked against which eval sets. With no eval set naming a language (the
    default), one group: every record against every set. Otherwise a record in language L meets
    the sets without a language and those of L; a record of unknown language meets them all (a
    leak cannot be ruled out); a record in a language no set names meets the sets without one."""
    settings = spec.decontamination
    if not settings.enabled:
        return []
    sets = settings.eval_sets
    languages = sorted({s.language for s in sets if s.language})
    if not languages:
        return [_DecontaminationGroup("all records", "true", _decontaminator(settings, sets, warehouse))]
    general = [s for s in sets if s.language is None]
    groups = [
        _DecontaminationGroup(
            f"language {language}",
            f"language = {_quoted(language)}",
            _decontaminator(settings, general + [s for s in sets if s.language == language], warehouse),
        )
        for language in languages
    ]
    if general:
        others = f"language NOT IN ({', '.join(map(_quoted, languages))})"
        groups.append(_DecontaminationGroup("other languages", others, _decontaminator(settings, general, warehouse)))
    groups.append(_DecontaminationGroup("unknown language", "language IS NULL", _decontaminator(settings, sets, warehouse)))
    return groups


def _decontaminator(settings, sets, warehouse: Warehouse):
    from scorers.decontamination import Decontaminator

    # the sets' languages decide which records meet them, not what is indexed
    key = repr((settings.n_gram, [s.model_dump(exclude={"language"}) for s in sets]))
    return Decontaminator.build(sets, settings.n_gram, warehouse.cache_dir("decontamination-index", key))


def _materialise(
    spec: MixtureSpec,
    warehouse: Warehouse,
    out: Path,
    tokenizer: TrainerTokenizer,
    groups: list[_DecontaminationGroup],
    code: str,
) -> dict:
    started = time.monotonic()
    work = out / ".work"
    shutil.rmtree(work, ignore_errors=True)
    candidates = {source.name: work / "candidates" / f"{source.name}.parquet" for source in spec.sources}
    progress.stage_started("mix: select", len(spec.sources))
    con = duckdb.connect()
    try:
        con.execute(f"SET temp_directory = {_quoted(work / 'duckdb-tmp')}")
        tokens_dir = warehouse.cache_dir("token-counts", f"{TEXT_HASH_SCHEME}:{tokenizer.identity}")
        verdicts_dirs = [
            warehouse.cache_dir("decontamination", f"{TEXT_HASH_SCHEME}:{group.decontaminator.identity}") for group in groups
        ]
        jobs = [
            _CacheJob(tokens_dir, TOKEN_COUNT, "true", lambda texts: _token_rows(tokenizer, texts), "mix: tokens", shared=True)
        ]
        for group, verdicts_dir in zip(groups, verdicts_dirs, strict=True):
            jobs.append(
                _CacheJob(
                    verdicts_dir,
                    VERDICT,
                    group.condition,
                    lambda texts, d=group.decontaminator: _verdict_rows(d, texts),
                    "mix: decontaminate" if len(groups) == 1 else f"mix: decontaminate ({group.label})",
                )
            )
        # the threads are ours (see _fill_caches); each source's texts are computed while the next
        # source is selected
        with serial_batches(), _Selection(warehouse, spec.sources, candidates) as selected:
            _fill_caches(con, selected, jobs)
        release_unused_memory()
        _annotate(con, spec, candidates, tokens_dir, list(zip(groups, verdicts_dirs, strict=True)))
        allocation = _allocate(con, spec)
        _plan_emitted(con, spec, work, allocation)
        # the removed records, the accounting and the lineage read the tables on a cursor of their
        # own while the shards are written: a core would otherwise wait through them
        with ThreadPoolExecutor(max_workers=1) as pool:
            side = pool.submit(_side_outputs, con.cursor(), warehouse, spec, candidates, work, allocation, groups)
            shards = _write_shards(con, spec, candidates, work)
            stats, lineage = side.result()
        release_unused_memory()
    finally:
        con.close()
    manifest = build_manifest(spec, tokenizer, stats, shards, lineage, code)
    write_json_atomic(work / MANIFEST_NAME, manifest)
    published = _publish(work, out, [s["path"] for s in shards])
    shutil.rmtree(work, ignore_errors=True)
    summary = {
        "mixture_id": spec.mixture_id,
        "manifest": str(out / MANIFEST_NAME),
        "spec_hash": manifest["spec_hash"],
        "tokens": manifest["totals"]["tokens"],
        "records": manifest["totals"]["records"],
        "shards": manifest["totals"]["shards"],
        "sources": manifest["sources"],
        "seconds": round(time.monotonic() - started, 3),
    }
    warehouse.job_completed(
        MIXTURE,
        spec.mixture_id,
        {"mixture_records": published, "decontaminated": [out / DECONTAMINATED_FILE]},
        summary,
        output_dir=out,
        config=spec.model_dump(mode="json"),
    )
    _remove_stale_shards(out, [s["path"] for s in shards])
    return summary


def _quoted(path) -> str:
    return sql_string(str(path))


# ---------------------------------------------------------------------------------------- caches


def _token_rows(tokenizer: TrainerTokenizer, texts: pa.StringArray) -> dict:
    return {"tokens": numeric_array(tokenizer.count_batch(texts.to_pylist()))}


def _verdict_rows(decontaminator, texts: pa.StringArray) -> dict:
    verdicts = decontaminator.check(texts)
    return {
        "eval_set": string_array([v[0] if v else None for v in verdicts]),
        "ngram": string_array([v[1] if v else None for v in verdicts]),
    }


@dataclass(frozen=True)
class _CacheJob:
    """Facts to compute for the texts a cache lacks among the candidates meeting `where`."""

    cache_dir: Path
    schema: pa.Schema
    where: str
    compute: Callable[[pa.StringArray], dict]
    step: str
    # computed by every core in small batches (the tokenizer: Rust, without the GIL); the other
    # jobs run in the main thread, which computes the shared job's batches between its own
    shared: bool = False


SHARED_BATCH = 256  # texts per batch of the shared job: small, so no core idles long at the end


class _Selection:
    """The sources' candidate files, written in spec order by a thread of its own; iterating
    gives each one as soon as it is complete (and raises the error of one that failed), so a
    source's texts are computed while the next is selected: that work is DuckDB's and Arrow's,
    outside the GIL, and a core would otherwise wait through it. One source at a time: a
    warehouse source's statement sorts its texts, and two at once would add up in the mix's peak
    memory (~25 MB at 4x the benchmark's mixture, for ~0.05 s)."""

    def __init__(self, warehouse: Warehouse, sources: list, candidates: dict[str, Path]):
        self._selected: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._select, args=(warehouse, sources, candidates), daemon=True)

    def __enter__(self) -> _Selection:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop after the source being selected (a caller that failed needs no more) and wait."""
        self._stopping.set()
        self._thread.join()

    def __iter__(self) -> Iterator[Path]:
        while (selected := self._selected.get()) is not None:
            if isinstance(selected, BaseException):
                raise selected
            yield selected

    def _select(self, warehouse: Warehouse, sources: list, candidates: dict[str, Path]) -> None:
        try:
            for source in sources:
                if self._stopping.is_set():
                    break
                rows = write_candidates(warehouse, source, candidates[source.name])
                progress.shard_done("mix: select", source.name, rows, rows)
                self._selected.put(candidates[source.name])
        except BaseException as err:  # noqa: BLE001 - handed to the iterating thread, which raises it
            self._selected.put(err)
        else:
            self._selected.put(None)


def _fill_caches(con, selected: Iterable[Path], jobs: list[_CacheJob]) -> None:
    """Fill every job's cache with one read of the texts, file by file as `selected` gives them:
    the texts any cache lacks (and no earlier file holds) are streamed once, and each batch goes
    to every job that lacks some of it. The shared job (token counts) is computed by one worker
    per core but one and by the main thread whenever it is not computing the other jobs
    (decontamination), so every core stays busy and none is asked to run two threads; a short
    queue keeps memory to a few batches whatever the mixture's size."""
    files: list[Path] = []
    batches = [0] * len(jobs)
    with ExitStack() as stack:
        parts = [stack.enter_context(CachePart(job.cache_dir, job.schema)) for job in jobs]
        shared = {i: _SharedJob(job, parts[i]) for i, job in enumerate(jobs) if job.shared}
        try:
            for path in selected:
                files.append(path)
                missing = [m.newest_file() for m in _missing_of(con, files, jobs)]
                for index, (job, m) in enumerate(zip(jobs, missing, strict=True)):
                    # a stage's total grows with each file: reporters take the latest
                    batches[index] += math.ceil(m.count / (SHARED_BATCH if job.shared else CACHE_BATCH))
                    progress.stage_started(job.step, batches[index])
                _compute_missing(jobs, missing, parts, shared)
            for helped in shared.values():
                helped.finish()
        finally:
            for helped in shared.values():
                helped.stop()


def _compute_missing(jobs: list[_CacheJob], missing: list[MissingTexts], parts: list[CachePart], shared: dict) -> None:
    wanted = [m.keys() for m in missing]
    union = MissingTexts.union(missing)
    keys, read = union.keys(), 0
    for batch in union.batches(CACHE_BATCH):
        batch_keys = keys[read : read + batch.num_rows]
        read += batch.num_rows
        for index, job in enumerate(jobs):
            own = _rows_of(batch, batch_keys, wanted[index])
            if own is None:
                continue
            if job.shared:
                for start in range(0, own.num_rows, SHARED_BATCH):
                    shared[index].submit(own.slice(start, SHARED_BATCH))
            else:
                parts[index].write(_computed(own, job))


def _missing_of(con, files: list[Path], jobs: list[_CacheJob]) -> list[MissingTexts]:
    """Each job's missing texts; jobs over empty caches with the same condition share one query."""
    found: dict[object, MissingTexts] = {}
    missing = []
    for job in jobs:
        key = job.where if not has_parts(job.cache_dir) else (job.cache_dir, job.where)
        if key not in found:
            found[key] = find_missing(con, job.cache_dir, job.schema, files, job.where)
        missing.append(found[key])
    return missing


class _SharedJob:
    """A job's batches computed by worker threads (one per core but one) and by the main thread
    while the queue is full; the results go to one cache part."""

    def __init__(self, job: _CacheJob, part: CachePart):
        self.job, self.part = job, part
        self._lock = threading.Lock()  # the part's writer is not thread-safe
        workers = max(1, len(os.sched_getaffinity(0)) - 1)
        self._queue: queue.Queue = queue.Queue(maxsize=2 * workers)
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, batch: pa.Table) -> None:
        while True:
            self._raise_error()
            try:
                self._queue.put_nowait(batch)
                return
            except queue.Full:
                self._help()

    def finish(self) -> None:
        """Compute what is left, with the workers, and wait for them."""
        while self._help():
            pass
        self.stop()
        self._raise_error()

    def stop(self) -> None:
        """End the workers (after the batches queued before this); a second call does nothing."""
        threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)  # each worker takes one and ends
        for thread in threads:
            thread.join()

    def _help(self) -> bool:
        try:
            batch = self._queue.get_nowait()
        except queue.Empty:
            return False
        if batch is None:  # a worker's end marker: give it back
            self._queue.put(None)
            return False
        self._compute(batch)
        return True

    def _work(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                self._compute(batch)
            except BaseException as err:  # noqa: BLE001 - handed to the main thread, which raises it
                self._errors.append(err)

    def _compute(self, batch: pa.Table) -> None:
        table = _computed(batch, self.job)
        with self._lock:
            self.part.write(table)

    def _raise_error(self) -> None:
        if self._errors:
            raise self._errors[0]


def _rows_of(batch: pa.Table, batch_keys: np.ndarray, wanted: np.ndarray) -> pa.Table | None:
    """The rows of a batch a job lacks (`wanted`: its sorted row keys), or None for none."""
    if not len(wanted):
        return None
    slots = np.minimum(np.searchsorted(wanted, batch_keys), len(wanted) - 1)
    own = wanted[slots] == batch_keys
    if own.all():
        return batch
    return batch.filter(pa.array(own)) if own.any() else None


def _computed(batch: pa.Table, job: _CacheJob) -> pa.Table:
    values = job.compute(batch.column("text").combine_chunks())
    table = pa.table({"text_hash": batch.column("text_hash"), **values}, schema=job.schema)
    progress.shard_done(job.step, "batch", batch.num_rows, batch.num_rows)
    return table


# ---------------------------------------------------------------------------------------- selection


def _annotate(
    con, spec: MixtureSpec, candidates: dict[str, Path], tokens_dir: Path, verdicts: list[tuple[_DecontaminationGroup, Path]]
) -> None:
    """One table `records` of every candidate with its tokens, its verdict and whether it is usable.
    A record's verdict is the one its decontamination group's eval sets gave its text."""
    tokens = cached_relation(con, tokens_dir, TOKEN_COUNT)
    if verdicts:
        verdict_relation = " UNION ALL ".join(
            f"SELECT text_hash, eval_set, ngram, {index} AS decontamination_group FROM {cached_relation(con, folder, VERDICT)}"
            for index, (_, folder) in enumerate(verdicts)
        )
        group_of = "CASE " + " ".join(f"WHEN {g.condition} THEN {i}" for i, (g, _) in enumerate(verdicts)) + " END"
    else:
        verdict_relation = (
            "SELECT NULL::VARCHAR AS text_hash, NULL::VARCHAR AS eval_set, NULL::VARCHAR AS ngram, "
            "NULL::INTEGER AS decontamination_group WHERE false"
        )
        group_of = "NULL::INTEGER"
    # every source's candidates, then one join with each cache (a join per source reads the
    # caches once per source)
    candidates_sql = " UNION ALL ".join(
        f"""SELECT {index} AS source_index, {_quoted(source.name)} AS source, {_quoted(source.kind)} AS source_kind,
                   row, text_hash, text_bytes, {", ".join(IDENTITY_COLUMNS)}, {group_of} AS decontamination_group
            FROM read_parquet({_quoted(candidates[source.name])})"""
        for index, source in enumerate(spec.sources)
    )
    con.execute(
        f"""CREATE TABLE records AS
            SELECT c.source_index, c.source, c.source_kind, c.row, c.text_hash, c.text_bytes,
                   {", ".join(f"c.{name}" for name in IDENTITY_COLUMNS)}, t.tokens, v.eval_set, v.ngram
            FROM ({candidates_sql}) c JOIN {tokens} t USING (text_hash)
            LEFT JOIN ({verdict_relation}) v USING (text_hash, decontamination_group)"""
    )
    con.execute("ALTER TABLE records ADD COLUMN unselected_source BOOLEAN DEFAULT false")
    if any(isinstance(s, DocumentsSource) for s in spec.sources):
        excluded = [i for i, s in enumerate(spec.sources) if isinstance(s, SyntheticSource) and not s.include_unselected_sources]
        if excluded:
            con.execute(
                f"""UPDATE records r SET unselected_source = true
                    WHERE r.source_index IN ({", ".join(map(str, excluded))}) AND NOT EXISTS (
                        SELECT 1 FROM records d WHERE d.source_kind = 'documents' AND d.eval_set IS NULL
                        AND d.run_id = r.run_id AND d.doc_id = r.doc_id)"""
            )


def _write_decontaminated(con, spec: MixtureSpec, candidates: dict[str, Path], path: Path) -> None:
    """The removed records, queryable with the eval set and the n-gram they share with it. Their
    texts are picked from the candidates by row number, not joined from every candidate (the
    candidate files are in about the warehouse's order, mostly the rows' own, so DuckDB's row-group
    statistics skip most of the others)."""
    sources = {i for (i,) in con.sql("SELECT DISTINCT source_index FROM records WHERE eval_set IS NOT NULL").fetchall()}
    with ShardWriter(path, DECONTAMINATED) as writer:
        for index, source in enumerate(spec.sources):
            if index not in sources:
                continue
            removed = f"SELECT * FROM records WHERE source_index = {index} AND eval_set IS NOT NULL"
            table = con.sql(
                f"""SELECT {_quoted(spec.mixture_id)} AS mixture_id, r.source, r.record_id, r.doc_id, r.eval_set, r.ngram, c.text
                    FROM ({removed}) r JOIN (
                        SELECT row, text FROM read_parquet({_quoted(candidates[source.name])}) WHERE row IN (SELECT row FROM ({removed}))
                    ) c USING (row)
                    ORDER BY r.row"""
            ).to_arrow_table()
            writer.write(table)


# ---------------------------------------------------------------------------------------- allocation


def _source_rng(seed: int, name: str) -> np.random.Generator:
    """A source's own stream: adding or renaming another source never changes this one's sample."""
    return np.random.default_rng([seed, int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)])


def _allocate(con, spec: MixtureSpec) -> dict[str, dict]:
    """Per source: which candidate rows are emitted, how many times each (epochs), and the totals."""
    allocation = {}
    for index, source in enumerate(spec.sources):
        usable = con.sql(
            f"SELECT row, tokens FROM records WHERE source_index = {index} AND eval_set IS NULL AND NOT unselected_source ORDER BY row"
        ).to_arrow_table()
        rows = numpy_values(usable.column("row"))
        tokens = numpy_values(usable.column("tokens"))
        allocation[source.name] = _allocate_source(spec, source, rows, tokens)
    return allocation


def _allocate_source(spec: MixtureSpec, source, rows: np.ndarray, tokens: np.ndarray) -> dict:
    requested = int(round(source.weight * spec.target_tokens))
    available = int(tokens.sum())
    if available == 0:
        raise MixtureError(
            f"source {source.name!r} has no usable records left (after decontamination and the source-document rule): "
            "widen its selection or drop the source"
        )
    if requested > available * source.max_epochs:
        possible = int(available * source.max_epochs)
        raise MixtureError(
            f"source {source.name!r} cannot give its {requested:,} tokens (weight {source.weight:g} of target_tokens "
            f"{spec.target_tokens:,}): it has {available:,} usable tokens, {possible:,} within max_epochs {source.max_epochs:g}, "
            f"{requested - possible:,} missing. Raise max_epochs to {math.ceil(requested / available * 100) / 100:g}, "
            f"lower its weight or target_tokens, or widen its selection"
        )
    passes = requested // available
    remainder = requested - passes * available
    order = _source_rng(spec.seed, source.name).permutation(len(rows))
    cumulative = np.cumsum(tokens[order])
    partial = order[: int(np.searchsorted(cumulative, remainder, side="left")) + 1] if remainder > 0 else order[:0]
    emitted_rows = np.concatenate([np.tile(rows, passes), rows[partial]])
    epochs = np.concatenate([np.repeat(np.arange(passes, dtype=np.int32), len(rows)), np.full(len(partial), passes, np.int32)])
    emitted_tokens = int(tokens.sum() * passes + tokens[partial].sum())
    return {
        "rows": emitted_rows,
        "epochs": epochs,
        "requested_tokens": requested,
        "tokens": emitted_tokens,
        "available_tokens": available,
        "available_records": len(rows),
    }


# ---------------------------------------------------------------------------------------- shuffle and shards


RECORD_METADATA = ("source", "source_kind", *IDENTITY_COLUMNS)


def _columns(alias: str, names: tuple[str, ...]) -> str:
    return ", ".join(f"{alias}.{name}" for name in names)


def _side_outputs(cursor, warehouse: Warehouse, spec: MixtureSpec, candidates: dict[str, Path], work: Path, allocation, groups):
    try:
        _write_decontaminated(cursor, spec, candidates, work / DECONTAMINATED_FILE)
        return _source_stats(cursor, spec, allocation), _lineage(cursor, warehouse, spec, groups)
    finally:
        cursor.close()


def _plan_emitted(con, spec: MixtureSpec, work: Path, allocation: dict[str, dict]) -> None:
    """Table `emitted`: every emitted copy with its shuffled position, tokens, identity, epoch and
    shuffle bucket."""
    total = sum(len(a["rows"]) for a in allocation.values())
    positions = np.random.default_rng([spec.seed, 1]).permutation(total)
    plan_parts, offset = [], 0
    for index, source in enumerate(spec.sources):
        chosen = allocation[source.name]
        n = len(chosen["rows"])
        plan_parts.append(
            pa.table(
                {
                    "source_index": numeric_array(np.full(n, index), pa.int32()),
                    "row": numeric_array(chosen["rows"]),
                    "epoch": numeric_array(chosen["epochs"], pa.int32()),
                    "position": numeric_array(positions[offset : offset + n]),
                }
            )
        )
        offset += n
    # through a file: DuckDB's Python scans of Arrow objects import pandas, a quarter second
    plan_file = work / "plan.parquet"
    pq.write_table(pa.concat_tables(plan_parts), plan_file, compression="none")
    con.execute(
        f"""CREATE TABLE emitted AS
            SELECT p.position, p.source_index, p.row, r.tokens, {_columns("r", RECORD_METADATA)}, p.epoch,
                   {bucket_sql("r.text_bytes", "p.position", spec.shuffle_buffer_bytes)} AS bucket
            FROM read_parquet({_quoted(plan_file)}) p JOIN records r USING (source_index, row)"""
    )


def _write_shards(con, spec: MixtureSpec, candidates: dict[str, Path], work: Path) -> list[dict]:
    """The emitted copies with their texts, in position order (shuffle.py), cut into shards."""
    texts = " UNION ALL ".join(
        f"SELECT {i} AS source_index, row, text FROM read_parquet({_quoted(candidates[s.name])})"
        for i, s in enumerate(spec.sources)
    )
    # the hash table is built on the emitted copies (no texts) and the texts stream past it.
    # DuckDB's optimizer would build it on the texts, the narrower side of the same row count,
    # holding every text; the right side of a join is the build side once that choice is off. The
    # setting is global to the database: this in-memory one is the mix's own
    cursor = con.cursor()
    try:
        cursor.execute("SET disabled_optimizers = 'build_side_probe_side'")
        reader = cursor.sql(
            f"""SELECT e.bucket, e.position, t.text, e.tokens, {_columns("e", RECORD_METADATA)}, e.epoch,
                       {_quoted(spec.mixture_id)} AS mixture_id
                FROM ({texts}) t JOIN emitted e USING (source_index, row)"""
        ).fetch_record_batch(SHUFFLE_BATCH)
        spill = work / "shuffle.arrow"
        pieces = spill_by_bucket(reader, spill)
    finally:
        cursor.close()
    shards = _cut_shards(read_in_order(spill, pieces, SHARD_ROW_GROUP), work, spec.shard_tokens)
    spill.unlink(missing_ok=True)
    return shards


def _cut_shards(tables: Iterable[pa.Table], work: Path, shard_tokens: int) -> list[dict]:
    """Rows in order into shards that close once they hold `shard_tokens` tokens. Each table, or
    its part in one shard, is a row group: the row groups follow from the tables' sizes (for a
    mix, `SHARD_ROW_GROUP` rows counted from the first position) and from nothing else. One shard is
    written at a time: compressing two at once saved ~0.05 s of ~3.6 and added 25-50 MB to the
    peak at 4x the benchmark's mixture (two writers' buffers, and the batches their rows hold)."""
    shards, writer, tokens = [], None, 0
    try:
        for table in tables:
            counts = numpy_values(table.column("tokens"))
            start = 0
            while start < table.num_rows:
                if writer is None:
                    writer = ShardWriter(work / f"shard-{len(shards):05d}.parquet", MIXTURE_RECORD).__enter__()
                    tokens = 0
                # rows up to and including the one that reaches the shard's size
                take = int(np.searchsorted(np.cumsum(counts[start:]), shard_tokens - tokens, side="left")) + 1
                writer.write(table.slice(start, take))
                tokens += int(counts[start : start + take].sum())
                start += take
                if tokens >= shard_tokens:
                    shards.append(_closed(writer, tokens))
                    writer = None
        if writer is not None:
            shards.append(_closed(writer, tokens))
            writer = None
    finally:
        if writer is not None:  # unfinished: its temporary file goes
            writer.__exit__(RuntimeError, None, None)
    return shards


def _closed(writer: ShardWriter, tokens: int) -> dict:
    writer.__exit__(None, None, None)
    path = writer.path
    return {"path": path.name, "rows": writer.rows, "bytes": path.stat().st_size, "tokens": tokens, "sha256": sha256_file(path)}


# ---------------------------------------------------------------------------------------- accounting


def _source_stats(con, spec: MixtureSpec, allocation: dict[str, dict]) -> dict[str, dict]:
    total = sum(a["tokens"] for a in allocation.values())
    stats = {}
    for index, source in enumerate(spec.sources):
        chosen = allocation[source.name]
        removed = con.sql(
            f"SELECT eval_set, count(*) FROM records WHERE source_index = {index} AND eval_set IS NOT NULL GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        unselected = con.sql(
            f"SELECT count(*) FROM records WHERE source_index = {index} AND unselected_source AND eval_set IS NULL"
        ).fetchall()[0][0]
        candidates = con.sql(f"SELECT count(*) FROM records WHERE source_index = {index}").fetchall()[0][0]
        stats[source.name] = {
            "kind": source.kind,
            "requested_share": source.weight,
            "realised_share": chosen["tokens"] / total if total else 0.0,
            "requested_tokens": chosen["requested_tokens"],
            "tokens": chosen["tokens"],
            "records": int(len(chosen["rows"])),
            "unique_records": int(len(np.unique(chosen["rows"]))),
            "candidate_records": int(candidates),
            "available_records": chosen["available_records"],
            "available_tokens": chosen["available_tokens"],
            "epochs": chosen["tokens"] / chosen["available_tokens"],
            "max_epochs": source.max_epochs,
            "decontaminated": dict(removed),
            "unselected_source_records": int(unselected),
        }
    return stats


def _lineage(con, warehouse: Warehouse, spec: MixtureSpec, groups: list[_DecontaminationGroup]) -> dict:
    """What the emitted records came from: runs, rewrites, the scorers those runs used, styles and models."""
    runs = [r[0] for r in con.sql("SELECT DISTINCT run_id FROM emitted WHERE run_id IS NOT NULL ORDER BY 1").fetchall()]
    rewrites = [
        r[0] for r in con.sql("SELECT DISTINCT rewrite_id FROM emitted WHERE rewrite_id IS NOT NULL ORDER BY 1").fetchall()
    ]
    lineage = {"runs": runs, "rewrite_ids": rewrites, "scorer_ids": [], "styles": [], "models": [], "eval_sets": []}
    if runs or rewrites:
        # one connection for all three questions: opening the warehouse costs ~20 ms each time
        with warehouse.connect(read_only=True) as catalogue:
            if runs:
                lineage["scorer_ids"] = _scorers_of_runs(catalogue, runs)
            if rewrites:
                listed = ", ".join(_quoted(r) for r in rewrites)
                lineage["styles"] = _rows(
                    catalogue,
                    f"SELECT DISTINCT style, template_version, template_hash FROM synthetic WHERE rewrite_id IN ({listed}) ORDER BY ALL",
                )
                lineage["models"] = _rows(
                    catalogue,
                    f"SELECT DISTINCT model_name, model_hash, engine FROM synthetic WHERE rewrite_id IN ({listed}) ORDER BY ALL",
                )
    if groups:
        language = {s.name: s.language for s in spec.decontamination.eval_sets}
        entries = {e["name"]: e for group in groups for e in group.decontaminator.eval_sets}
        lineage["eval_sets"] = [{**entries[name], "language": language[name]} for name in sorted(entries)]
    return lineage


def _rows(con, sql: str) -> list[dict]:
    return con.sql(sql).to_arrow_table().to_pylist()


def _scorers_of_runs(catalogue, runs: list[str]) -> list[str]:
    import json

    listed = ", ".join(_quoted(r) for r in runs)
    scorers = set()
    for row in _rows(catalogue, f"SELECT config FROM runs WHERE run_id IN ({listed})"):
        scoring = (json.loads(row["config"] or "{}") or {}).get("scoring") or {}
        if not scoring.get("enabled"):
            continue
        preselect = scoring.get("preselect") or {}
        if preselect.get("scorer_dir"):
            scorers.add(Path(preselect["scorer_dir"]).name)
        for classifier in scoring.get("classifiers") or []:
            scorers.add(classifier.get("name") or Path(classifier.get("path", "")).name)
    return sorted(scorers)


def _publish(work: Path, out: Path, shard_names: list[str]) -> list[Path]:
    """Move the new mixture into place: the old manifest goes first (a mixture without one is
    incomplete), then the shards, then the new manifest. Shards of an earlier version beyond the new
    count stay until the warehouse no longer lists them (`_remove_stale_shards`): a view over a
    missing file would fail every query of the warehouse."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    for name in [*shard_names, DECONTAMINATED_FILE]:
        (work / name).replace(out / name)
    (work / MANIFEST_NAME).replace(out / MANIFEST_NAME)
    return [out / name for name in shard_names]


def _remove_stale_shards(out: Path, shard_names: list[str]) -> None:
    keep = set(shard_names)
    for stale in out.glob("shard-*.parquet"):
        if stale.name not in keep:
            stale.unlink()
