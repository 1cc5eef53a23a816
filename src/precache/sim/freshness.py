"""Content changes in the replay: origin versions, which changes are invalidated, and stale serves.

Objects change (``PreparedTrace.updates``: the trace's own changes, see :mod:`precache.sim.changes`).
Each change bumps the key's origin version. The application invalidates a configured share of them
(``invalidate_share``: each change is invalidated or not by one draw per change from a generator seeded by
the replay's seed, so every configuration sees the same invalidations); an invalidated change deletes
the key from the cache at the change's time, the others reach the cache only when its copy is refetched.

Every origin fetch records the version current when it was *issued*; the copy the cache holds is the one
of the key's last completed fetch (every fill goes through a fetch, and a fill replaces the copy in L1
and L2 alike). A request answered from the cache (L1 or L2 hit) with a copy older than the origin's
current version is a **stale serve**. Requests that waited on a fetch get that fetch's (fresh) copy.

With a :class:`~precache.cache.change_rate.ChangeRateTTL`, the same events feed it (fetch validators,
invalidations), and its per-key TTL goes with every load the replay starts, user request or preload.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np

from precache.cache.change_rate import ChangeRateTTL
from precache.cache.clock import Clock
from precache.sim.metrics import ReplayResult
from precache.warming.resolver import Loader


def invalidation_mask(n: int, share: float, seed: int) -> list[bool]:
    """Which of ``n`` changes the application invalidates: the same draws for every configuration."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"invalidate_share must be in [0, 1], got {share}")
    if share >= 1.0:
        return [True] * n
    draws = np.random.default_rng([seed, 0x1A7]).random(n)
    return (draws < share).tolist()  # type: ignore[no-any-return]


class Freshness:
    """Versions, copies and stale serves of one replay (see the module docstring)."""

    __slots__ = ("clock", "copy", "invalidate", "learner", "stale", "u", "updates", "version")

    def __init__(self, updates: Sequence[tuple[float, str]], share: float, seed: int, clock: Clock,
                 learner: ChangeRateTTL | None = None) -> None:
        self.updates = updates
        self.invalidate = invalidation_mask(len(updates), share, seed)
        self.clock = clock
        self.learner = learner
        self.version: dict[str, int] = {}
        self.copy: dict[str, int] = {}
        self.stale = 0
        self.u = 0

    @classmethod
    def of(cls, updates: Sequence[tuple[float, str]], share: float, seed: int, clock: Clock,
           learner: Callable[[], ChangeRateTTL] | None) -> Freshness:
        """For one replay: a fresh learner from the mode's factory, if it has one."""
        return cls(updates, share, seed, clock, learner() if learner is not None else None)

    def report(self, result: ReplayResult) -> None:
        """Put the stale serves (and what the learner saw) into the replay's result."""
        result.stale_serves = self.stale
        if self.learner is not None:
            result.ttl_learner = {"keys": len(self.learner), "unannounced_share": self.learner.unannounced_share(),
                                  "validator_changes": self.learner.validator_changes,
                                  "invalidations": self.learner.invalidations}

    async def advance(self, now: float, delete: Callable[[str], Awaitable[Any]],
                      dropped: Callable[[str], None]) -> None:
        """Apply the changes due by ``now``: bump versions; delete the invalidated ones from the cache."""
        updates = self.updates
        while self.u < len(updates) and updates[self.u][0] <= now:
            t, key = updates[self.u]
            self.version[key] = self.version.get(key, 0) + 1
            if self.invalidate[self.u]:
                await delete(key)
                dropped(key)
                if self.learner is not None:
                    self.learner.invalidated(key, t)
            self.u += 1

    def wrap(self, key: str, fetch: Callable[[], Awaitable[memoryview]]) -> Loader:
        """A loader that records the version it fetched (see :meth:`track`)."""

        async def load() -> memoryview:
            return await self.track(key, fetch())

        return load

    async def track(self, key: str, pending: Awaitable[memoryview]) -> memoryview:
        """Await an origin fetch of ``key`` issued now; record its version as the cache's copy (and
        tell the learner its validator)."""
        v = self.version.get(key, 0)
        value = await pending
        self.copy[key] = v
        if self.learner is not None:
            self.learner.fetched(key, self.clock.now(), v)
        return value

    def served(self, key: str, counted: bool) -> None:
        """A request for ``key`` was answered from the cache: count it if the copy is outdated."""
        if counted and self.copy.get(key, 0) < self.version.get(key, 0):
            self.stale += 1

    def ttl(self, key: str, default: float | None) -> float | None:
        """The lifetime to load ``key`` with: the learner's, else ``default`` (None: the cache's TTL)."""
        return default if self.learner is None else self.learner.ttl(key)


class TTLWarmableCache:
    """The warmer's view of the cache (``contains`` and ``prefetch``) with a per-key TTL on preloads."""

    __slots__ = ("_cache", "_ttl")

    def __init__(self, cache: Any, ttl: Callable[[str], float | None]) -> None:
        self._cache = cache
        self._ttl = ttl

    def contains(self, key: str) -> bool:
        return bool(self._cache.contains(key))

    async def prefetch(self, key: str, loader: Loader, ttl: float | None = None, tags: Sequence[str] = ()) -> bool:
        return bool(await self._cache.prefetch(key, loader, ttl if ttl is not None else self._ttl(key), tags))
