"""A mixture's records in training order with their token ids, checked against the manifest.

Every export format reads the mixture through `TokenizedRecords`: it tokenizes each batch with the
trainer's tokenizer and fails on the first record whose id count differs from its `tokens` column,
and, once the last record is through, on any source (or the whole mixture) whose totals differ from
the manifest. A mismatch means the exported files would not be what the manifest says was trained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from curation.mixture.manifest import iter_batches

Progress = Callable[[int, int], None]  # (tokens done, tokens in the mixture)

BATCH_ROWS = 4096


class ExportError(ValueError):
    """An export that cannot be made, or whose tokens do not match the mixture's manifest."""


@dataclass(frozen=True)
class TokenizedBatch:
    shard: int  # index of the mixture shard the rows come from
    rows: pa.RecordBatch
    ids: list[list[int]]  # token ids of each row, the end-of-document token included


class TokenizedRecords:
    """Iterate once over the mixture; `finish()` then checks the totals against the manifest."""

    def __init__(self, manifest: dict, tokenizer, progress: Progress | None = None, columns: list[str] | None = None):
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.progress = progress
        self.columns = columns
        self.tokens: dict[str, int] = {}
        self.records: dict[str, int] = {}

    @property
    def tokens_total(self) -> int:
        return int(self.manifest["totals"]["tokens"])

    def __iter__(self) -> Iterator[TokenizedBatch]:
        needed = None if self.columns is None else list(dict.fromkeys([*self.columns, "text", "tokens", "source", "record_id"]))
        done = 0
        for index, shard in enumerate(self.manifest["shards"]):
            one_shard = {**self.manifest, "shards": [shard]}
            for rows in iter_batches(one_shard, columns=needed, batch_size=BATCH_ROWS):
                ids = self.tokenizer.encode_batch(rows.column("text").to_pylist())
                self._check_rows(rows, ids, shard["path"])
                done += sum(len(i) for i in ids)
                yield TokenizedBatch(shard=index, rows=rows, ids=ids)
                if self.progress is not None:
                    self.progress(done, self.tokens_total)

    def _check_rows(self, rows: pa.RecordBatch, ids: list[list[int]], shard: str) -> None:
        counted = rows.column("tokens").to_pylist()
        sources = rows.column("source").to_pylist()
        for row, (token_ids, expected, source) in enumerate(zip(ids, counted, sources, strict=True)):
            if len(token_ids) != expected:
                record_id = rows.column("record_id")[row].as_py()
                raise ExportError(
                    f"record {record_id} (source {source}, shard {shard}): the tokenizer gives {len(token_ids)} tokens, "
                    f"its `tokens` column says {expected}; the mixture was counted with another tokenizer or was altered"
                )
            if not token_ids:
                record_id = rows.column("record_id")[row].as_py()
                raise ExportError(f"record {record_id} (source {source}, shard {shard}) has no tokens: trainers cannot take it")
            self.tokens[source] = self.tokens.get(source, 0) + len(token_ids)
            self.records[source] = self.records.get(source, 0) + 1

    def finish(self) -> dict[str, int]:
        """Tokens per source, once they are checked against the manifest's sources and totals."""
        listed = self.manifest["sources"]
        for source in sorted(set(listed) | set(self.tokens)):
            if source not in listed:
                raise ExportError(f"source {source}: in the shards but not in the manifest's sources")
            expected_tokens, expected_records = int(listed[source]["tokens"]), int(listed[source]["records"])
            tokens, records = self.tokens.get(source, 0), self.records.get(source, 0)
            if (tokens, records) != (expected_tokens, expected_records):
                raise ExportError(
                    f"source {source}: exported {tokens} tokens in {records} records, "
                    f"the manifest says {expected_tokens} tokens in {expected_records} records"
                )
        totals = self.manifest["totals"]
        tokens, records = sum(self.tokens.values()), sum(self.records.values())
        if (tokens, records) != (int(totals["tokens"]), int(totals["records"])):
            raise ExportError(
                f"mixture: exported {tokens} tokens in {records} records, "
                f"the manifest's totals say {totals['tokens']} tokens in {totals['records']} records"
            )
        return {source: self.tokens.get(source, 0) for source in listed}


def sources_in_order(manifest: dict, present: set[str] | dict) -> list[str]:
    """Sources that have records, in the manifest's order (what blend files list)."""
    return [name for name in manifest["sources"] if name in present]
