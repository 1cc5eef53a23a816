"""The cache's miss path below L1: one :class:`LoadRequest` per miss, carried by :class:`Loading`.

Why a request object: a miss needs eight facts (the key, its loader, ttl and tags, whether it is a
prefetch, whether L2 must still be read, an L2 copy past expiry but within grace, whether it runs in the
background) on its way from the L1 miss through the shared load, the lease and the loader to the store.
Passed loose, they travel positionally through half a dozen methods; as one object each step reads what it
needs and the order of arguments cannot be mixed up.

Why next to :class:`~precache.cache.singleflight.SingleFlight`: the load *is* a single flight. Joiners of a
running load share its task; everything here runs inside that task, or starts one. The L1 hit path stays
inline in :meth:`PredictiveCache.get <precache.cache.layered.PredictiveCache.get>` and never reaches this
module.

Steps of a load (:meth:`Loading.load`): L2 (unless just read inline) → an L2 copy past expiry but within
grace is served and refreshed right after → a Redis lease across processes (or a wait for the instance
holding it) → the loader → the store into L1 and L2 (the cache's ``store``, shared with ``set``).
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from precache.cache.clock import Clock
from precache.cache.codec import Record, decode_parts
from precache.cache.config import CacheConfig
from precache.cache.errors import PoisonedValueError
from precache.cache.events import Tier
from precache.cache.guarded import GuardedL2
from precache.cache.invalidation import InvalidationChannel
from precache.cache.memory import MemoryTier
from precache.cache.singleflight import SingleFlight
from precache.cache.staleness import StalePoller
from precache.cache.stats import CacheStats
from precache.resilience import CircuitBreaker
from precache.types import Loader

_perf = time.perf_counter
MISSING: Any = object()
"""What a loader-less load returns when nothing had the key (None is a value a loader may return)."""

Fill = tuple[str, Any, int, float | None, float]
"""``(key, value, encoded size, absolute expires_at, delta)``: one L2 record bound for L1."""

Store = Callable[..., Awaitable[int]]
"""The cache's ``_store(key, value, ttl, tags, *, preloaded, delta, publish) -> encoded size``."""


@dataclass(slots=True)
class LoadRequest:
    """One miss on its way to a value: what the load must do, in one place."""

    key: str
    loader: Loader | None
    ttl: float | None
    tags: tuple[str, ...]
    preloaded: bool = False  # a prefetch (the warmer): the stored entry is marked, a stale copy not served
    check_l2: bool = True  # False when the caller just read L2 inline (or a refresh must reach the origin)
    stale: Record | None = None  # an L2 copy past expiry but within grace, servable while refreshing
    background: bool = False  # a refresh nobody awaits: ``close`` waits for it (bounded) like the loads


