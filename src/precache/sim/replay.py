"""The discrete-event replay: trace requests through the REAL ``PredictiveCache`` on a virtual clock.

Event loop (one asyncio loop, no real sleeping):
1. origin fetches due before the next instant complete in time order: the clock is set to each
   completion time, its future resolved, and the loop drained so the cache stores the value at that time;
2. the user requests of the instant run (``cache.get`` stepped eagerly: a hit never becomes a task);
3. the warmer takes one step (one ``predict_batch`` for every session that moved in this instant) and its
   prefetches start at the same virtual time.
A request's load time is virtual: tier latency for a hit, completion time minus arrival for a request that
waited on the origin (its own fetch, or the remainder of a preload it joined).

Fairness rules every configuration shares (issue 10): the same trace events, warm-up slice and TTL
(``Mode.ttl``), the same bounded L1 and L2 (``MemoryL2`` with a byte budget and LRU eviction, as Redis'
``allkeys-lru``), and the same origin draws (common random numbers, :mod:`precache.sim.origin`: a fetch
costs the draw of the request it serves). Preload efficiency is counted here, not by the warmer: only
preloads that went to the origin count, and one is *used* when the next request for its key is served
without an origin fetch of its own (a hit in L1 or L2, or a join of the preload still loading); a
preload whose key is requested after it was evicted or expired, or was updated first, is wasted.
Counters (origin requests and bytes, preloads) cover only the measured part, as the rates do.

The ``oracle`` configuration is a true upper bound for warming: it knows each session's next request and
has it in place just in time, in extra space that evicts nothing, so every request except the first of
its session is served at L1 latency; the cache itself then sees the request as it would without warming.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from precache.cache.change_rate import ChangeRateTTL
from precache.cache.clock import Clock, ManualClock
from precache.cache.config import CacheConfig, StalenessConfig
from precache.cache.l2 import MemoryL2
from precache.cache.layered import PredictiveCache
from precache.cache.memory import MemoryTier
from precache.cache.policy import EvictionPolicy, LRUPolicy, S3FIFOPolicy
from precache.scoring import hit_at
from precache.sim.eager import start_eager
from precache.sim.freshness import Freshness, TTLWarmableCache
from precache.sim.metrics import ReplayResult
from precache.sim.origin import LatencyModel, SimOrigin, jitter_table
from precache.sim.payloads import zero_payload
from precache.sim.workload import PreparedTrace
from precache.types import SessionParameters
from precache.warming.assets import AssetModel
from precache.warming.online import OnlineConfig
from precache.warming.resolver import Loader, MappingResolver
from precache.warming.warmer import Predictor, PreloadObserver, Warmer, WarmerConfig

# outcome codes stored per request (JOINED: waited on a preload; JOINED_USER: on another request's fetch)
HIT_L1, HIT_L2, STALE, JOINED, ORIGIN, ERROR, JOINED_USER = 0, 1, 2, 3, 4, 5, 6

PolicyFactory = Callable[[Clock], EvictionPolicy]


@dataclass(slots=True)
class Mode:
    """One configuration to compare. ``warming``: "none" | "predictor" | "oracle". ``params`` and
    ``observer`` go to the warmer (per-session experiment arms; per-session preload costs); ``scored``
    hears each online HR@5 outcome with its session (per-arm accuracy)."""

    name: str
    cache: bool = True
    policy: PolicyFactory = lambda clock: S3FIFOPolicy()
    ttl: float | None = 3600.0
    warming: str = "none"
    threshold: float | None = None
    """A fixed warming threshold (the sweep); None: the warmer's own (its efficiency target)."""
    online: bool = True
    """False: the warmer's online layer (page -> asset links, session appetite, efficiency target) is off."""
    label: str = ""
    params: SessionParameters | None = None
    observer: PreloadObserver | None = None
    scored: Callable[[str, bool], None] | None = None
    """Told ``(session, hit@5)`` for each measured page view whose session had a prediction."""
    ttl_learner: Callable[[], ChangeRateTTL] | None = None
    """A fresh adaptive TTL per replay: its per-key TTL replaces ``ttl`` on every load (see freshness)."""


@dataclass(slots=True)
class ReplayConfig:
    l1_bytes: int = 8 * 1024 * 1024
    l2_bytes: int | None = None
    """Byte budget of the in-process L2 (``MemoryL2``, LRU eviction); ``None`` = no L2."""
    latency: LatencyModel = field(default_factory=LatencyModel)
    warmer: WarmerConfig = field(default_factory=WarmerConfig)
    seed: int = 0
    progress: Callable[[int, int], None] | None = None
    progress_every: int = 20_000
    invalidate_share: float = 1.0
    """Share of the trace's content changes the application invalidates (the rest go stale in place)."""


