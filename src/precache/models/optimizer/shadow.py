"""Shadow caches: a candidate policy run at the real cache's size on every request, on metadata only
(keys and sizes, no values): ACME's "virtual caches" (Ari et al., "ACME: Adaptive Caching Using
Multiple Experts", WDAS 2002).

Why full size and not SHARDS miniatures (the previous design, Waldspurger et al., USENIX ATC 2017):
the switcher (:mod:`.switcher`) needs more than each candidate's miss ratio. When it switches, the new
policy must not start cold: a policy rebuilt from the residents has lost its frequencies, its
doorkeeper history and the contents it would have chosen, and on the policy benchmark the rebuilds
and a decision window counted in *sampled* requests (tens of thousands of real ones on a large trace)
cost more than the switches gained. A shadow at full size *is* the candidate's state as if it had run
all along, so a switch only hands the cache to it. The price is memory and time per request: one
dict entry and one policy step per candidate, independent of the values' sizes.
"""

from __future__ import annotations

from collections.abc import Callable

from precache.cache.policy import EntryInfo, EvictionPolicy


class ShadowCache:
    """A byte-capacity cache of keys and sizes around one candidate policy (admission through
    ``admit``, then evict, then insert: the policy benchmark's order), with exponentially decayed
    missed and requested bytes. ``on_evict(key)`` is told of every eviction a request makes."""

    def __init__(self, policy: EvictionPolicy, capacity: float, decay: float,
                 on_evict: Callable[[str], None] | None = None) -> None:
        self.policy = policy
        self.capacity = capacity
        self.decay = decay
        self.on_evict = on_evict
        self.resident: dict[str, EntryInfo] = {}
        self.used = 0
        self.missed = 0.0
        self.requested = 0.0

    def request(self, key: str, size: int) -> bool:
        """One request for ``key``; True if it was a hit."""
        d = self.decay
        self.requested = self.requested * d + size
        e = self.resident.get(key)
        if e is not None:
            self.missed *= d
            self.policy.on_hit(e)
            return True
        self.missed = self.missed * d + size
        info = EntryInfo(key=key, size=size)
        if size > self.capacity or not self.policy.admit(info):
            return False
        while self.used + size > self.capacity:
            victim = self.evict_one()
            if victim is None:
                break
            if self.on_evict is not None:
                self.on_evict(victim)
        self.resident[key] = info
        self.used += size
        self.policy.on_insert(info)
        return False

    def evict_one(self) -> str | None:
        """The policy's next victim, forgotten (None when it tracks nothing)."""
        victim = self.policy.victim()
        if victim is not None:
            gone = self.resident.pop(victim, None)
            self.used -= gone.size if gone is not None else 0
        return victim

    def remove(self, key: str) -> None:
        """The key left the real cache other than by eviction (a delete, an expiry): forget it."""
        gone = self.resident.pop(key, None)
        if gone is not None:
            self.used -= gone.size
            self.policy.on_remove(key)

    def byte_miss_ratio(self) -> float:
        return self.missed / self.requested if self.requested > 0 else 1.0
