"""What the simulator stores as content, and how it gives memory back between replays.

A replayed trace knows each object's size, not its bytes, so every simulated value is ``size`` zero
bytes. Allocating them for real made a 1M-request replay hold the working set several times over (the
origin's result, L1's value, L2's encoded record) and left glibc's heap fragmented between replays.
Here a value is a read-only view of one shared zero buffer (no allocation per fetch; the cache encodes
it exactly as it would ``bytes(size)``: same type tag, same length), the simulator's L2 keeps such
records as (header, length) (:class:`precache.cache.l2.MemoryL2` ``compact_zero_payloads``), and
:func:`release_freed_memory` hands the heap's free pages back to the OS after each replay.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

_zeros = memoryview(b"")


def zero_payload(size: int) -> memoryview:
    """``size`` zero bytes as a read-only view of a shared buffer (grown, never copied per call)."""
    global _zeros
    if size > len(_zeros):
        _zeros = memoryview(bytes(max(size, 2 * len(_zeros), 1 << 20)))
    return _zeros[:size]


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim  # glibc only (not musl, macOS)
        return trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Python frees a replay's objects when it ends, but glibc keeps the pages, so without this the
    process's RSS is the sum of every replay's peak rather than the largest one."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
