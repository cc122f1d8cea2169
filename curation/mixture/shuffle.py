"""The mixture's global shuffle in bounded memory: a two-pass bucket shuffle through one spill file.

Every emitted copy has a random `position` and a `bucket` (`mix._plan_emitted`): the positions in
order are cut into consecutive ranges, each starting a new bucket once the texts before it fill
the budget, so a bucket holds at most the budget's bytes of text plus one record. The first pass
streams the copies with their texts, in whatever order the join yields them, into one Arrow IPC
file, each batch split by bucket so that a bucket's pieces can be read alone. The second pass reads
one bucket at a time, orders it by position and hands it on in chunks of a fixed number of rows
counted from the first position, so the output does not depend on where the buckets fall.

Why not DuckDB's `ORDER BY` over the texts: its sort held two to three times the texts in memory
(+62-65 MB over the phase at 4x the benchmark's mixture, +29 MB at 1x) and, under a `memory_limit`
of 64 MB, failed with out-of-memory errors rather than spilling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from warehouse.arrow import numeric_array, numpy_values

BUCKET, POSITION = "bucket", "position"


def spill_by_bucket(batches: Iterable[pa.RecordBatch], path: Path) -> list[list[int]]:
    """Every batch's rows, grouped by their `bucket` column (dropped), into the IPC file `path`:
    for each bucket in order, the numbers of the file's record batches that hold its rows."""
    pieces: dict[int, list[int]] = {}
    written = 0
    writer = None
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            buckets = numpy_values(batch.column(BUCKET))
            order = np.argsort(buckets, kind="stable")
            grouped = batch.drop_columns([BUCKET]).take(numeric_array(order))
            if writer is None:
                writer = pa.ipc.new_file(str(path), grouped.schema)
            ordered = buckets[order]
            starts = np.flatnonzero(np.diff(ordered, prepend=ordered[0] - 1))
            for start, end in zip(starts, [*starts[1:], len(ordered)], strict=True):
                writer.write_batch(grouped.slice(int(start), int(end - start)))
                pieces.setdefault(int(ordered[start]), []).append(written)
                written += 1
    finally:
        if writer is not None:
            writer.close()
    return [pieces[bucket] for bucket in sorted(pieces)]


def read_in_order(path: Path, pieces: list[list[int]], chunk_rows: int) -> Iterator[pa.Table]:
    """The spilled rows in `position` order, in tables of `chunk_rows` rows (the last may be
    shorter). The file is read, not memory-mapped: a mapping's pages would count towards the
    process's memory until the whole file had been read. One bucket's rows are held at a time,
    twice while they are put in order (as read and in order), and the few rows that wait for the
    next bucket to complete their chunk."""
    if not pieces:
        return
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_file(source)
        yield from _chunks_of((_in_order(reader, numbers) for numbers in pieces), chunk_rows)


def _in_order(reader: pa.ipc.RecordBatchFileReader, numbers: list[int]) -> pa.Table:
    bucket = pa.Table.from_batches([reader.get_batch(number) for number in numbers], reader.schema)
    return bucket.take(numeric_array(np.argsort(numpy_values(bucket.column(POSITION)))))


def _chunks_of(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The rows of `tables`, in order, in single-chunk tables of `rows` rows; the last may be
    shorter. Slices of one table are not copied; a chunk that spans two tables is."""
    held: list[pa.Table] = []
    count = 0
    for table in tables:
        start = 0
        while start < table.num_rows:
            take = min(rows - count, table.num_rows - start)
            held.append(table.slice(start, take))
            count += take
            start += take
            if count == rows:
                yield pa.concat_tables(held).combine_chunks()
                held, count = [], 0
        if held:  # copied: a slice of this table would keep all of it while the next one is made
            held = [pa.concat_tables(held).take(numeric_array(np.arange(count)))]
    if held:
        yield pa.concat_tables(held).combine_chunks()


def bucket_sql(bytes_column: str, position_column: str, budget_bytes: int) -> str:
    """SQL for a row's bucket: the bytes of every row before it in position order, over the budget."""
    before = f"(sum({bytes_column}) OVER (ORDER BY {position_column}) - {bytes_column})"
    return f"({before} // {budget_bytes})::BIGINT"
