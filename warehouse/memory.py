"""Freed memory handed back to the operating system between the phases of a long job.

A job such as a mix runs phases of different shapes one after another: reading files, counting
tokens (Rust threads), sorting (DuckDB), writing shards (Arrow). The allocators keep the pages
their callers free, for reuse by the next allocation of the same kind: Arrow's memory pool
(mimalloc or jemalloc) and glibc's per-thread arenas (the tokenizer's threads, Python's large
objects). Between phases of different shapes that reuse never comes, so what one phase kept stays
resident under the next phase's working set, and a job's peak grows with its input. Releasing at
the boundaries keeps the peak near the largest single phase. (DuckDB's own jemalloc is left to
DuckDB: it flushes it when a database closes or a large block is freed.)
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa


@functools.cache
def _glibc(name: str, argtypes: tuple, restype):
    """A glibc function, or None where the C library is not glibc (musl, macOS)."""
    try:
        function = getattr(ctypes.CDLL(None), name)  # the symbols the process already has: no library search
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = list(argtypes), restype
    return function


_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
LARGE_BLOCK = 1 << 20


def map_large_blocks(threshold: int = LARGE_BLOCK) -> None:
    """From now on, process-wide, glibc serves blocks of `threshold` bytes or more with mappings of
    their own, unmapped when freed. By default it raises that threshold to the largest block freed
    so far (up to 32 MB), after which such blocks come from the heap, where their pages stay
    resident after the free under any live object above them: a job whose buffers grow with its
    input then keeps its largest buffers' pages. A mix at 4x the benchmark's mixture peaked at
    293-298 MB without this, 265-268 MB with it (1x: 242 and 236), for ~1 % more time (fresh
    mappings fault their pages in)."""
    mallopt = _glibc("mallopt", (ctypes.c_int, ctypes.c_int), ctypes.c_int)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, threshold)


def release_unused_memory() -> None:
    """Return the pages that Arrow's pool and the C library keep after frees to the OS. Costs a
    few milliseconds; call it where a phase that allocated a lot has ended."""
    pa.default_memory_pool().release_unused()
    trim = _glibc("malloc_trim", (ctypes.c_size_t,), ctypes.c_int)
    if trim is not None:
        trim(0)


@contextmanager
def arrow_on_system_malloc() -> Iterator[None]:
    """Arrow's new buffers come from the C library's malloc while the block runs (Arrow's default
    pool again after it; each buffer is freed to the pool that made it). Arrow's default, mimalloc,
    keeps a heap per thread, and a job that allocates in several threads (a mix's helpers, its
    selection and its shard writers) kept 25-50 MB more at its peak with it and ran ~0.1 s slower
    in 3.6 (benchmarks §7); glibc's arenas are what `release_unused_memory` trims. Process-wide:
    another thread's allocations meanwhile come from malloc too, which changes no result."""
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)
