"""Memory that Arrow's pool and glibc keep after frees goes back to the OS when a job asks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# in a fresh process: the test process's own allocations would blur the figures
_PROBE = """
import threading
import pyarrow as pa
from warehouse.memory import release_unused_memory

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

def arrow_phase():
    buffers = [pa.allocate_buffer(1 << 20) for _ in range(160)]
    del buffers

pinned = []

def threads_phase():  # objects freed by threads: glibc keeps them in its per-thread arenas
    # all four hold their objects at once, so each has an arena of its own (one after another,
    # they could take turns in one arena, and what it kept varied from 19 to 26 MB)
    together = threading.Barrier(4)

    def work():
        together.wait()
        objects = [bytearray(50_000) for _ in range(1000)]
        # one live object above them, as a long job always has: the arena cannot shrink past it
        pinned.append(bytearray(1000))
        together.wait()
        del objects
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

for phase in (arrow_phase, threads_phase):
    before = rss_mb()
    phase()
    kept = rss_mb() - before
    release_unused_memory()
    print(phase.__name__, kept, rss_mb() - before)
"""


def _run_probe(code: str, *args: str) -> str:
    """`code`'s output in a fresh Python under glibc's own malloc: without `LD_PRELOAD` (vLLM's CPU
    platform, once an earlier test started an engine, puts torch's libgomp there for every later
    child, and tcmalloc where its wheel ships one), `GLIBC_TUNABLES` or `MALLOC_*` settings."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LD_PRELOAD", "GLIBC_TUNABLES") and not key.startswith("MALLOC_")
    }
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=True, env=environment).stdout


@pytest.mark.skipif(not Path("/proc/self/status").exists() or sys.platform != "linux", reason="reads /proc; glibc only")
def test_freed_memory_goes_back_to_the_os():
    for line in _run_probe(_PROBE).splitlines():
        phase, kept, after = line.split()
        # the allocators keep what the phase freed (why a job must ask) ...
        assert int(kept) >= 20, f"{phase}: only {kept} MB kept after the frees; the probe no longer shows retention"
        # ... and give it back when asked
        assert int(after) <= int(kept) // 4, f"{phase}: {after} MB still held after release_unused_memory ({kept} MB before)"


def test_arrow_allocates_from_malloc_inside_the_block_and_from_its_own_pool_after():
    import pyarrow as pa

    from warehouse.memory import arrow_on_system_malloc

    before = pa.default_memory_pool().backend_name
    with pytest.raises(RuntimeError), arrow_on_system_malloc():
        assert pa.default_memory_pool().backend_name == "system"
        raise RuntimeError("a mix that fails still gives the pool back")
    assert pa.default_memory_pool().backend_name == before


# large blocks freed between live ones: with glibc's default, freeing a 16 MB block raises the
# mapping threshold, the later blocks come from the heap, and their pages stay resident
_LARGE_BLOCKS_PROBE = """
import sys
from warehouse.memory import map_large_blocks

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

if sys.argv[1] == "mapped":
    map_large_blocks()
first = b"x" * (16 << 20)  # written, so its pages are resident (a zeroed block may not be)
del first
before = rss_mb()
blocks = [b"x" * (2 << 20) for _ in range(40)]
live = blocks[1::2]  # every other block stays: the freed ones lie between live ones, not at the top
del blocks
print(rss_mb() - before - 40)  # MB kept beyond the 20 live blocks
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists() or sys.platform != "linux", reason="reads /proc; glibc only")
def test_large_blocks_go_back_to_the_os_when_freed():
    assert int(_run_probe(_LARGE_BLOCKS_PROBE, "default")) >= 30, "glibc's default no longer keeps freed large blocks"
    assert int(_run_probe(_LARGE_BLOCKS_PROBE, "mapped")) <= 6
