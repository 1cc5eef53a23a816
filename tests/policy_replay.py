"""A byte-capacity cache driven by an ``EvictionPolicy`` alone, for the policy tests: evict, then insert
(libCacheSim's order), admission only through ``admit``."""

from __future__ import annotations

from collections.abc import Callable

from precache.cache.policy import EntryInfo, EvictionPolicy


def replay_hits(policy: EvictionPolicy, trace: list[tuple[str, int]], capacity: int,
                after: Callable[[int, dict[str, EntryInfo]], None] | None = None) -> tuple[list[bool], set[str]]:
    """Hit or miss per request of ``trace`` (key, size), and the keys resident at the end; ``after(i,
    resident)`` sees the cache's entries after each request ``i`` (a test's checkpoint)."""
    resident: dict[str, EntryInfo] = {}
    used = 0
    hits: list[bool] = []
    for i, (key, size) in enumerate(trace):
        e = resident.get(key)
        hits.append(e is not None)
        if e is not None:
            policy.on_hit(e)
        else:
            info = EntryInfo(key=key, size=size)
            if size <= capacity and policy.admit(info):
                while used + size > capacity:
                    v = policy.victim()
                    assert v is not None
                    used -= resident.pop(v).size
                resident[key] = info
                used += size
                policy.on_insert(info)
        if after is not None:
            after(i, resident)
    assert used <= capacity
    return hits, set(resident)