def lru_policy(clock: Clock) -> EvictionPolicy:
    return LRUPolicy()


def _spawn_eager(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run a preload until it first waits on the origin (same virtual instant); no task if it never does."""
    done, task = start_eager(coro)
    return None if done else task


class _CountingLoop:
    """Mixin for any event-loop class: counts the callbacks scheduled with ``call_soon`` that have not
    run yet, using nothing but the loop's public ``call_soon``. asyncio schedules every task step,
    future callback and wake-up through ``loop.call_soon``, so that count is exactly "work ready to
    run" on any loop implementation (asyncio's, uvloop's), without reading a private ready queue."""

    _ready_count = 0

    def call_soon(self, callback: Callable[..., object], *args: Any, context: Any = None) -> asyncio.Handle:
        self._ready_count += 1
        return super().call_soon(self._run_counted, callback, args, context=context)  # type: ignore[misc,no-any-return]

    def _run_counted(self, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self._ready_count -= 1
        callback(*args)


def counting_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory of loops of the current policy's class (asyncio's default, or uvloop's when installed)
    with :class:`_CountingLoop` mixed in, for :func:`drain_loop`."""
    probe = asyncio.get_event_loop_policy().new_event_loop()
    base = type(probe)
    probe.close()
    counting = type(f"Counting{base.__name__}", (_CountingLoop, base), {})
    return counting  # type: ignore[return-value]


async def drain_loop(max_rounds: int = 1_000_000) -> None:
    """Run every callback that is ready, and every callback those schedule, until none is left (all
    tasks wait on something only the virtual clock will complete). Exact on any loop class made by
    :func:`counting_loop_factory`: it yields exactly as long as work is queued, never a fixed number
    of times. Each ``sleep(0)`` lets everything queued before it run (callbacks run in FIFO order)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, _CountingLoop):
        raise RuntimeError("drain_loop needs a loop from counting_loop_factory() (see replay())")
    for _ in range(max_rounds):
        if loop._ready_count <= 0:
            return
        await asyncio.sleep(0)
    raise RuntimeError(f"the event loop did not become idle within {max_rounds} rounds")


class _PreloadLedger:
    """Origin-fetched preloads and whether the next request for their key used them (see module doc)."""

    __slots__ = ("counting", "fetched", "open", "used")

    def __init__(self) -> None:
        self.open: dict[str, bool] = {}  # key -> fetched while measuring
        self.counting = False
        self.fetched = 0
        self.used = 0

    def fetch(self, key: str) -> None:
        self.open[key] = self.counting
        if self.counting:
            self.fetched += 1

    def settle(self, key: str, served_from_cache: bool) -> None:
        measured = self.open.pop(key, None)
        if measured and served_from_cache:
            self.used += 1

    def drop(self, key: str) -> None:
        self.open.pop(key, None)

    @property
    def efficiency(self) -> float | None:
        return self.used / self.fetched if self.fetched else None


def _next_occurrence(keys: list[str]) -> tuple[array[int], dict[str, int]]:
    """For each event, the index of the same key's next event (-1: none); and each key's first event."""
    nxt = array("l", [-1]) * len(keys)
    first: dict[str, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        k = keys[i]
        nxt[i] = first.get(k, -1)
        first[k] = i
    return nxt, first


def _no_cache_result(trace: PreparedTrace, mode: Mode, config: ReplayConfig, started: float) -> ReplayResult:
    """The ``cache=False`` configuration: every measured request pays its own origin draw."""
    ev = trace.events
    result = _new_result(trace, mode)
    result.replayed = trace.measured  # every request goes to the origin
    origin_free = SimOrigin(config.latency, jitter_table(len(ev), config.latency.sigma, config.seed))
    for i in range(trace.warmup, len(ev)):
        result.record(ev.times[i], ORIGIN, origin_free.latency(ev.sizes[i], i), ev.sizes[i], i)
    result.origin_user_requests = trace.measured
    result.origin_user_bytes = sum(ev.sizes[trace.warmup :])
    result.wall_seconds = time.perf_counter() - started
    return result


def _new_result(trace: PreparedTrace, mode: Mode) -> ReplayResult:
    return ReplayResult(mode=mode.name, label=mode.label or mode.name, trace=trace.name,
                        measured=trace.measured, duration=trace.duration, replayed=len(trace.events) - trace.warmup)


class _Replay:
    """The state of one replay through the real cache (clock, tiers, origin, freshness, warmer, counters),
    with one method per phase: set-up (``__init__``), the warm-up/measurement switch, the request loop
    (``run``), settling waits and draining background work, and the final result (``finish``)."""

    __slots__ = ("background", "base_preload", "base_user", "cache", "clock", "config", "ev", "fresh", "hr_hits",
                 "hr_total", "l2", "ledger", "mode", "next_same", "origin", "pending_waits", "result",
                 "session_seen", "trace", "upcoming", "warmer")

    def __init__(self, trace: PreparedTrace, mode: Mode, config: ReplayConfig,
                 predictor: Predictor | None, assets: AssetModel | None) -> None:
        ev = self.ev = trace.events
        self.trace, self.mode, self.config = trace, mode, config
        self.result = _new_result(trace, mode)
        model = config.latency
        clock = self.clock = ManualClock(ev.times[0])
        l1 = MemoryTier(max_bytes=config.l1_bytes, max_items=10_000_000, policy=mode.policy(clock), clock=clock)
        self.l2 = MemoryL2(clock, max_bytes=config.l2_bytes, compact_zero_payloads=True) if config.l2_bytes else None
        # content changes: see Freshness; the model's staleness hints and XFetch are off (every configuration alike)
        self.cache = PredictiveCache(l1=l1, l2=self.l2, clock=clock,
                                     config=CacheConfig(default_ttl=mode.ttl, xfetch_beta=0.0, invalidation=False,
                                                        staleness=StalenessConfig(enabled=False)))
        self.origin = SimOrigin(model, jitter_table(len(ev), model.sigma, config.seed))
        self.fresh = Freshness.of(trace.updates, config.invalidate_share, config.seed, clock, mode.ttl_learner)
        self.ledger = _PreloadLedger()
        self.warmer: Warmer | None = None
        self.upcoming: dict[str, int] = {}
        self.next_same = array("l")
        if mode.warming == "predictor":
            self.next_same, self.upcoming = _next_occurrence(ev.keys)
            self.warmer = self._make_warmer(predictor, assets)
        self.session_seen: set[str] = set()
        self.pending_waits: list[tuple[int, float, list[bool], bool, asyncio.Task[Any]]] = []
        self.background: set[asyncio.Task[Any]] = set()
        self.hr_hits = self.hr_total = 0
        self.base_user = self.base_preload = (0, 0)

    def _make_warmer(self, predictor: Predictor | None, assets: AssetModel | None) -> Warmer:
        """The real warmer, its preloads fetched from the simulated origin (counted by the ledger)."""
        mode, sizes, ledger, fresh = self.mode, self.trace.sizes, self.ledger, self.fresh
        origin, clock, upcoming = self.origin, self.clock, self.upcoming

        def make_loader(page: str) -> Loader | None:
            size = sizes.get(page)
            if size is None:
                return None

            async def load() -> memoryview:
                ledger.fetch(page)
                return await fresh.track(page, origin.fetch(clock.now(), size, True, upcoming.get(page, -1)))

            return load

        wcfg = WarmerConfig(**{f: getattr(self.config.warmer, f) for f in WarmerConfig.__slots__})
        if mode.threshold is not None:  # a fixed threshold (the sweep): no efficiency target moves it
            wcfg.threshold = mode.threshold
            wcfg.target_efficiency = None
        if not mode.online:  # the ablation: what the warmer learned offline only, fixed threshold
            wcfg.online = OnlineConfig(enabled=False, appetite=False)
            wcfg.target_efficiency = None
        warm_cache = TTLWarmableCache(self.cache, partial(fresh.ttl, default=None)) if fresh.learner else self.cache
        return Warmer(warm_cache, MappingResolver(make_loader), clock, predictor=predictor, config=wcfg,
                      assets=assets, keep_predictions=True, spawn=_spawn_eager, params=mode.params,
                      on_preload=mode.observer)

    def start_measuring(self) -> None:
        """The warm-up is over: counters from here on are the measured part."""
        origin = self.origin
        self.ledger.counting = True
        self.base_user = (origin.user.requests, origin.user.bytes)
        self.base_preload = (origin.preload.requests, origin.preload.bytes)

    async def run(self) -> None:
        """Every instant of the trace: due origin completions, content changes, the instant's user requests
        (stepped eagerly; a hit never becomes a task), one warmer step, then whatever became ready."""
        ev, warmup, warmer, fresh, origin = self.ev, self.trace.warmup, self.warmer, self.fresh, self.origin
        times, keys, ev_sizes, sessions, n, clock = ev.times, ev.keys, ev.sizes, ev.sessions, len(ev), self.clock
        upcoming, next_same, session_seen = self.upcoming, self.next_same, self.session_seen
        pending_waits = self.pending_waits
        cache, ledger, record, oracle = self.cache, self.ledger, self.result.record, self.mode.warming == "oracle"
        contains, get, stats, model, config = cache.contains, cache.get, cache.stats, self.config.latency, self.config
        l1_lat, l2_lat, progress, every = model.l1_latency, model.l2_latency, config.progress, config.progress_every
        i = 0
        while i < n:
            t = times[i]
            await self.complete_until(t)
            if t > clock.now():
                clock.set(t)
            if i >= warmup and not ledger.counting:
                self.start_measuring()
            await fresh.advance(t, cache.delete, ledger.drop)  # a dropped preload is outdated: wasted
            j = i
            refreshing = False  # a stale-while-revalidate hit scheduled a background refresh: run it now
            while j < n and times[j] == t:
                key, size, sid = keys[j], ev_sizes[j], sessions[j]
                if warmer is not None:
                    upcoming[key] = next_same[j]
                    self.observe(warmer, j, sid, key)
                flag = [False]

                def user_loader(size: int = size, flag: list[bool] = flag, j: int = j, key: str = key) -> Any:
                    flag[0] = True
                    return fresh.track(key, origin.fetch(clock.now(), size, preload=False, serves=j))

                in_l1 = contains(key)
                if oracle:
                    if not in_l1 and sid in session_seen:  # its preload landed just now in the extra space
                        self.serve_oracle(j, t, key, size, sid)
                        j += 1
                        continue
                    session_seen.add(sid)
                joined = warmer is not None and not in_l1 and warmer.is_inflight(key)
                if joined and warmer is not None:
                    warmer.record_miss(key)
                before_stale = stats.stale_hits
                done, value = start_eager(get(key, session_id=sid, loader=user_loader, ttl=fresh.ttl(key, None)))
                if done:
                    if in_l1:
                        outcome, lat = HIT_L1, l1_lat
                    elif stats.stale_hits != before_stale:
                        outcome, lat, refreshing = STALE, l1_lat, True
                    else:
                        outcome, lat = HIT_L2, l2_lat
                    fresh.served(key, j >= warmup)
                    if j >= warmup:
                        record(t, outcome, lat, size, j)
                    if warmer is not None:
                        warmer.record_hit(key)
                        ledger.settle(key, True)
                else:
                    assert isinstance(value, asyncio.Task)
                    pending_waits.append((j, t, flag, joined, value))
                j += 1
            if warmer is not None and warmer.has_work():
                await warmer.step()
            if pending_waits or refreshing or (warmer is not None and warmer.inflight) or self.background:
                await drain_loop()
                if pending_waits:
                    self.finish_waits()
            if progress is not None and j // every != i // every:
                progress(j, n)
            i = j

    def observe(self, warmer: Warmer, j: int, sid: str, key: str) -> None:
        """Tell the warmer request ``j``; score its standing prediction for a measured page view (HR@5)."""
        if self.ev.pages[j]:
            if j >= self.trace.warmup:
                predicted = warmer.latest.get(sid)
                if predicted is not None:
                    self.hr_total += 1
                    hit5 = hit_at(predicted, key, 5)
                    self.hr_hits += hit5
                    if self.mode.scored is not None:
                        self.mode.scored(sid, hit5)
            warmer.observe(sid, key)
        else:  # the warmer learns page -> asset links online from what it is told (causal)
            warmer.observe_access(sid, key)

    def serve_oracle(self, j: int, t: float, key: str, size: int, sid: str) -> None:
        """The oracle's just-in-time preload: served at L1 latency; the cache sees the request as usual."""
        if j >= self.trace.warmup:
            self.result.record(t, HIT_L1, self.config.latency.l1_latency, size, j)
        fresh = self.fresh
        done, value = start_eager(self.cache.get(key, session_id=sid, loader=fresh.wrap(key, partial(
            self.oracle_load_size, size)), ttl=fresh.ttl(key, None)))
        if not done:  # another request's load of it is running: let it finish
            assert isinstance(value, asyncio.Task)
            self.background.add(value)
            value.add_done_callback(self.background.discard)

    async def oracle_load_size(self, size: int) -> memoryview:
        self.origin.preload.requests += 1  # just in time: its latency is hidden, its cost is not
        self.origin.preload.bytes += size
        ledger = self.ledger
        if ledger.counting:  # fetched for exactly the request that uses it
            ledger.fetched += 1
            ledger.used += 1
        return zero_payload(size)

    def finish_waits(self) -> None:
        """Record the requests whose wait ended (its outcome from how it ended); keep the others waiting."""
        now, warmup, l2_lat = self.clock.now(), self.trace.warmup, self.config.latency.l2_latency
        keys, times, ev_sizes, warmer, ledger = self.ev.keys, self.ev.times, self.ev.sizes, self.warmer, self.ledger
        keep = []
        for idx, t0, flag, joined_preload, task in self.pending_waits:
            if not task.done():
                keep.append((idx, t0, flag, joined_preload, task))
                continue
            failed = task.cancelled() or task.exception() is not None
            if failed:
                outcome, lat = ERROR, now - t0
            elif flag[0]:
                outcome, lat = ORIGIN, now - t0
            elif now == t0:  # finished within its own instant without the origin: an L2 hit
                outcome, lat = HIT_L2, l2_lat
                self.fresh.served(keys[idx], idx >= warmup)
            else:  # waited for a load someone else started: a preload, or another request's miss
                outcome, lat = (JOINED if joined_preload else JOINED_USER), now - t0
            if idx >= warmup:
                self.result.record(times[idx], outcome, lat, ev_sizes[idx], idx)
            if warmer is not None:
                key = keys[idx]
                ledger.settle(key, outcome in (HIT_L2, JOINED))
                if outcome == ORIGIN:
                    warmer.record_miss(key)
                elif outcome == HIT_L2:
                    warmer.record_hit(key)
        self.pending_waits[:] = keep

    async def complete_until(self, limit: float) -> None:
        """Complete the origin fetches due by ``limit`` in time order, each at its own virtual time."""
        origin, clock = self.origin, self.clock
        while origin.pending and origin.next_time() <= limit:
            clock.set(max(clock.now(), origin.next_time()))
            origin.complete_next()
            await drain_loop()
            if self.pending_waits:
                self.finish_waits()

    async def finish(self, started: float) -> ReplayResult:
        """Settle what is still loading, then fill the result's counters (measured part only) and close."""
        await self.complete_until(float("inf"))
        await drain_loop()
        self.finish_waits()
        result, origin, ledger, warmer = self.result, self.origin, self.ledger, self.warmer
        self.fresh.report(result)
        result.origin_user_requests = origin.user.requests - self.base_user[0]
        result.origin_user_bytes = origin.user.bytes - self.base_user[1]
        result.origin_preload_requests = origin.preload.requests - self.base_preload[0]
        result.origin_preload_bytes = origin.preload.bytes - self.base_preload[1]
        if warmer is not None:
            result.warmer = warmer.stats.as_dict()
            result.warmer["threshold"] = warmer.target.threshold if warmer.target else warmer.config.threshold
            result.warmer["online_pages"] = len(warmer.online)
            result.predictive_hits = warmer.stats.predictive_hits
        elif self.mode.warming == "oracle":
            result.warmer = {}
            result.predictive_hits = ledger.used
        if warmer is not None or self.mode.warming == "oracle":
            result.preload_efficiency = ledger.efficiency
            result.preloads_fetched = ledger.fetched
            result.preloads_used = ledger.used
        if self.hr_total:
            result.online_hr5 = self.hr_hits / self.hr_total
            result.online_transitions = self.hr_total
        result.cache_stats = dict(self.cache.stats.as_dict())
        if self.l2 is not None:
            result.cache_stats["l2_evictions"] = self.l2.evictions
        result.replayed = len(self.ev)
        result.wall_seconds = time.perf_counter() - started
        await self.cache.close()
        return result


async def _replay(
    trace: PreparedTrace,
    mode: Mode,
    config: ReplayConfig,
    predictor: Predictor | None,
    assets: AssetModel | None,
) -> ReplayResult:
    started = time.perf_counter()
    if not mode.cache:
        return _no_cache_result(trace, mode, config, started)
    state = _Replay(trace, mode, config, predictor, assets)
    await state.run()
    return await state.finish(started)


def replay(
    trace: PreparedTrace,
    mode: Mode,
    config: ReplayConfig | None = None,
    predictor: Predictor | None = None,
    assets: AssetModel | None = None,
) -> ReplayResult:
    """Replay ``trace`` under ``mode`` on a fresh event loop; see the module docstring."""
    with asyncio.Runner(loop_factory=counting_loop_factory()) as runner:
        return runner.run(_replay(trace, mode, config or ReplayConfig(), predictor, assets))
