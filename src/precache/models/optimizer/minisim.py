"""Miniature simulations (Waldspurger et al., USENIX ATC 2017) with fixed-size SHARDS sampling.

Why: the online switcher (:mod:`.switcher`) must know how each candidate policy *would* do on the
recent traffic without running them all at full size. A miniature cache sees only the requests whose
key hashes under a threshold ``T`` (spatial sampling: a sampled key is seen on every request, so reuse
is preserved) at ``T`` times the real capacity, and its miss ratio estimates the full cache's.

Fixed-size SHARDS (SHARDS's ``s_max`` variant): ``T`` starts at 1 (every key sampled, an exact
simulation on small workloads) and is lowered each time more than ``max_keys`` distinct keys are in the
sample, to the largest sampled hash, which leaves the sample; the minis drop that key and shrink to the
new ``T`` times the capacity. So the cost per request is bounded by the sample size, not the trace.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable

from precache.cache.policy import EntryInfo, EvictionPolicy

_SCALE = float(2**32)


def key_hash(key: str) -> float:
    """A deterministic hash of ``key`` in [0, 1): CRC-32 mixed by murmur3's 32-bit finalizer (CRC alone is
    linear in the input, so similar URLs would hash to nearby values)."""
    h = zlib.crc32(key.encode())
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h / _SCALE


class MiniCache:
    """A byte-capacity cache (evict, then insert; admission through ``admit``, as the policy benchmark's
    replay) around one candidate policy, with exponentially decayed missed and requested bytes."""

    def __init__(self, policy: EvictionPolicy, capacity: float, decay: float) -> None:
        self.policy = policy
        self.capacity = capacity
        self.decay = decay
        self.resident: dict[str, EntryInfo] = {}
        self.used = 0
        self.missed = 0.0
        self.requested = 0.0

    def request(self, key: str, size: int) -> None:
        d = self.decay
        self.requested = self.requested * d + size
        e = self.resident.get(key)
        if e is not None:
            self.missed *= d
            self.policy.on_hit(e)
            return
        self.missed = self.missed * d + size
        info = EntryInfo(key=key, size=size)
        if size > self.capacity or not self.policy.admit(info):
            return
        self._fit(self.capacity - size)
        self.resident[key] = info
        self.used += size
        self.policy.on_insert(info)

    def _fit(self, limit: float) -> None:
        while self.used > limit:
            v = self.policy.victim()
            if v is None:
                return
            gone = self.resident.pop(v, None)
            self.used -= gone.size if gone is not None else 0

    def drop(self, key: str) -> None:
        """The key left the sample: forget it."""
        gone = self.resident.pop(key, None)
        if gone is not None:
            self.used -= gone.size
            self.policy.on_remove(key)

    def resize(self, capacity: float) -> None:
        self.capacity = capacity
        set_capacity = getattr(self.policy, "set_capacity", None)  # S3-FIFO's queue shares follow it
        if set_capacity is not None:
            set_capacity(max(1, int(capacity)))
        self._fit(capacity)

    def byte_miss_ratio(self) -> float:
        return self.missed / self.requested if self.requested > 0 else 1.0


class Shards:
    """The fixed-size SHARDS sample and one :class:`MiniCache` per candidate policy.

    ``factories`` build each candidate for a capacity in bytes; ``capacity`` is the real cache's. Call
    :meth:`observe` on every request; :meth:`ratios` gives each candidate's decayed byte miss ratio."""

    def __init__(self, factories: dict[str, Callable[[int | None], EvictionPolicy]], capacity: int, max_keys: int,
                 half_life: float) -> None:
        self.threshold = 1.0
        self.max_keys = max_keys
        self.capacity = capacity
        self._keys: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (-hash, key): the largest sampled hash on top
        decay = 0.5 ** (1.0 / half_life)
        self.minis = {name: MiniCache(make(max(1, capacity)), float(capacity), decay)
                      for name, make in factories.items()}
        self.sampled = 0

    def observe(self, key: str, size: int) -> bool:
        """Feed one request to every mini if its key is in the sample; True if it was."""
        h = key_hash(key)
        if h >= self.threshold:
            return False
        if key not in self._keys:
            self._keys[key] = h
            heapq.heappush(self._heap, (-h, key))
            if len(self._keys) > self.max_keys:
                self._lower()
                if h >= self.threshold:
                    return False
        self.sampled += 1
        for mini in self.minis.values():
            mini.request(key, size)
        return True

    def _lower(self) -> None:
        neg, key = heapq.heappop(self._heap)
        del self._keys[key]
        self.threshold = -neg
        for mini in self.minis.values():
            mini.drop(key)
            mini.resize(self.capacity * self.threshold)

    def set_capacity(self, capacity: int) -> None:
        """The real cache's capacity changed (or its estimate grew): rescale every mini."""
        self.capacity = capacity
        for mini in self.minis.values():
            mini.resize(capacity * self.threshold)

    def ratios(self) -> dict[str, float]:
        return {name: mini.byte_miss_ratio() for name, mini in self.minis.items()}
