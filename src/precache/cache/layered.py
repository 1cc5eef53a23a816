"""``PredictiveCache``: the layered cache users call (L1 memory → L2 Redis → loader).

The class is a thin facade; each job has its own collaborator:

===========================  =============================================================================
:class:`MemoryTier`           L1: entries, byte/item budgets, expiry, the eviction policy
:class:`GuardedL2`            every L2 read and write: circuit breaker, failure classification, decoding
:class:`SingleFlight`         one running load per key in this process; joiners share it
:class:`Loading`              the miss path below L1: L2 reads into L1, the shared load, lease, loader
:class:`InvalidationChannel`  pub/sub invalidation between instances; the write generation
:class:`StalePoller`          staleness hints from a learned policy, acted on off the hit path
:class:`EventBus`             access events, delivered after the request returned (bounded, drop+count)
===========================  =============================================================================

Hot path: an L1 hit is inline in :meth:`PredictiveCache.get`: a dict lookup, a clock read, the hit
accounting (:meth:`PredictiveCache._count_hit`, the one function every hit site uses) and, only when
someone subscribed, an event append. No await, no allocation, no model call, no network.

Miss path, top to bottom (:meth:`PredictiveCache._miss`): a stale L1 copy within ``grace`` is served while
one refresh runs → one inline L2 read → a load that finished meanwhile is used → no loader: a miss →
the shared load, one :class:`~precache.cache.loading.LoadRequest` run by :class:`~precache.cache.loading.Loading`
(L2 again if needed, a Redis lease across processes, the loader, then the store into L1 and L2).

Faults: every L2 call is bounded by the tier's timeout and guarded by the breaker; on the read path
failures are counted, never raised. L1 fills from L2 reads are skipped when a write or invalidation
happened while the read was in flight (the read may have returned the value just replaced). Every wait
is bounded: lease waits (``lease.wait`` on the injected clock and in real time), ``close``
(``close_timeout``), the listener and L2 shutdown. Expiry uses the injected clock; early refresh follows
XFetch (Vattani et al. 2015: refresh when ``now - delta*beta*ln(U) >= expiry``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from precache.cache.clock import Clock, SystemClock, same_clock
from precache.cache.codec import Codec, Record
from precache.cache.config import CacheConfig, config_from_legacy
from precache.cache.errors import CacheUnavailableError, ValueTooLargeError
from precache.cache.events import AccessEvent, EventBus, Handler, Tier
from precache.cache.guarded import GuardedL2, Outcome
from precache.cache.invalidation import InvalidationChannel
from precache.cache.l2 import ClockedTier, L2Tier, StreamWriter
from precache.cache.loading import MISSING, Loading, LoadRequest
from precache.cache.memory import Entry, MemoryTier
from precache.cache.singleflight import LoadCancelledError, SingleFlight
from precache.cache.staleness import StalePoller
from precache.cache.stats import CacheStats
from precache.resilience import CircuitBreaker
from precache.types import Loader

log = logging.getLogger(__name__)

T = TypeVar("T")
FillMode = Literal["deferred", "inline", "skip"]

_perf = time.perf_counter


class PredictiveCache:
    """L1 + optional L2 + loader, with stampede protection, SWR, XFetch, invalidation and events.

    ``PredictiveCache(l1, l2, clock, config=CacheConfig(...), breaker=CircuitBreaker(...))``. ``clock``
    defaults to L1's; an L1 or L2 built on another clock is refused (the cache never overwrites an
    injected clock). The keyword arguments of earlier releases (``default_ttl=``, ``grace=``,
    ``lease_wait=`` …) still work for one release, with a ``DeprecationWarning``.
    """

    def __init__(
        self,
        l1: MemoryTier | None = None,
        l2: L2Tier | None = None,
        clock: Clock | None = None,
        *,
        config: CacheConfig | None = None,
        breaker: CircuitBreaker | None = None,
        **legacy: Any,
    ) -> None:
        cfg = self.config = config_from_legacy(config, legacy)
        if clock is None:
            clock = l1.clock if l1 is not None else (l2.clock if isinstance(l2, ClockedTier) else SystemClock())
        if l1 is None:
            l1 = MemoryTier(clock=clock)
        for name, tier in (("l1", l1), ("l2", l2)):
            if isinstance(tier, ClockedTier) and not same_clock(tier.clock, clock):
                raise ValueError(f"{name} runs on another clock than the cache's; build it with clock=the same clock")
        self.clock: Clock = clock
        self.l1 = l1
        self.l2 = l2
        self.codec = Codec(cfg.serializer)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.events = EventBus(cfg.events.queue_size)
        self._stats = CacheStats()
        self._channel = InvalidationChannel(l1, l2, cfg.invalidation, cfg.instance_id or uuid.uuid4().hex,
                                            self._stats)
        self._guard = None if l2 is None else GuardedL2(
            l2, self.breaker, self._stats, self._channel.message if self._channel.enabled else None)
        self._replayer: asyncio.Task[None] | None = None
        self._flights = SingleFlight()
        loading = self._loading = Loading(l1, self._guard, self._channel, self._stats, cfg, clock, self.breaker,
                                          self._flights, self._store)
        self._stale = loading.stale = StalePoller(l1, cfg.staleness, clock, self._stats, loading.revalidate,
                                                  background_default=isinstance(clock, SystemClock))
        self._reading = loading.reading
        self._refresh = loading.refresh
        self._started = False
        self._closed = False
        # hot-path locals: bound once
        self._peek = l1.peek
        self._l1_hit = l1.hit
        self._now = clock.now
        self._beta = cfg.xfetch_beta
        self._grace = cfg.grace
        self._l1_max_ttl = cfg.l1_max_ttl
        self._running = self._flights.running
        self._stale_active = self._stale.active
        self._stream_sink: Any = None
        if cfg.events.stream is not None:
            from precache.cache.stream import StreamSink

            if not isinstance(l2, StreamWriter):
                raise ValueError("an event stream needs an L2 that can write streams (RedisTier)")
            self._stream_sink = StreamSink(l2, cfg.events.stream, cfg.events.stream_maxlen)
            self.events.subscribe(self._stream_sink)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, wait: float = 1.0) -> None:
        """Start background work (the invalidation listener) and wait up to ``wait`` s for it."""
        self._ensure_started()
        await self._channel.wait_subscribed(wait)

    def _ensure_started(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._channel.start()
        self._stale.start()

    async def close(self) -> None:
        """Stop background tasks, flush events, close L2. Idempotent, and bounded: loads still running
        after ``close_timeout`` are cancelled, and no step waits on Redis for more than a few seconds."""
        if self._closed:
            return
        self._closed = self._loading.closed = True
        timeout = self.config.close_timeout
        await self._stale.close()
        await self._channel.close()
        await self._flights.close(timeout)
        try:
            async with asyncio.timeout(timeout):
                await self.events.aclose()
                if self._stream_sink is not None:
                    await self._stream_sink.aclose()
        except TimeoutError:
            log.warning("event handlers did not finish within %.1f s at close", timeout)
        if self.l2 is not None:
            try:
                async with asyncio.timeout(2.0):
                    await self.l2.close()
            except TimeoutError:
                log.warning("L2 connections did not close within 2 s")

    async def __aenter__(self) -> PredictiveCache:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- observation ------------------------------------------------------------------------------
    @property
    def stats(self) -> CacheStats:
        s = self._stats
        s.dropped_events = self.events.dropped
        s.evictions = self.l1.evictions
        s.breaker_state = self.breaker.state
        return s

    @property
    def instance_id(self) -> str:
        return self._channel.instance_id

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Receive every :class:`AccessEvent` (after the request returned). Returns an unsubscribe."""
        return self.events.subscribe(handler)

    def contains(self, key: str) -> bool:
        """Is a fresh copy of ``key`` in L1? No I/O; does not count as a hit (for the warmer)."""
        entry = self._peek(key)
        if entry is None:
            return False
        exp = entry.expires_at
        return exp is None or self._now() < exp

    def _emit(self, key: str, session_id: str | None, context: Any, tier: Tier, t0: float, size: int,
              preloaded_hit: bool = False) -> None:
        self.events.emit(AccessEvent(self._now(), key, session_id, context, tier, _perf() - t0, size,
                                     preloaded_hit))

    def _count_hit(self, entry: Entry) -> bool:
        """Account one L1 hit: the entry's counter, the policy's ``on_hit``, ``stats.l1_hits`` and, on the
        first user hit of a prefetched entry, ``stats.preload_hits``. Every hit site calls this (``get``,
        ``get_many``, a load that finished while this request read L2). Returns whether it was that
        first hit on a preloaded entry."""
        self._l1_hit(entry)
        stats = self._stats
        stats.l1_hits += 1
        if entry.preloaded:
            entry.preloaded = False
            stats.preload_hits += 1
            return True
        return False

    # -- get --------------------------------------------------------------------------------------
    async def get(
        self,
        key: str,
        session_id: str | None = None,
        context: Any = None,
        loader: Loader | None = None,
        ttl: float | None = None,
        tags: Sequence[str] = (),
    ) -> Any:
        """The value for ``key``: from L1, else L2, else ``await loader()`` (filled back into both).

        Returns None when nothing has the key and no loader is given. Redis faults never raise here;
        a loader's own exception does (after being counted), unless a stale value can be served.
        """
        t0 = _perf()
        entry = self._peek(key)
        if entry is not None:
            exp = entry.expires_at
            if exp is None or (now := self._now()) < exp:
                preloaded = self._count_hit(entry)
                if loader is not None and entry.delta > 0.0 and exp is not None and (
                    now - entry.delta * self._beta * math.log(1.0 - random.random()) >= exp
                ):
                    self._refresh(key, loader, ttl, entry.tags)
                if self.events.handlers:
                    self._emit(key, session_id, context, "l1", t0, entry.size, preloaded)
                return entry.value
        return await self._miss(key, session_id, context, loader, ttl, tuple(tags), t0, entry is not None)

    async def _miss(self, key: str, session_id: str | None, context: Any, loader: Loader | None,
                    ttl: float | None, tags: tuple[str, ...], t0: float, expired: bool) -> Any:
        """Everything after an L1 miss, as one chain (see the module docstring). ``expired``: L1 holds
        an entry past its expiry (maybe servable stale)."""
        if not isinstance(key, str):
            raise TypeError(f"cache keys are str, got {type(key).__name__}")
        if not self._started:
            self._ensure_started()
        if self._stale_active:
            self._stale.poll(False)
        stats = self._stats
        emit = bool(self.events.handlers)
        entry = self.l1.lookup(key) if expired else None
        if entry is not None and loader is not None:
            # past expires_at but within grace: serve stale, refresh in the background (SWR)
            stats.stale_hits += 1
            self._refresh(key, loader, ttl, tags)
            if emit:
                self._emit(key, session_id, context, "stale", t0, entry.size)
            return entry.value
        stale: Record | None = None
        read_inline = self._guard is not None and key not in self._running and key not in self._reading
        if read_inline:
            # Common case first, inline (no task): one L2 read. Misses arriving meanwhile go through
            # the shared load below, so a burst still costs two L2 reads, not one per caller.
            record = await self._loading.read_l2(key, tags, False)
            if record is not None and (record.expires_at is None or self._now() < record.expires_at):
                stats.l2_hits += 1
                if emit:
                    self._emit(key, session_id, context, "l2", t0, record.size)
                return record.value
            stale = record
            # A load of this key may have finished (filling L1) while this read was in flight
            fresh = self._peek(key)
            if fresh is not None and (fresh.expires_at is None or self._now() < fresh.expires_at):
                preloaded = self._count_hit(fresh)
                if emit:
                    self._emit(key, session_id, context, "l1", t0, fresh.size, preloaded)
                return fresh.value
            if loader is None:
                stats.misses += 1
                if emit:
                    self._emit(key, session_id, context, "miss", t0, 0)
                return None
        try:
            value, size, tier = await self._loading.shared(LoadRequest(key, loader, ttl, tags, check_l2=not read_inline,
                                                                       stale=stale))
        except Exception:
            if self.events.handlers:
                self._emit(key, session_id, context, "error", t0, 0)
            raise
        if tier == "l2":
            stats.l2_hits += 1
        elif tier == "stale":
            stats.stale_hits += 1
        else:
            stats.misses += 1
        if self.events.handlers:
            self._emit(key, session_id, context, tier, t0, size)
        return None if value is MISSING else value

    # -- policy-driven staleness ------------------------------------------------------------------
    async def poll_stale(self) -> int:
        """Act now on the keys the L1 policy flags as stale (see :class:`StalenessSource`), whatever
        the poll interval; returns how many were revalidated or dropped (0 for the built-in policies).
        The cache does this by itself on the miss path and in the background; the replay, whose clock
        does not tick on its own, may call it explicitly."""
        if not self._stale.active:
            return 0
        self._ensure_started()
        return self._stale.poll(True)

    async def prefetch(self, key: str, loader: Loader, ttl: float | None = None,
                       tags: Sequence[str] = (), *, raise_errors: bool = False) -> bool:
        """Warm ``key`` into L1 (from L2 if it is there, else via ``loader``) and mark it preloaded.

        For the warmer. Returns True when this call stored the value; False when L1 already had a
        fresh copy or a load of the key was already running (it is then left to finish). Redis faults
        never raise. A loader error (or a value that cannot be stored) is counted in
        ``stats.prefetch_errors`` and, by default, swallowed (returns False: a failed prefetch is just
        a missed opportunity); with ``raise_errors=True`` it is re-raised to the caller instead.
        """
        if self.contains(key) or key in self._flights or self._closed:
            return False
        self._ensure_started()
        self._stats.preloads += 1
        task = self._loading.start(LoadRequest(key, loader, ttl, tuple(tags), preloaded=True))
        try:
            await self._flights.join(task, key)
        except LoadCancelledError:
            return False  # the load was cancelled by close(), not this caller: a missed prefetch
        except Exception as exc:
            self._stats.prefetch_errors += 1
            if raise_errors:
                raise
            log.debug("prefetch of %r failed: %r", key, exc)
            return False
        return self._peek(key) is not None

    # -- writes -----------------------------------------------------------------------------------
    async def set(self, key: str, value: Any, ttl: float | None = None, tags: Sequence[str] = ()) -> None:
        """Store ``value`` in L1 and L2 and drop other instances' L1 copies.

        Refuses (raises) a value no safe serializer can represent (:class:`UnserializableValueError`) and,
        with no L2, a value larger than L1's whole budget (:class:`ValueTooLargeError`). When L2 cannot be
        written: see the write-path contract (:meth:`_l2_written`)."""
        if not isinstance(key, str):
            raise TypeError(f"cache keys are str, got {type(key).__name__}")
        self._ensure_started()
        self._stats.sets += 1
        self._channel.bump()
        await self._store(key, value, ttl, tuple(tags), preloaded=False, delta=0.0, publish=True)

    async def _store(self, key: str, value: Any, ttl: float | None, tags: tuple[str, ...], *,
                     preloaded: bool, delta: float, publish: bool) -> int:
        """Encode once, store in L1 (lifetime through the policy's ``ttl_for``), then in L2. ``publish``:
        a user write (invalidate other instances; the write-path contract applies); else a fill-back,
        whose L2 failures are only counted."""
        cfg = self.config
        ttl = cfg.default_ttl if ttl is None else ttl
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds or None, got {ttl}")
        expires_at = None if ttl is None else self._now() + ttl
        raw = self.codec.encode(value, expires_at, delta)  # raises UnserializableValueError
        l1_ttl = ttl
        if cfg.l1_max_ttl is not None:
            l1_ttl = cfg.l1_max_ttl if l1_ttl is None else min(l1_ttl, cfg.l1_max_ttl)
        l1 = self.l1
        guard = self._guard
        if not l1.set(key, value, len(raw), tags=tags, preloaded=preloaded, delta=delta, ttl=l1_ttl,
                      grace=cfg.grace) and guard is None and l1.too_large(key, len(raw)):
            self._stats.too_large += 1
            message = (f"value of {len(raw)} bytes for {key!r} exceeds L1's whole budget "
                       f"({l1.max_bytes} bytes) and there is no L2 to hold it")
            if publish:
                raise ValueTooLargeError(message)
            if self._stats.too_large <= 5:
                log.warning("%s: served but not cached", message)
        if guard is not None:
            px = None if ttl is None else max(1, int((ttl + cfg.grace) * 1000))
            outcome = await guard.write(key, raw, px, tags)
            if publish:
                if outcome is Outcome.OK and self._channel.enabled:
                    outcome = await guard.publish(self._channel.message(keys=[key]))
                self._l2_written(outcome, "set", (key,))
            else:
                self._count_write(outcome)
        return len(raw)

    async def delete(self, key: str) -> None:
        """Remove ``key`` from L1 and L2, and from other instances' L1 (see :meth:`_l2_written`)."""
        self._ensure_started()
        self._stats.deletes += 1
        channel = self._channel
        channel.bump()
        self.l1.delete(key)
        guard = self._guard
        if guard is not None:
            outcome = await guard.delete([key])
            channel.bump()  # reads that started before the L2 delete must not fill L1
            if outcome is Outcome.OK and channel.enabled:
                outcome = await guard.publish(channel.message(keys=[key]))
            self._l2_written(outcome, "delete", (key,))

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Drop every key carrying any of ``tags`` everywhere (L1 here, L2, other instances' L1).
        Returns how many distinct keys were dropped (see :meth:`_l2_written` when L2 fails)."""
        tag_list = [tags] if isinstance(tags, str) else list(tags)
        self._ensure_started()
        channel = self._channel
        channel.bump()
        dropped: set[str] = set()
        for tag in tag_list:
            dropped.update(self.l1.delete_tag(tag))
        guard = self._guard
        if guard is not None:
            outcome, members = await guard.drop_tags(tag_list)
            dropped |= members
            for key in members:  # L1 copies filled from L2 may not carry their tags
                self.l1.delete(key)
            channel.bump()
            if outcome is Outcome.OK and channel.enabled:
                outcome = await guard.publish(channel.message(keys=sorted(members), tags=tag_list))
            self._l2_written(outcome, "invalidate_tags", (), tuple(tag_list))
        return len(dropped)

    def _count_write(self, outcome: Outcome) -> bool:
        """Count an L2 write that did not happen; returns whether it happened."""
        if outcome is Outcome.OK:
            return True
        if outcome is Outcome.SKIPPED or outcome is Outcome.BUSY:
            self._stats.writes_skipped += 1
        else:
            self._stats.writes_failed += 1
        return False

    def _l2_written(self, outcome: Outcome, action: str, keys: tuple[str, ...], tags: tuple[str, ...] = ()) -> None:
        """The write-path contract (docs/contracts.md), in one place, for ``set``/``delete``/``invalidate_tags``.

        L2 written (and the invalidation published): done. Otherwise the write is counted and:

        * ``write_mode="strict"`` (default): this instance drops its L1 copies of ``keys`` (it must not
          serve a value L2 contradicts) and raises :class:`CacheUnavailableError`;
        * ``write_mode="best_effort"``: the keys/tags are recorded as pending (a ``set`` keeps its new value
          in this L1); before L2 is read again their L2 copies are deleted and the invalidation published,
          and until then this instance does not read them from L2. A background task retries meanwhile.
          Beyond ``max_pending_writes`` the write raises as in strict mode.
        """
        if self._count_write(outcome):
            return
        guard = self._guard
        cfg = self.config
        if (cfg.write_mode == "best_effort" and guard is not None
                and len(guard.pending_keys) + len(guard.pending_tags) < cfg.max_pending_writes):
            guard.defer(keys, tags)
            self._start_replayer()
            return
        for key in keys:
            self.l1.delete(key)
        what = ", ".join(repr(k) for k in keys) or "tags " + ", ".join(repr(t) for t in tags)
        reason = {Outcome.SKIPPED: "the circuit breaker is open", Outcome.BUSY: "no L2 connection was free",
                  Outcome.KEY_ERROR: "Redis refused the key"}.get(outcome, "Redis could not be reached")
        raise CacheUnavailableError(f"{action} of {what} did not reach L2 ({reason}); other instances may "
                                    "still read the previous value", keys or tuple(tags))

    def _start_replayer(self) -> None:
        """Retry the pending deletes in the background (every 100 ms) until none is left."""
        task = self._replayer
        if (task is not None and not task.done()) or self._closed:
            return
        guard = self._guard
        assert guard is not None

        async def replay() -> None:
            while guard.has_pending and not self._closed:
                await asyncio.sleep(0.1)
                await guard.replay_pending()

        self._replayer = self._flights.spawn(replay())

    # -- batch reads ------------------------------------------------------------------------------
    async def get_many(self, keys: Sequence[str], session_id: str | None = None,
                       context: Any = None, *, fill_l1: FillMode = "deferred") -> dict[str, Any]:
        """Values of the keys found in L1 or L2 (one MGET for the L1 misses); absent keys are left out.

        What was read from L2 is copied into L1 in one batch (one policy call, one budget enforcement),
        per ``fill_l1``:

        * ``"deferred"`` (default): right after this call returns, on the next event-loop iteration
          (``loop.call_soon``), so the caller does not wait for it: the fill (~1 µs of CPU per key)
          is off the caller's critical path and runs while the loop waits on I/O, e.g. the next
          request's own Redis round trip. It is the same CPU either way; on a saturated loop it only
          changes who waits. Until it runs L1 does not hold the values (a ``get`` of one of them
          meanwhile reads L2 again, and returns the same value).
        * ``"inline"``: before this call returns (a caller that reads the same keys again at once).
        * ``"skip"``: never (a one-off scan that should not displace the working set).

        Either way a fill is dropped (``stats.fills_skipped``) when a write, delete, tag invalidation or
        cross-instance invalidation reached this instance after the MGET was sent (the read may have
        raced with it), and a key that got a fresh L1 entry meanwhile keeps that entry."""
        if fill_l1 not in ("deferred", "inline", "skip"):
            raise ValueError(f"fill_l1 must be 'deferred', 'inline' or 'skip', got {fill_l1!r}")
        t0 = _perf()
        out: dict[str, Any] = {}
        missing: list[str] = []
        emit = bool(self.events.handlers)
        now = self._now()
        peek = self._peek
        count_hit = self._count_hit
        for key in keys:
            entry = peek(key)
            if entry is not None and (entry.expires_at is None or now < entry.expires_at):
                preloaded = count_hit(entry)
                out[key] = entry.value
                if emit:
                    self._emit(key, session_id, context, "l1", t0, entry.size, preloaded)
            else:
                missing.append(key)
        if not missing:
            return out
        stats = self._stats
        guard = self._guard
        raws = None
        generation = self._channel.generation
        if guard is not None:
            self._ensure_started()
            raws = await guard.read_many(missing)
        if raws is None:
            stats.misses += len(missing)
            if emit:
                for key in missing:
                    self._emit(key, session_id, context, "miss", t0, 0)
            return out
        fills = self._loading.decode_fills(missing, raws, out)
        stats.l2_hits += len(fills)
        stats.misses += len(missing) - len(fills)
        if emit:
            for fill in fills:
                self._emit(fill[0], session_id, context, "l2", t0, fill[2])
            for key in missing:
                if key not in out:
                    self._emit(key, session_id, context, "miss", t0, 0)
        if fills:
            if fill_l1 == "deferred":
                asyncio.get_running_loop().call_soon(self._loading.fill_batch, fills, generation)
            elif fill_l1 == "inline":
                self._loading.fill_batch(fills, generation)
        return out

    def cached(self, ttl: float | None = None, key: Callable[..., str] | None = None,
               tags: Sequence[str] = ()) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
        """Decorator form: ``@cache.cached(ttl=60)`` on an async function (see :func:`cached`)."""
        from precache.cache.decorator import cached

        return cached(self, ttl=ttl, key=key, tags=tags)