class Loading:
    """Reads L2 into L1 and runs the shared loads of one cache (one per key in flight, see SingleFlight)."""

    def __init__(self, l1: MemoryTier, guard: GuardedL2 | None, channel: InvalidationChannel, stats: CacheStats,
                 config: CacheConfig, clock: Clock, breaker: CircuitBreaker, flights: SingleFlight,
                 store: Store) -> None:
        self.l1 = l1
        self.guard = guard
        self.channel = channel
        self.stats = stats
        self.config = config
        self.breaker = breaker
        self.flights = flights
        self.store = store
        self.now = clock.now
        self.reading: set[str] = set()  # keys with an inline L2 read in flight
        self.stale: StalePoller | None = None  # remembers loaders for policy revalidation (set by the cache)
        self.closed = False

    # -- L2 -> L1 ---------------------------------------------------------------------------------
    async def read_l2(self, key: str, tags: tuple[str, ...], preloaded: bool) -> Record | None:
        """One L2 read of ``key``; a fresh record is copied into L1 (unless a write raced the read)."""
        guard = self.guard
        if guard is None:
            return None
        reading = self.reading
        reading.add(key)
        generation = self.channel.generation
        try:
            record = await guard.read(key)
        finally:
            reading.discard(key)
        if record is not None and (record.expires_at is None or self.now() < record.expires_at):
            self.fill_l1(key, record, tags, preloaded, generation)
        return record

    def fill_l1(self, key: str, record: Record, tags: tuple[str, ...], preloaded: bool = False,
                generation: int | None = None) -> None:
        """Copy an L2 record into L1, unless a write or invalidation happened since ``generation`` (the
        channel's generation when the L2 read was sent): the read may have raced with it."""
        if generation is not None and generation != self.channel.generation:
            self.stats.fills_skipped += 1
            return
        expires_at = record.expires_at
        l1_max_ttl = self.config.l1_max_ttl
        if l1_max_ttl is not None:
            cap = self.now() + l1_max_ttl
            expires_at = cap if expires_at is None else min(expires_at, cap)
        self.l1.fill_one(key, record.value, record.size, expires_at, record.delta, self.config.grace, tags,
                         preloaded)

    def decode_fills(self, keys: list[str], raws: list[bytes | None], out: dict[str, Any]) -> list[Fill]:
        """Decode a batch read from L2 into ``out``; returns the fresh records as L1 fills (lifetime
        capped by ``l1_max_ttl``). Poisoned records are counted misses."""
        now = self.now()
        l1_max_ttl = self.config.l1_max_ttl
        cap = None if l1_max_ttl is None else now + l1_max_ttl
        fills: list[Fill] = []
        add_fill = fills.append
        guard = self.guard
        for key, raw in zip(keys, raws, strict=True):
            if raw is None:
                continue
            try:
                value, expires_at, delta = decode_parts(raw)
            except PoisonedValueError as exc:
                if guard is not None:
                    guard.poisoned(key, exc)
                continue
            if expires_at is None or now < expires_at:
                out[key] = value
                if cap is not None and (expires_at is None or expires_at > cap):
                    expires_at = cap
                add_fill((key, value, len(raw), expires_at, delta))
        return fills

    def fill_batch(self, fills: list[Fill], generation: int) -> None:
        """Copy a batch read from L2 into L1 unless a write or invalidation happened since the read."""
        if generation != self.channel.generation:
            self.stats.fills_skipped += len(fills)
            return
        self.l1.fill_many(fills, self.config.grace, keep_fresh=True, count_resident=False)

    # -- the shared load --------------------------------------------------------------------------
    async def shared(self, request: LoadRequest) -> tuple[Any, int, Tier]:
        """Join the running load of the key or start one; concurrent misses (and prefetches) share it, so a
        burst of N misses costs at most one loader call. ``request.check_l2`` False: the caller has just
        read L2 inline (a second attempt reads it again)."""
        flights = self.flights
        key = request.key
        read_inline = not request.check_l2
        joined = False
        value: Any = MISSING
        size = 0
        tier: Tier = "miss"
        for attempt in range(2):
            task = flights.running.get(key)
            joined = task is not None
            if task is None:
                request.check_l2 = self.guard is not None and (not read_inline or attempt > 0)
                task = self.start(request)
            else:
                self.stats.joined_loads += 1
            value, size, tier = await flights.join(task, key)
            if not (tier == "miss" and request.loader is not None and joined):
                break
            # joined a loader-less lookup that found nothing: load now
        if joined:
            entry = self.l1.peek(key)
            if entry is not None and entry.preloaded:
                entry.preloaded = False  # a user touched it before it was ever a "hit"
        return value, size, tier

    def start(self, request: LoadRequest) -> asyncio.Task[tuple[Any, int, Tier]]:
        """Run ``request`` as the key's load (the caller checked that none is running)."""
        if request.loader is not None and self.stale is not None:
            self.stale.remember(request.key, request.loader, request.ttl, request.tags)
        return self.flights.start(request.key, self.load(request), request.background)

    async def load(self, request: LoadRequest) -> tuple[Any, int, Tier]:
        """The shared load: L2 (unless just read) → stale within grace → lease → loader → store."""
        key, loader, tags = request.key, request.loader, request.tags
        stale = request.stale
        if request.check_l2:
            record = await self.read_l2(key, tags, request.preloaded)
            if record is not None:
                if record.expires_at is None or self.now() < record.expires_at:
                    return record.value, record.size, "l2"
                stale = record
        if loader is None:
            return MISSING, 0, "miss"
        if stale is not None and not request.preloaded:
            # L2 holds a copy past expiry but within grace: serve it, refresh right after this task
            self.fill_l1(key, stale, tags)
            asyncio.get_running_loop().call_soon(self.refresh, key, loader, request.ttl, tags)
            return stale.value, stale.size, "stale"
        guard = self.guard
        token: str | None = None
        if guard is not None:
            token = uuid.uuid4().hex
            acquired = await guard.acquire_lease(key, token, int(self.config.lease.ttl * 1000))
            if acquired is None:
                token = None  # Redis is unreachable (or the breaker is open): load locally
            elif not acquired:
                token = None
                waited = await self.wait_for_leaseholder(request)
                if waited is not None:
                    return waited.value, waited.size, "l2"
        try:
            value, size = await self.call_loader(request, loader)
            return value, size, "origin"
        finally:
            if token is not None and guard is not None:
                await guard.release_lease(key, token)

    async def wait_for_leaseholder(self, request: LoadRequest) -> Record | None:
        """Another instance holds the load lease: poll L2 until its value lands or ``lease.wait`` ends.

        The deadline is on the injected clock (the lease itself expires on that clock in ``MemoryL2``,
        and a replay that advances virtual time past the wait ends it), and also in real time, so a
        clock that does not move (a paused replay) can never hold a request forever. The polling
        interval is real sleeping: the leaseholder makes progress on the event loop.
        """
        self.stats.lease_waits += 1
        lease = self.config.lease
        now = self.now
        deadline = now() + lease.wait
        real_deadline = time.monotonic() + lease.wait
        while now() < deadline and time.monotonic() < real_deadline:
            await asyncio.sleep(lease.poll)
            record = await self.read_l2(request.key, request.tags, request.preloaded)
            if record is not None and (record.expires_at is None or now() < record.expires_at):
                return record
            if self.breaker.state == "open":
                return None
        return None

    async def call_loader(self, request: LoadRequest, loader: Loader) -> tuple[Any, int]:
        """Call the origin (counted), then store what it returned in L1 and L2."""
        stats = self.stats
        stats.loads += 1
        started = _perf()
        try:
            value = loader()
            if inspect.isawaitable(value):
                value = await value
        except Exception:
            stats.load_errors += 1
            raise
        delta = _perf() - started
        size = await self.store(request.key, value, request.ttl, request.tags, preloaded=request.preloaded,
                                delta=delta, publish=False)
        return value, size

    # -- background reloads -----------------------------------------------------------------------
    def refresh(self, key: str, loader: Loader, ttl: float | None, tags: tuple[str, ...]) -> bool:
        """Reload ``key`` in the background unless a load is already running (XFetch / SWR)."""
        if key in self.flights or self.closed:
            return False
        self.stats.early_refreshes += 1
        self.start(LoadRequest(key, loader, ttl, tags, check_l2=False, background=True))
        return True

    def revalidate(self, key: str, loader: Loader, ttl: float | None, tags: tuple[str, ...],
                   preloaded: bool) -> bool:
        """A staleness-predicting policy flagged ``key``: reload it in the background (see StalePoller)."""
        if key in self.flights or self.closed:
            return False
        self.stats.policy_revalidations += 1
        self.start(LoadRequest(key, loader, ttl, tags, preloaded, check_l2=False, background=True))
        return True
