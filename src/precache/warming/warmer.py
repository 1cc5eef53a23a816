"""The warmer: preload the pages a session will probably ask for next, within budgets.

Why it looks like this:
- It never sits on the request path. ``observe`` only appends to a bounded queue (dropping and counting
  when full); predictions and preloads happen in ``step``, run by a background task (``start``) or by the
  replay at the end of each virtual instant, so the predictor sees one batch per instant.
- It preloads through ``cache.prefetch``, which shares the cache's single-flight map: a user request for a
  key being preloaded joins that load and waits only for the remainder.
- Everything it may cost is bounded: a probability threshold, a cap on preloaded-but-unused items
  (globally and per session), a byte budget for those items, an origin concurrency cap, a rate limit,
  and an exponential back-off when the origin errors or slows down.
- It keeps the two numbers that say whether warming pays: preload efficiency (preloads a user then used /
  preloads completed) and predictive hits (user hits served by a preloaded entry).
- Experiments reach it through :class:`precache.types.SessionParameters` (``params=``): per session,
  warming off, another threshold, or a pinned model version (``predictors=`` loads that version). It
  never imports ``precache.experiments``. ``on_preload`` (a :class:`PreloadObserver`) is told each
  preload's session when it is loaded and when it is used, so costs and efficiency can be counted per arm.
- It keeps learning from the requests it is told about (``observe`` for page views, ``observe_access`` or
  ``handle_event`` for the rest), on top of the trained models: page -> asset links and each session's
  appetite for assets (:class:`~precache.warming.online.OnlineAssets`), and, from which of its own origin
  preloads got used, the threshold that keeps their used share at ``target_efficiency``
  (:class:`~precache.warming.limits.EfficiencyTarget`). All of it lives in memory and starts over when
  :meth:`Warmer.set_models` activates another version, so a registry checksum keeps meaning what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from precache.history import LocalHistory, MemoryHistories
from precache.resilience import Backoff, TokenBucket
from precache.types import Clock, Prediction, SessionArm, SessionParameters
from precache.warming.assets import AssetModel
from precache.warming.budgets import WarmerConfig as WarmerConfig  # re-exported: importers use this path
from precache.warming.budgets import WarmerStats as WarmerStats
from precache.warming.limits import EfficiencyTarget
from precache.warming.online import OnlineAssets
from precache.warming.resolver import Loader, NotPreloadable, Resolver

_MAX_NOT_ADMITTED = 10_000
"""Origin preloads L1 did not keep whose fate (used from L2, or wasted) the efficiency target waits for."""


class WarmableCache(Protocol):
    """The two cache methods the warmer needs (``precache.cache.PredictiveCache`` has them)."""

    def contains(self, key: str) -> bool: ...

    async def prefetch(self, key: str, loader: Loader, ttl: float | None = None, tags: Sequence[str] = ()) -> bool: ...


Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None] | None"]
"""Start a preload coroutine: return its task, or None if it already finished (an eager start)."""

class PreloadObserver(Protocol):
    """Told, per session, what warming cost and what it earned (per-arm origin costs and efficiency)."""

    def loaded(self, session: str, key: str, size: int) -> None:
        """A preload for ``session`` came back from the origin with ``size`` bytes (admitted or not)."""

    def used(self, session: str, key: str) -> None:
        """A completed preload for ``session`` served a user request (counted once, like ``stats.used``)."""


class Predictor(Protocol):
    def predict(self, history: Sequence[str], k: int) -> Prediction: ...


PredictorSource = Callable[[str], "Predictor | None"]
"""A pinned model version -> its predictor (None when it cannot be loaded)."""


@dataclass(slots=True)
class _Unused:
    session: str
    size: int
    loaded_at: float
    origin: bool = True


def _size_of(value: object) -> int:
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, str):
        return len(value.encode())
    return 0


class Warmer:
    """Predictive preloading for one cache. See the module docstring for the rules it follows."""

    def __init__(
        self,
        cache: WarmableCache,
        resolver: Resolver,
        clock: Clock,
        predictor: Predictor | None = None,
        config: WarmerConfig | None = None,
        assets: AssetModel | None = None,
        keep_predictions: bool = False,
        spawn: Spawn | None = None,
        params: SessionParameters | None = None,
        predictors: PredictorSource | None = None,
        on_preload: PreloadObserver | None = None,
        model_version: str | None = None,
        history: LocalHistory | None = None,
    ) -> None:
        self.cache = cache
        self.resolver = resolver
        self.clock = clock
        self.predictor = predictor
        self.config = config or WarmerConfig()
        self.assets = assets
        self.online = OnlineAssets(assets, self.config.online, model_version)
        self.stats = WarmerStats()
        self.keep_predictions = keep_predictions
        self._spawn = spawn
        self.params = params
        self.predictors = predictors
        self.on_preload = on_preload
        self._arms: dict[str, SessionArm | None] = {}
        self.latest: dict[str, Prediction] = {}
        cfg = self.config
        self._bucket = TokenBucket(clock, cfg.rate_per_second, cfg.burst)
        self.target = (EfficiencyTarget(cfg.threshold, cfg.target_efficiency)
                       if cfg.target_efficiency is not None else None)
        self.backoff = Backoff(clock, cfg.backoff_initial, cfg.backoff_max)
        self.history: LocalHistory = (history if history is not None
                                      else MemoryHistories(self.config.max_sessions, self.config.max_history))
        """Each session's pages: the process's shared store when given (the middleware's), else the warmer's."""
        self._pending: dict[str, None] = {}
        self._offers: list[tuple[str, Prediction, str | None]] = []
        self._inflight: dict[str, str] = {}
        self._joined: set[str] = set()
        self._unused: dict[str, _Unused] = {}
        self._not_admitted: OrderedDict[str, float] = OrderedDict()
        """Origin preloads L1 did not keep (L2 may have): used or wasted, for the efficiency target only."""
        self._unused_bytes = 0
        self._per_session: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._avg_size = 16 * 1024.0

    # -- the request side: cheap, never blocks ----------------------------------------------------
    def observe(self, session_id: str, page: str) -> None:
        """A session viewed ``page``: record it in :attr:`history` and queue a prediction (dropped if the
        queue is full). When someone else already wrote the view to the shared history, call :meth:`viewed`."""
        self.history.add(session_id, (page,))
        self.viewed(session_id, page)

    def viewed(self, session_id: str, page: str) -> None:
        """A page view already recorded in :attr:`history` (the store is shared, the view written once): learn
        from it online and queue a prediction (dropped if the queue is full)."""
        self.stats.observed += 1
        self.online.observe_page(session_id, page, self.clock.now())
        if session_id not in self._pending and len(self._pending) >= self.config.queue_size:
            self.stats.dropped_queue += 1
            return
        self._pending[session_id] = None
        if self._wake is not None:
            self._wake.set()

    def observe_access(self, session_id: str, item: str) -> None:
        """A session requested ``item`` (a page id the resolver knows, not a page view): online asset links."""
        self.online.observe_access(session_id, item, self.clock.now())

    def set_models(self, predictor: Predictor | None, assets: AssetModel | None, version: str | None) -> None:
        """Activate another trained version: what was learned online on top of the old one is dropped (the
        links and appetites, and the threshold, which was learned for the old model's probabilities)."""
        if version != self.online.version and self.target is not None:
            self.target = EfficiencyTarget(self.config.threshold, self.target.target)
        self.predictor, self.assets = predictor, assets
        self.online.rebase(assets, version)

    def end_session(self, session_id: str) -> None:
        self.history.forget(session_id)
        self.latest.pop(session_id, None)

    def offer(self, session_id: str, predictions: Prediction, current_page: str | None = None) -> None:
        """Queue ready-made predictions (an external model, or the replay's oracle)."""
        self._offers.append((session_id, predictions, current_page))
        if self._wake is not None:
            self._wake.set()

    def record_hit(self, key: str) -> None:
        """A user request was served from the cache; first use of a preloaded entry is a predictive hit."""
        if self._not_admitted and self._not_admitted.pop(key, None) is not None and self.target is not None:
            self.target.outcome(True)
        entry = self._unused.pop(key, None)
        if entry is not None:
            self._forget(entry, used=True)
            self.stats.used += 1
            self.stats.predictive_hits += 1
            if self.on_preload is not None:
                self.on_preload.used(entry.session, key)

    def record_miss(self, key: str) -> None:
        """A user request was not served from the cache: it joined a preload in flight (used), or the
        preloaded entry was evicted/expired before anyone asked (wasted)."""
        if key in self._inflight:
            if key not in self._joined:
                self._joined.add(key)
            return
        if self._not_admitted and self._not_admitted.pop(key, None) is not None and self.target is not None:
            self.target.outcome(False)
        entry = self._unused.pop(key, None)
        if entry is not None:
            self._forget(entry, used=False)
            self.stats.wasted_evicted += 1

    def handle_event(self, event: Any) -> None:
        """Adapter for ``cache.subscribe``: route an ``AccessEvent`` to record_hit / record_miss.

        Events are delivered after the request, so a request that joined a preload in flight is often
        reported once the preload has finished; it began before the preload finished (``time - latency``
        <= the preload's end), which a miss after an eviction cannot, and is counted as used and joined."""
        tier = getattr(event, "tier", None)
        session = getattr(event, "session_id", None)
        if session is not None and tier in ("l1", "l2", "stale", "origin"):
            prefix = getattr(self.resolver, "key_prefix", "")
            key = str(event.key)
            if key.startswith(prefix):
                self.observe_access(session, key[len(prefix):])
        if tier in ("l1", "l2", "stale"):
            self.record_hit(event.key)
        elif tier == "origin":
            entry = self._unused.get(event.key)
            began = float(getattr(event, "time", 0.0)) - float(getattr(event, "latency", 0.0))
            if entry is not None and began <= entry.loaded_at:
                del self._unused[event.key]
                self._forget(entry, used=True)
                self.stats.used += 1
                self.stats.joined += 1
                return
            self.record_miss(event.key)

    # -- the background side ----------------------------------------------------------------------
    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def is_inflight(self, key: str) -> bool:
        return key in self._inflight

    @property
    def unused_bytes(self) -> int:
        return self._unused_bytes

    def has_work(self) -> bool:
        return bool(self._pending or self._offers)

    async def step(self) -> int:
        """Predict for every session queued since the last step (one batch) and start preloads.
        Returns how many preloads were started."""
        items: list[tuple[str, Prediction, str | None]] = self._offers
        self._offers = []
        params = self.params
        self._arms = {}
        if params is not None:  # one lookup per session and step; sessions in a "warming off" arm stop here
            sessions = {s for s, _, _ in items} | set(self._pending)
            self._arms = {s: params.for_session(s) for s in sessions}
            off = {s for s, arm in self._arms.items() if arm is not None and not arm.warming}
            if off:
                self.stats.skipped["arm_off"] += len(off)
                items = [item for item in items if item[0] not in off]
                for s in off:
                    self._pending.pop(s, None)
        if self._pending:
            sessions_now = list(self._pending)
            self._pending.clear()
            items.extend(self._predict(sessions_now, await self._pinned(sessions_now)))
        if not items:
            return 0
        self._expire()
        if self.backoff.paused:
            self.stats.skipped["backoff"] += len(items)
            return 0
        return self._schedule(items)

    async def _pinned(self, sessions: list[str]) -> dict[str, Predictor | None]:
        """The pinned versions these sessions' arms ask for, resolved in a worker thread: the first use of a
        version loads and verifies its files, which must not block the event loop."""
        versions = {arm.model_version for s in sessions if (arm := self._arms.get(s)) is not None and arm.model_version}
        source = self.predictors
        if source is None:
            return dict.fromkeys(versions)
        return {version: await asyncio.to_thread(source, version) for version in versions}

    def _predict(self, sessions: list[str], pinned: dict[str, Predictor | None]
                 ) -> list[tuple[str, Prediction, str | None]]:
        """One batch per model: the default predictor, and each pinned version an arm asks for."""
        groups: dict[str | None, list[str]] = {}
        for s in sessions:
            arm = self._arms.get(s)
            groups.setdefault(arm.model_version if arm is not None else None, []).append(s)
        out: list[tuple[str, Prediction, str | None]] = []
        for version, members in groups.items():
            predictor = self.predictor
            if version is not None:
                predictor = pinned.get(version)
                if predictor is None:  # never fall back to another model: that would mix the arms
                    self.stats.skipped["model_unavailable"] += len(members)
                    continue
            out.extend(self._predict_with(predictor, members))
        return out

    def _predict_with(self, predictor: Predictor | None,
                      sessions: list[str]) -> list[tuple[str, Prediction, str | None]]:
        histories = [self.history.read(s) for s in sessions]
        if predictor is None:
            return [(s, [], h[-1] if h else None) for s, h in zip(sessions, histories, strict=True)]
        k = self.config.top_k
        self.stats.batches += 1
        self.stats.predictions += len(histories)
        try:
            batch = getattr(predictor, "predict_batch", None)
            if batch is not None:
                results: list[Prediction] = list(batch(histories, k))
            else:
                results = [predictor.predict(h, k) for h in histories]
        except Exception:
            self.stats.predictor_errors += 1
            return []
        if self.keep_predictions:
            self.latest.update(zip(sessions, results, strict=True))
        return [(s, r, h[-1] if h else None) for s, r, h in zip(sessions, results, histories, strict=True)]

    def _candidates(self, items: list[tuple[str, Prediction, str | None]]) -> list[tuple[float, str, str]]:
        """``(expected benefit, page, session)``, pages and their assets, best first."""
        default = self.config.threshold if self.target is None else self.target.threshold
        out: list[tuple[float, str, str]] = []
        online = self.online
        assets = online if self.config.preload_assets and (online.config.enabled or self.assets is not None) else None
        skip = online.config.skip_fetched

        def has(session: str, asset: str) -> bool:
            return skip and online.has_fetched(session, asset)

        for session, predictions, current in items:
            arm = self._arms.get(session)
            threshold = arm.threshold if arm is not None and arm.threshold is not None else default
            appetite = online.appetite(session) if assets is not None else 1.0
            if assets is not None and current is not None and self.config.current_page_assets:
                for asset, pa in assets.assets_of(current):
                    if min(1.0, pa * appetite) < threshold:
                        break
                    if not has(session, asset):
                        out.append((min(1.0, pa * appetite), asset, session))
            for page, p in predictions:
                if p < threshold:
                    continue
                out.append((p, page, session))
                if assets is not None:
                    for asset, pa in assets.assets_of(page):
                        if p * min(1.0, pa * appetite) < threshold:
                            break
                        if not has(session, asset):
                            out.append((p * min(1.0, pa * appetite), asset, session))
        out.sort(key=lambda c: -c[0])
        return out

    def _schedule(self, items: list[tuple[str, Prediction, str | None]]) -> int:
        started = 0
        seen: set[str] = set()
        skipped = self.stats.skipped
        cfg = self.config
        for _, page, session in self._candidates(items):
            if page in seen:
                continue
            seen.add(page)
            self.stats.candidates += 1
            resolved = self.resolver.resolve(page)
            if resolved is None:
                skipped["unresolvable"] += 1
                continue
            key, loader = resolved
            if key in self._inflight:
                skipped["inflight"] += 1
                continue
            if key in self._unused or self.cache.contains(key):
                skipped["cached"] += 1
                continue
            if len(self._inflight) >= cfg.max_concurrency:
                skipped["concurrency"] += 1
                continue
            if len(self._unused) + len(self._inflight) >= cfg.max_items and not self._sweep_evicted():
                skipped["max_items"] += 1
                continue
            if self._per_session[session] >= cfg.max_items_per_session:
                skipped["max_items_per_session"] += 1
                continue
            if self._unused_bytes + self._avg_size > cfg.budget_bytes and (
                not self._sweep_evicted() or self._unused_bytes + self._avg_size > cfg.budget_bytes
            ):
                skipped["budget_bytes"] += 1
                continue
            if not self._bucket.try_take():
                skipped["rate"] += 1
                continue
            self._inflight[key] = session
            self._per_session[session] += 1
            coro = self._preload(key, loader, session)
            task = asyncio.get_running_loop().create_task(coro) if self._spawn is None else self._spawn(coro)
            if task is not None:
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            started += 1
        self.stats.started += started
        return started

    async def _preload(self, key: str, loader: Loader, session: str) -> None:
        size = 0
        origin_error = False
        refused = False
        fetched = False

        async def sized() -> bytes | memoryview:
            # the cache's prefetch swallows loader errors (returns False); we still need to see them
            nonlocal size, origin_error, refused, fetched
            fetched = True
            try:
                value = await loader()
            except NotPreloadable:
                refused = True
                raise
            except Exception:
                origin_error = True
                raise
            size = _size_of(value)
            if self.on_preload is not None:
                self.on_preload.loaded(session, key, size)
            return value

        begun = self.clock.now()
        try:
            loaded = await self.cache.prefetch(key, sized)
        except asyncio.CancelledError:
            self._release(key, session)
            raise
        except Exception:
            self._release(key, session)
            self.stats.failed += 1
            self.backoff.failure()
            return
        if refused:
            self._release(key, session)
            self.stats.skipped["not_preloadable"] += 1
            return
        if origin_error:
            self._release(key, session)
            self.stats.failed += 1
            self.backoff.failure()
            return
        self._inflight.pop(key, None)
        joined = key in self._joined
        self._joined.discard(key)
        if self.clock.now() - begun > self.config.slow_after:
            self.stats.slow += 1
            self.backoff.failure()
        else:
            self.backoff.success()
        if not loaded:
            self._per_session[session] -= 1
            self.stats.not_admitted += 1
            if self.target is not None and fetched:  # fetched, not kept in L1 (perhaps in L2): fate unknown yet
                self._not_admitted[key] = self.clock.now()
                if len(self._not_admitted) > _MAX_NOT_ADMITTED:  # bounded: the oldest fate is never learned
                    self._not_admitted.popitem(last=False)
            return
        self.stats.completed += 1
        self.stats.bytes_loaded += size
        self._avg_size += (size - self._avg_size) * 0.05
        if joined:
            self._per_session[session] -= 1
            self.stats.used += 1
            self.stats.joined += 1
            if self.target is not None and fetched:
                self.target.outcome(True)
            if self.on_preload is not None:
                self.on_preload.used(session, key)
            return
        self._unused[key] = _Unused(session, size, self.clock.now(), fetched)
        self._unused_bytes += size

    def _release(self, key: str, session: str) -> None:
        self._inflight.pop(key, None)
        self._joined.discard(key)
        self._per_session[session] -= 1

    def _forget(self, entry: _Unused, used: bool) -> None:
        """Stop tracking a preload that was used or wasted (an origin one moves the efficiency target)."""
        if self.target is not None and entry.origin:
            self.target.outcome(used)
        self._unused_bytes -= entry.size
        self._per_session[entry.session] -= 1
        if self._per_session[entry.session] <= 0:
            del self._per_session[entry.session]

    def _expire(self) -> None:
        """Write off preloads nobody used within ``unused_horizon`` (oldest first; dict keeps order)."""
        limit = self.clock.now() - self.config.unused_horizon
        while self._not_admitted and next(iter(self._not_admitted.values())) <= limit:
            self._not_admitted.popitem(last=False)
            if self.target is not None:
                self.target.outcome(False)
        while self._unused:
            key = next(iter(self._unused))
            entry = self._unused[key]
            if entry.loaded_at > limit:
                break
            del self._unused[key]
            self._forget(entry, used=False)
            self.stats.wasted_expired += 1

    def _sweep_evicted(self) -> bool:
        """Drop unused preloads the cache no longer holds; True if anything was freed."""
        gone = [k for k in self._unused if not self.cache.contains(k)]
        for key in gone:
            self._forget(self._unused.pop(key), used=False)
            self.stats.wasted_evicted += 1
        return bool(gone)

    async def drain(self) -> None:
        """Wait for the preloads in flight (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- production runner --------------------------------------------------------------------------
    def start(self) -> None:
        """Run ``step`` in a background task whenever work is queued."""
        if self._runner is not None:
            return
        self._wake = asyncio.Event()
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the request that woke us finish first
            with contextlib.suppress(Exception):
                await self.step()

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
            self._wake = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
