"""``PredictiveCache``: the layered cache users call (L1 memory → L2 Redis → loader).

Hot path: an L1 hit is a dict lookup, a clock read, a counter bump and (only when someone subscribed)
an event append; no await, no model call, no network. Everything else — loads, refreshes, L2 writes,
invalidation, events — is on the miss path or in the background.

Safety under load and faults:

* single-flight per key in this process (``get``, ``prefetch`` and refreshes share one map);
* a Redis lease (``SET NX PX``) across processes: one instance loads, the others poll L2 briefly
  or serve stale;
* stale-while-revalidate within ``grace`` seconds after expiry, and XFetch early refresh
  (Vattani et al. 2015: refresh when ``now - delta*beta*ln(U) >= expiry``);
* pub/sub invalidation: a ``set``/``delete``/``invalidate_tags`` drops other instances' L1 copies;
* degraded mode: every L2 call is bounded by the tier's timeout and guarded by a circuit breaker;
  failures are counted, never raised to the caller. An L2 call refused because every connection was
  busy (:class:`L2BusyError`) is local saturation: counted as ``l2_busy``, the breaker is not told;
* L1 fills from L2 reads are skipped when an invalidation or write of this instance happened while
  the read was in flight (the read may have returned the value just replaced);
* policy-driven staleness: when the L1 policy is a :class:`~precache.cache.policy.StalenessSource`
  (the learned optimizer), the keys it flags are polled off the hit path (on the miss path and by a
  background task, at most once per ``stale_poll_interval`` on the injected clock, at most
  ``stale_poll_limit`` keys per poll) and reloaded in the background through the single-flight
  refresh with the key's last loader ("revalidate"), or dropped from L1 ("evict", or no loader known);
* every wait is bounded: lease waits (``lease_wait`` on the injected clock, and in real time),
  ``close`` (``close_timeout``), the listener and L2 shutdown.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import orjson
from redis.exceptions import RedisError

from precache.cache.breaker import CircuitBreaker
from precache.cache.clock import Clock, SystemClock
from precache.cache.codec import HEADER_SIZE, JSON_PREFIX, Codec, Record, SerializerName, decode_parts, unpack_meta
from precache.cache.errors import CacheError, L2BusyError, PoisonedValueError
from precache.cache.events import AccessEvent, EventBus, Handler, Tier
from precache.cache.l2 import L2Tier
from precache.cache.memory import MemoryTier
from precache.cache.policy import StaleAction
from precache.cache.stats import CacheStats

log = logging.getLogger(__name__)

T = TypeVar("T")
Loader = Callable[[], Awaitable[Any] | Any]
FillMode = Literal["deferred", "inline", "skip"]

L2_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
_perf = time.perf_counter


class PredictiveCache:
    """L1 + optional L2 + loader, with stampede protection, SWR, XFetch, invalidation and events.

    ``default_ttl`` (seconds) applies when a call gives no ``ttl``; ``grace`` is how long after expiry
    a value may still be served stale while it is refreshed; ``l1_max_ttl`` caps how long L1 keeps a
    copy (the bound on cross-instance staleness if an invalidation message is lost).

    Staleness hints (only when the L1 policy is a :class:`~precache.cache.policy.StalenessSource` and
    ``policy_staleness`` is on): the policy is polled at most once per ``stale_poll_interval`` seconds of
    the injected clock, for at most ``stale_poll_limit`` keys, on the miss path and, when
    ``stale_poll_background`` (default: only with a :class:`SystemClock`, so a replay on a
    :class:`ManualClock` stays deterministic), by a background task. The last loader of up to
    ``max_known_loaders`` keys is remembered for "revalidate" (closures are kept alive that long).
    """

    def __init__(
        self,
        l1: MemoryTier | None = None,
        l2: L2Tier | None = None,
        clock: Clock | None = None,
        *,
        default_ttl: float | None = 300.0,
        grace: float = 30.0,
        serializer: SerializerName = "json",
        xfetch_beta: float = 1.0,
        lease_ttl: float = 5.0,
        lease_wait: float = 1.0,
        lease_poll: float = 0.01,
        l1_max_ttl: float | None = None,
        invalidation: bool = True,
        breaker: CircuitBreaker | None = None,
        event_queue_size: int = 10_000,
        stream: str | None = None,
        stream_maxlen: int = 100_000,
        instance_id: str | None = None,
        close_timeout: float = 5.0,
        policy_staleness: bool = True,
        stale_poll_interval: float = 1.0,
        stale_poll_limit: int = 64,
        stale_poll_background: bool | None = None,
        max_known_loaders: int = 10_000,
    ) -> None:
        if default_ttl is not None and default_ttl <= 0:
            raise ValueError(f"default_ttl must be > 0 seconds or None, got {default_ttl}")
        if grace < 0 or lease_ttl <= 0 or lease_wait < 0 or lease_poll <= 0 or xfetch_beta < 0:
            raise ValueError("grace, lease_wait, xfetch_beta must be >= 0; lease_ttl, lease_poll > 0")
        if stale_poll_interval <= 0 or stale_poll_limit < 1 or max_known_loaders < 0:
            raise ValueError("stale_poll_interval must be > 0, stale_poll_limit >= 1, max_known_loaders >= 0")
        self.clock: Clock = clock if clock is not None else (l1.clock if l1 is not None else SystemClock())
        self.l1 = l1 if l1 is not None else MemoryTier(clock=self.clock)
        self.l1.clock = self.clock
        if l2 is not None and hasattr(l2, "clock") and clock is not None:
            l2.clock = self.clock
        self.l2 = l2
        self.codec = Codec(serializer)
        self.default_ttl = default_ttl
        self.grace = grace
        self.xfetch_beta = xfetch_beta
        self.lease_ttl = lease_ttl
        self.lease_wait = lease_wait
        self.lease_poll = lease_poll
        self.l1_max_ttl = l1_max_ttl
        self.invalidation = invalidation and l2 is not None
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.events = EventBus(event_queue_size)
        self.instance_id = instance_id or uuid.uuid4().hex
        self.close_timeout = close_timeout
        self._inval_seq = 0  # bumped by every invalidation/write: L2 reads older than it do not fill L1
        self._stream_sink: Any = None
        self._stats = CacheStats()
        self._data = self.l1.data  # the hot path reads the dict directly
        self._now = self.clock.now
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._reading: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event() if self.invalidation else None
        self._connected_once = False
        self._started = False
        self._closed = False
        # Staleness hints from the L1 policy (only a StalenessSource, e.g. the learned optimizer; the
        # built-ins are not, and then none of this costs anything). Loaders are remembered per key
        # (bounded, oldest first out) only in that case, on the load path, for "revalidate".
        stale_keys = getattr(self.l1.policy, "stale_keys", None) if policy_staleness else None
        self._stale_keys: Callable[[int], list[tuple[str, StaleAction]]] | None = (
            stale_keys if callable(stale_keys) else None)
        self.stale_poll_background = (isinstance(self.clock, SystemClock) if stale_poll_background is None
                                      else stale_poll_background)
        self.stale_poll_interval = stale_poll_interval
        self.stale_poll_limit = stale_poll_limit
        self.max_known_loaders = max_known_loaders
        self._next_stale_poll = -math.inf
        self._stale_task: asyncio.Task[None] | None = None
        self._loaders: dict[str, tuple[Loader, float | None, tuple[str, ...]]] | None = (
            {} if self._stale_keys is not None and max_known_loaders > 0 else None)
        if stream is not None:
            from precache.cache.stream import StreamSink

            if self.l2 is None or not hasattr(self.l2, "xadd_many"):
                raise ValueError("stream= needs a RedisTier L2")
            self._stream_sink = StreamSink(self.l2, stream, stream_maxlen)
            self.events.subscribe(self._stream_sink)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, wait: float = 1.0) -> None:
        """Start background work (the invalidation listener) and wait up to ``wait`` s for it."""
        self._ensure_started()
        if self._subscribed is not None and wait > 0:
            try:
                async with asyncio.timeout(wait):
                    await self._subscribed.wait()
            except TimeoutError:
                log.warning("invalidation listener not subscribed after %.1fs; continuing", wait)

    def _ensure_started(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        if self.invalidation and self.l2 is not None:
            self._listener = asyncio.get_running_loop().create_task(
                self.l2.listen(self._on_invalidation, self._on_listener_connect)
            )
        if self._stale_keys is not None and self.stale_poll_background:
            self._stale_task = asyncio.get_running_loop().create_task(self._stale_loop())

    async def close(self) -> None:
        """Stop background tasks, flush events, close L2. Idempotent, and bounded: loads still running
        after ``close_timeout`` are cancelled, and no step waits on Redis for more than a few seconds."""
        if self._closed:
            return
        self._closed = True
        if self._stale_task is not None:
            self._stale_task.cancel()
            await asyncio.gather(self._stale_task, return_exceptions=True)
        if self._listener is not None:
            self._listener.cancel()
            try:  # never let a wedged socket hang shutdown
                async with asyncio.timeout(2.0):
                    await asyncio.gather(self._listener, return_exceptions=True)
            except TimeoutError:
                log.warning("invalidation listener did not stop within 2 s")
        unlisten = getattr(self.l2, "unlisten", None)
        if unlisten is not None:
            unlisten(self._on_invalidation)
        pending = {*self._background, *self._inflight.values()}
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=self.close_timeout)
            if stuck:
                log.warning("%d cache loads still running after %.1f s at close; cancelling them",
                            len(stuck), self.close_timeout)
                for task in stuck:
                    task.cancel()
                await asyncio.wait(stuck, timeout=1.0)
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.events.aclose()
                if self._stream_sink is not None:
                    await self._stream_sink.aclose()
        except TimeoutError:
            log.warning("event handlers did not finish within %.1f s at close", self.close_timeout)
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

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Receive every :class:`AccessEvent` (after the request returned). Returns an unsubscribe."""
        return self.events.subscribe(handler)

    def contains(self, key: str) -> bool:
        """Is a fresh copy of ``key`` in L1? No I/O; does not count as a hit (for the warmer)."""
        entry = self._data.get(key)
        if entry is None:
            return False
        exp = entry.expires_at
        return exp is None or self._now() < exp

    def _emit(self, key: str, session_id: str | None, context: Any, tier: Tier, t0: float, size: int,
              preloaded_hit: bool = False) -> None:
        self.events.emit(AccessEvent(self._now(), key, session_id, context, tier, _perf() - t0, size,
                                     preloaded_hit))

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
        entry = self._data.get(key)
        if entry is not None:
            exp = entry.expires_at
            if exp is None or (now := self._now()) < exp:
                entry.hits += 1
                self.l1.policy.on_hit(entry)
                stats = self._stats
                stats.l1_hits += 1
                preloaded = entry.preloaded
                if preloaded:
                    entry.preloaded = False
                    stats.preload_hits += 1
                if loader is not None and entry.delta > 0.0 and exp is not None and (
                    now - entry.delta * self.xfetch_beta * math.log(1.0 - random.random()) >= exp
                ):
                    self._refresh(key, loader, ttl, entry.tags)
                if self.events.handlers:
                    self._emit(key, session_id, context, "l1", t0, entry.size, preloaded)
                return entry.value
        return await self._get_slow(key, session_id, context, loader, ttl, tuple(tags), t0)

    async def _get_slow(self, key: str, session_id: str | None, context: Any, loader: Loader | None,
                        ttl: float | None, tags: tuple[str, ...], t0: float) -> Any:
        if not isinstance(key, str):
            raise TypeError(f"cache keys are str, got {type(key).__name__}")
        self._ensure_started()
        if self._stale_keys is not None:
            self._poll_stale(False)
        stats = self._stats
        entry = self.l1.lookup(key)
        if entry is not None and loader is not None:
            # past expires_at but within grace: serve stale, refresh in the background (SWR)
            stats.stale_hits += 1
            self._refresh(key, loader, ttl, tags)
            if self.events.handlers:
                self._emit(key, session_id, context, "stale", t0, entry.size)
            return entry.value
        stale: Record | None = None
        read_inline = self.l2 is not None and key not in self._inflight and key not in self._reading
        if read_inline:
            # Common case first, inline (no task): one L2 read. Misses arriving meanwhile go through
            # the shared task below, so a burst still costs two L2 reads, not one per caller.
            reading = self._reading
            reading.add(key)
            seq = self._inval_seq
            try:
                record = await self._l2_get(key)
            finally:
                reading.discard(key)
            if record is not None:
                if record.expires_at is None or self._now() < record.expires_at:
                    self._fill_l1(key, record, tags, False, seq)
                    stats.l2_hits += 1
                    if self.events.handlers:
                        self._emit(key, session_id, context, "l2", t0, record.size)
                    return record.value
                stale = record
            # A load of this key may have finished (filling L1) while this read was in flight, e.g.
            # when the read was slow: use its value rather than start a second load.
            fresh = self._data.get(key)
            if fresh is not None and (fresh.expires_at is None or self._now() < fresh.expires_at):
                stats.l1_hits += 1
                if self.events.handlers:
                    self._emit(key, session_id, context, "l1", t0, fresh.size)
                return fresh.value
            if loader is None:
                stats.misses += 1
                if self.events.handlers:
                    self._emit(key, session_id, context, "miss", t0, 0)
                return None
        # One task per key does lease + loader; concurrent misses (and prefetches) join it,
        # so a burst of N misses costs at most one loader call.
        for _attempt in range(2):
            task = self._inflight.get(key)
            joined = task is not None
            if task is None:
                task = self._start_load(key, loader, ttl, tags, preloaded=False,
                                        check_l2=self.l2 is not None and (not read_inline or _attempt > 0),
                                        stale=stale)
            else:
                stats.joined_loads += 1
            try:
                value, size, tier = await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task.cancelled() and (current is None or not current.cancelling()):
                    # the shared load was cancelled by close(): this caller was not, so it must not
                    # receive a CancelledError (that would look like its own cancellation)
                    raise CacheError(f"cache closed while loading {key!r}") from None
                raise
            except Exception:
                if self.events.handlers:
                    self._emit(key, session_id, context, "error", t0, 0)
                raise
            if tier == "miss" and loader is not None and joined:
                continue  # joined a loader-less lookup that found nothing: load now
            break
        if tier == "l2":
            stats.l2_hits += 1
        elif tier == "stale":
            stats.stale_hits += 1
        else:
            stats.misses += 1
        if joined:
            joined_entry = self._data.get(key)
            if joined_entry is not None and joined_entry.preloaded:
                joined_entry.preloaded = False  # a user touched it before it was ever a "hit"
        if self.events.handlers:
            self._emit(key, session_id, context, tier, t0, size)
        return None if value is _MISSING else value

    # -- loading (single-flight) ------------------------------------------------------------------
    def _start_load(self, key: str, loader: Loader | None, ttl: float | None, tags: tuple[str, ...],
                    preloaded: bool, check_l2: bool = True,
                    stale: Record | None = None) -> asyncio.Task[tuple[Any, int, Tier]]:
        loaders = self._loaders
        if loaders is not None and loader is not None:
            loaders.pop(key, None)  # re-insert: the dict's order is oldest-used first
            loaders[key] = (loader, ttl, tags)
            if len(loaders) > self.max_known_loaders:
                del loaders[next(iter(loaders))]
        task = asyncio.get_running_loop().create_task(
            self._load(key, loader, ttl, tags, preloaded, check_l2, stale)
        )
        self._inflight[key] = task

        def done(t: asyncio.Task[Any]) -> None:
            if self._inflight.get(key) is t:
                del self._inflight[key]
            if not t.cancelled():
                t.exception()  # mark retrieved: joiners re-raise it themselves

        task.add_done_callback(done)
        return task

    async def _load(self, key: str, loader: Loader | None, ttl: float | None, tags: tuple[str, ...],
                    preloaded: bool, check_l2: bool, stale: Record | None = None) -> tuple[Any, int, Tier]:
        if check_l2:
            seq = self._inval_seq
            record = await self._l2_get(key)
            if record is not None:
                if record.expires_at is None or self._now() < record.expires_at:
                    self._fill_l1(key, record, tags, preloaded, seq)
                    return record.value, record.size, "l2"
                stale = record
        if loader is None:
            return _MISSING, 0, "miss"
        if stale is not None and not preloaded:
            # L2 holds a copy past expiry but within grace: serve it, refresh right after this task
            self._fill_l1(key, stale, tags)
            asyncio.get_running_loop().call_soon(self._refresh, key, loader, ttl, tags)
            return stale.value, stale.size, "stale"
        token: str | None = None
        if self.l2 is not None and self.breaker.allow():
            token = uuid.uuid4().hex
            try:
                acquired = await self.l2.acquire_lease(key, token, int(self.lease_ttl * 1000))
                self.breaker.success()
            except L2_ERRORS as exc:
                self._l2_failed(exc)
                acquired, token = True, None  # Redis is unreachable: load locally
            if not acquired:
                token = None
                waited = await self._wait_for_leaseholder(key, tags, preloaded)
                if waited is not None:
                    return waited.value, waited.size, "l2"
        try:
            value, size = await self._call_loader(key, loader, ttl, tags, preloaded)
            return value, size, "origin"
        finally:
            if token is not None and self.l2 is not None and self.breaker.allow():
                try:
                    await self.l2.release_lease(key, token)
                    self.breaker.success()
                except L2_ERRORS as exc:
                    self._l2_failed(exc)

    async def _wait_for_leaseholder(self, key: str, tags: tuple[str, ...], preloaded: bool) -> Record | None:
        """Another instance holds the load lease: poll L2 until its value lands or ``lease_wait`` ends.

        The deadline is on the injected clock (the lease itself expires on that clock in ``MemoryL2``,
        and a replay that advances virtual time past ``lease_wait`` ends the wait), and also in real
        time, so a clock that does not move (a paused replay) can never hold a request forever. The
        polling interval is real sleeping: the leaseholder makes progress on the event loop.
        """
        self._stats.lease_waits += 1
        now = self._now
        deadline = now() + self.lease_wait
        real_deadline = time.monotonic() + self.lease_wait
        while now() < deadline and time.monotonic() < real_deadline:
            await asyncio.sleep(self.lease_poll)
            seq = self._inval_seq
            record = await self._l2_get(key)
            if record is not None and (record.expires_at is None or now() < record.expires_at):
                self._fill_l1(key, record, tags, preloaded, seq)
                return record
            if not self.breaker.allow():
                return None
        return None

    async def _call_loader(self, key: str, loader: Loader, ttl: float | None, tags: tuple[str, ...],
                           preloaded: bool) -> tuple[Any, int]:
        stats = self._stats
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
        size = await self._store(key, value, ttl, tags, preloaded=preloaded, delta=delta, publish=False)
        return value, size

    def _refresh(self, key: str, loader: Loader, ttl: float | None, tags: tuple[str, ...],
                 preloaded: bool = False, policy: bool = False) -> bool:
        """Reload ``key`` in the background unless a load is already running (XFetch / SWR, or a
        policy revalidation when ``policy``). Returns whether a reload was started."""
        running = self._inflight.get(key)
        if (running is not None and not running.done()) or self._closed:
            return False
        if policy:
            self._stats.policy_revalidations += 1
        else:
            self._stats.early_refreshes += 1
        task = self._start_load(key, loader, ttl, tags, preloaded=preloaded, check_l2=False)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    # -- policy-driven staleness ------------------------------------------------------------------
    async def poll_stale(self) -> int:
        """Act now on the keys the L1 policy flags as stale (see :class:`StalenessSource`), whatever
        the poll interval; returns how many were revalidated or dropped (0 for the built-in policies).
        The cache does this by itself on the miss path and in the background; the replay, whose clock
        does not tick on its own, may call it explicitly."""
        if self._stale_keys is None:
            return 0
        self._ensure_started()
        return self._poll_stale(True)

    async def _stale_loop(self) -> None:
        """Background poll for a cache that sees few misses. It wakes every ``stale_poll_interval``
        real seconds (at most 1 s) and polls when that interval has also passed on the injected clock."""
        while not self._closed:
            await asyncio.sleep(min(self.stale_poll_interval, 1.0))
            try:
                self._poll_stale(False)
            except Exception:  # never let a policy bug kill the task
                log.exception("polling the policy for stale keys failed")

    def _poll_stale(self, force: bool) -> int:
        """Off the hit path: ask the policy for stale keys (at most once per interval unless ``force``)
        and reload each in the background through its last loader, or drop its L1 copy."""
        source = self._stale_keys
        if source is None or self._closed:
            return 0
        now = self._now()
        if not force and now < self._next_stale_poll:
            return 0
        self._next_stale_poll = now + self.stale_poll_interval
        try:
            flagged = source(self.stale_poll_limit)
        except Exception:
            log.exception("policy.stale_keys failed")
            return 0
        data = self._data
        loaders = self._loaders
        stats = self._stats
        done: set[str] = set()
        for key, action in flagged[: self.stale_poll_limit]:
            if key in done:
                continue
            entry = data.get(key)
            if entry is None:
                continue  # gone meanwhile
            done.add(key)
            known = loaders.get(key) if loaders is not None and action == "revalidate" else None
            if known is not None:
                loader, ttl, tags = known
                if not self._refresh(key, loader, ttl, tags, entry.preloaded, policy=True):
                    done.discard(key)  # a load of it is already running: that one refreshes it
                continue
            if self.l1.delete(key):
                stats.policy_evictions += 1
        return len(done)

    async def prefetch(self, key: str, loader: Loader, ttl: float | None = None,
                       tags: Sequence[str] = (), *, raise_errors: bool = False) -> bool:
        """Warm ``key`` into L1 (from L2 if it is there, else via ``loader``) and mark it preloaded.

        For the warmer. Returns True when this call stored the value; False when L1 already had a
        fresh copy or a load of the key was already running (it is then left to finish). Redis faults
        never raise. A loader error (or a value that cannot be stored) is counted in
        ``stats.prefetch_errors`` and, by default, swallowed (returns False: a failed prefetch is just
        a missed opportunity); with ``raise_errors=True`` it is re-raised to the caller instead.
        """
        if self.contains(key) or key in self._inflight or self._closed:
            return False
        self._ensure_started()
        self._stats.preloads += 1
        task = self._start_load(key, loader, ttl, tuple(tags), preloaded=True)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                return False  # the load was cancelled by close(), not this caller: a missed prefetch
            raise
        except Exception as exc:
            self._stats.prefetch_errors += 1
            if raise_errors:
                raise
            log.debug("prefetch of %r failed: %r", key, exc)
            return False
        return key in self._data

    # -- writes -----------------------------------------------------------------------------------
    async def set(self, key: str, value: Any, ttl: float | None = None, tags: Sequence[str] = ()) -> None:
        """Store ``value`` in L1 and L2 and drop other instances' L1 copies. Refuses (raises
        :class:`UnserializableValueError`) a value no safe serializer can represent."""
        if not isinstance(key, str):
            raise TypeError(f"cache keys are str, got {type(key).__name__}")
        self._ensure_started()
        self._stats.sets += 1
        self._inval_seq += 1
        await self._store(key, value, ttl, tuple(tags), preloaded=False, delta=0.0, publish=True)

    async def _store(self, key: str, value: Any, ttl: float | None, tags: tuple[str, ...], *,
                     preloaded: bool, delta: float, publish: bool) -> int:
        ttl = self.default_ttl if ttl is None else ttl
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds or None, got {ttl}")
        now = self._now()
        expires_at = None if ttl is None else now + ttl
        raw = self.codec.encode(value, expires_at, delta)  # raises UnserializableValueError
        l1_ttl = ttl
        if self.l1_max_ttl is not None:
            l1_ttl = self.l1_max_ttl if l1_ttl is None else min(l1_ttl, self.l1_max_ttl)
        # L1 lifetime goes through the policy's ttl_for (the learned optimizer may shorten it).
        self.l1.set(key, value, len(raw), tags=tags, preloaded=preloaded, delta=delta,
                    ttl=l1_ttl, grace=self.grace)
        if self.l2 is not None and self.breaker.allow():
            px = None if ttl is None else max(1, int((ttl + self.grace) * 1000))
            try:
                await self.l2.set(key, raw, px, tags)
                if publish and self.invalidation:
                    await self.l2.publish(self._message(keys=[key]))
                self.breaker.success()
            except L2_ERRORS as exc:
                self._l2_failed(exc)
        return len(raw)

    async def delete(self, key: str) -> None:
        """Remove ``key`` from L1 and L2, and from other instances' L1."""
        self._ensure_started()
        self._stats.deletes += 1
        self._inval_seq += 1
        self.l1.delete(key)
        if self.l2 is not None and self.breaker.allow():
            try:
                await self.l2.delete([key])
                self._inval_seq += 1  # reads that started before the L2 delete must not fill L1
                if self.invalidation:
                    await self.l2.publish(self._message(keys=[key]))
                self.breaker.success()
            except L2_ERRORS as exc:
                self._l2_failed(exc)

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Drop every key carrying any of ``tags`` everywhere (L1 here, L2, other instances' L1).
        Returns how many distinct keys were dropped."""
        tag_list = [tags] if isinstance(tags, str) else list(tags)
        self._ensure_started()
        self._inval_seq += 1
        dropped: set[str] = set()
        for tag in tag_list:
            dropped.update(self.l1.delete_tag(tag))
        if self.l2 is not None and self.breaker.allow():
            try:
                members = await self.l2.tag_members(tag_list)
                dropped |= members
                for key in members:  # L1 copies filled from L2 may not carry their tags
                    self.l1.delete(key)
                await self.l2.delete(sorted(members))
                self._inval_seq += 1
                await self.l2.delete_tags(tag_list)
                if self.invalidation:
                    await self.l2.publish(self._message(keys=sorted(members), tags=tag_list))
                self.breaker.success()
            except L2_ERRORS as exc:
                self._l2_failed(exc)
        return len(dropped)

    async def get_many(self, keys: Sequence[str], session_id: str | None = None,
                       context: Any = None, *, fill_l1: FillMode = "inline") -> dict[str, Any]:
        """Values of the keys found in L1 or L2 (one MGET for the L1 misses); absent keys are left out.

        What was read from L2 is copied into L1 in one batch (one policy call, one budget enforcement),
        per ``fill_l1``:

        * ``"inline"`` (default): before this call returns.
        * ``"deferred"``: right after this call returns, on the next event-loop iteration
          (``loop.call_soon``), so the caller does not wait for it. Until then L1 does not hold the
          values yet (a ``get`` of one of them meanwhile reads L2 again, and returns the same value).
          In a closed loop of back-to-back calls this only moves the CPU to the next call; it helps
          when the loop has idle time between requests.
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
        stats = self._stats
        data = self._data
        on_hit = self.l1.policy.on_hit
        for key in keys:
            entry = data.get(key)
            if entry is not None and (entry.expires_at is None or now < entry.expires_at):
                entry.hits += 1
                on_hit(entry)
                stats.l1_hits += 1
                if entry.preloaded:
                    entry.preloaded = False
                    stats.preload_hits += 1
                out[key] = entry.value
                if emit:
                    self._emit(key, session_id, context, "l1", t0, entry.size)
            else:
                missing.append(key)
        if not missing:
            return out
        l2 = self.l2
        if l2 is None or not self.breaker.allow():
            stats.misses += len(missing)
            if emit:
                for key in missing:
                    self._emit(key, session_id, context, "miss", t0, 0)
            return out
        self._ensure_started()
        seq = self._inval_seq
        try:
            raws = await l2.get_many(missing)
        except L2_ERRORS as exc:
            self._l2_failed(exc)
            raws = [None] * len(missing)
        else:
            self.breaker.success()
        now = self._now()
        cap = None if self.l1_max_ttl is None else now + self.l1_max_ttl
        fills: list[tuple[str, Any, int, float | None, float]] = []
        add_fill = fills.append
        loads = orjson.loads
        value: Any
        expires_at: float | None
        for key, raw in zip(missing, raws, strict=True):
            if raw is None:
                if emit:
                    self._emit(key, session_id, context, "miss", t0, 0)
                continue
            if raw[:4] == JSON_PREFIX:  # the common record, decoded inline (no call per key)
                try:
                    value = loads(raw[HEADER_SIZE:])
                except orjson.JSONDecodeError:
                    self._poisoned(key, PoisonedValueError("record payload is not valid JSON"))
                    continue
                soft, delta = unpack_meta(raw, 4)
                expires_at = soft if soft > 0.0 else None
            else:
                try:
                    value, expires_at, delta = decode_parts(raw)
                except PoisonedValueError as exc:
                    self._poisoned(key, exc)
                    continue
            if expires_at is None or now < expires_at:
                out[key] = value
                if cap is None or (expires_at is not None and expires_at <= cap):
                    add_fill((key, value, len(raw), expires_at, delta))
                else:
                    add_fill((key, value, len(raw), cap, delta))
                if emit:
                    self._emit(key, session_id, context, "l2", t0, len(raw))
            elif emit:
                self._emit(key, session_id, context, "miss", t0, 0)
        stats.l2_hits += len(fills)
        stats.misses += len(missing) - len(fills)
        if fills:
            if fill_l1 == "deferred":
                asyncio.get_running_loop().call_soon(self._fill_batch, fills, seq)
            elif fill_l1 == "inline":
                self._fill_batch(fills, seq)
        return out

    def _fill_batch(self, fills: list[tuple[str, Any, int, float | None, float]], seq: int) -> None:
        """Copy a batch read from L2 into L1 unless an invalidation or write happened since ``seq``."""
        if seq != self._inval_seq:
            self._stats.fills_skipped += len(fills)
            return
        self.l1.fill_many(fills, self.grace, keep_fresh=True)

    def cached(self, ttl: float | None = None, key: Callable[..., str] | None = None,
               tags: Sequence[str] = ()) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
        """Decorator form: ``@cache.cached(ttl=60)`` on an async function (see :func:`cached`)."""
        from precache.cache.decorator import cached

        return cached(self, ttl=ttl, key=key, tags=tags)

    # -- L2 helpers -------------------------------------------------------------------------------
    async def _l2_get(self, key: str) -> Record | None:
        l2 = self.l2
        if l2 is None or not self.breaker.allow():
            return None
        try:
            raw = await l2.get(key)
        except L2_ERRORS as exc:
            self._l2_failed(exc)
            return None
        self.breaker.success()
        if raw is None:
            return None
        try:
            value, expires_at, delta = decode_parts(raw)
        except PoisonedValueError as exc:
            self._poisoned(key, exc)
            return None
        return Record(value, expires_at, delta, len(raw))

    def _decode(self, key: str, raw: bytes) -> Record | None:
        try:
            return self.codec.decode(raw)
        except PoisonedValueError as exc:
            self._poisoned(key, exc)
            return None

    def _poisoned(self, key: str, exc: PoisonedValueError) -> None:
        self._stats.poisoned += 1
        if self._stats.poisoned <= 20:
            log.warning("poisoned L2 value for key %r treated as a miss: %s", key, exc)

    def _fill_l1(self, key: str, record: Record, tags: tuple[str, ...], preloaded: bool = False,
                 seq: int | None = None) -> None:
        """Copy an L2 record into L1, unless an invalidation or write happened since ``seq`` (the
        value of ``_inval_seq`` when the L2 read was sent): the read may have raced with it."""
        if seq is not None and seq != self._inval_seq:
            self._stats.fills_skipped += 1
            return
        expires_at = record.expires_at
        if self.l1_max_ttl is not None:
            cap = self._now() + self.l1_max_ttl
            expires_at = cap if expires_at is None else min(expires_at, cap)
        self.l1.fill_many([(key, record.value, record.size, expires_at, record.delta)], self.grace, tags,
                          preloaded)

    def _l2_failed(self, exc: BaseException) -> None:
        if isinstance(exc, L2BusyError):
            # Every connection was busy: our own saturation, not a Redis fault. Skip L2 this time and
            # hand a half-open probe back; do not count it against Redis.
            self._stats.l2_busy += 1
            self.breaker.neutral()
            return
        self._stats.redis_errors += 1
        self.breaker.failure()
        if self._stats.redis_errors <= 5 or self._stats.redis_errors % 1000 == 0:
            log.warning("L2 unavailable (%s: %s); serving from L1 and the loader (errors so far: %d)",
                        type(exc).__name__, exc, self._stats.redis_errors)

    # -- invalidation -----------------------------------------------------------------------------
    def _message(self, keys: Sequence[str] = (), tags: Sequence[str] = ()) -> bytes:
        return orjson.dumps({"o": self.instance_id, "k": list(keys), "t": list(tags)})

    def _on_invalidation(self, message: bytes) -> None:
        try:
            body = orjson.loads(message)
            if body.get("o") == self.instance_id:
                return
            keys = [k for k in body.get("k", ()) if isinstance(k, str)]
            tags = [t for t in body.get("t", ()) if isinstance(t, str)]
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            log.warning("ignoring malformed invalidation message %r", message[:80])
            return
        self._stats.invalidations_received += 1
        self._inval_seq += 1
        for key in keys:
            self.l1.delete(key)
        for tag in tags:
            self.l1.delete_tag(tag)

    def _on_listener_connect(self) -> None:
        if self._connected_once:
            # We were disconnected and may have missed invalidations: drop L1 rather than serve stale.
            self._inval_seq += 1
            self.l1.clear()
        self._connected_once = True
        if self._subscribed is not None:
            self._subscribed.set()


class _Missing:
    __slots__ = ()


_MISSING: Any = _Missing()
