"""A byte-capacity cache driven by an ``EvictionPolicy`` alone, for the policy tests: evict, then insert
(libCacheSim's order), admission only through ``admit``."""

from __future__ import annotations

from precache.cache.policy import EntryInfo, EvictionPolicy


def replay_hits(policy: EvictionPolicy, trace: list[tuple[str, int]], capacity: int) -> tuple[list[bool], set[str]]:
    """Hit or miss per request of ``trace`` (key, size), and the keys resident at the end."""
    resident: dict[str, EntryInfo] = {}
    used = 0
    hits: list[bool] = []
    for key, size in trace:
        e = resident.get(key)
        hits.append(e is not None)
        if e is not None:
            policy.on_hit(e)
            continue
        info = EntryInfo(key=key, size=size)
        if size > capacity or not policy.admit(info):
            continue
        while used + size > capacity:
            v = policy.victim()
            assert v is not None
            used -= resident.pop(v).size
        resident[key] = info
        used += size
        policy.on_insert(info)
    assert used <= capacity
    return hits, set(resident)
