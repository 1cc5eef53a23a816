"""The simulator's placeholder payloads: same records as real zero bytes, memory per key not per byte."""

from __future__ import annotations

import asyncio
import platform

from precache.cache import ManualClock, MemoryL2
from precache.cache.codec import Codec
from precache.sim.payloads import release_freed_memory, zero_payload


def test_a_zero_view_encodes_exactly_like_real_zero_bytes() -> None:
    codec = Codec()
    for size in (0, 1, 300, 70_000, 3_000_000):
        view = zero_payload(size)
        assert len(view) == size
        assert codec.encode(view, 123.0, 0.5) == codec.encode(bytes(size), 123.0, 0.5)
        assert codec.decode(codec.encode(view)).value == bytes(size)


def test_compact_l2_reads_back_the_same_bytes_and_counts_the_same_budget() -> None:
    clock = ManualClock(0.0)
    codec = Codec()
    compact = MemoryL2(clock, max_bytes=50_000, compact_zero_payloads=True)
    plain = MemoryL2(clock, max_bytes=50_000)
    records = {f"k{i}": codec.encode(bytes(1_000 * (i % 7 + 1)) if i % 3 else b"x" * 900, float(i)) for i in range(40)}

    async def run() -> None:
        for key, raw in records.items():
            await compact.set(key, raw, px=None)
            await plain.set(key, raw, px=None)
            assert compact.bytes == plain.bytes and len(compact) == len(plain)
        keys = list(records)
        assert await compact.get_many(keys) == await plain.get_many(keys)
        assert compact.evictions == plain.evictions > 0
        for key in keys:
            got = await compact.get(key)
            assert got is None or got == records[key]

    asyncio.run(run())


def test_release_freed_memory_binds_glibc_malloc_trim_where_there_is_one() -> None:
    from precache.sim import payloads

    release_freed_memory()  # never raises, whatever the C library
    if platform.libc_ver()[0] == "glibc":
        assert payloads._malloc_trim() is not None
