"""The online layer a process runs: learn every observed page view, re-rank the frozen model's answers.

Why this shape: learning must never slow or fail a request. ``observe`` is synchronous and O(1): it passes
the guard, adds to the local counts (this replica sees its own traffic at once) and aggregates an increment
for Redis. A background task (``run``) sends the aggregated increments every ``flush_ms`` in one pipeline
and trims the contexts cap. ``rerank`` answers from the local copy of the rows the query needs, and marks
those older than ``refresh_ms``; the same task reads the marked rows from Redis in one pipeline (bounded by
``timeout``), which is how a transition learned on replica A reaches replica B's answers (within a flush and
a refresh: well under a second) without a Redis round trip on the request path. Any Redis failure is
counted and the answer comes from the frozen model plus the local counts: never a failed prediction.
Without Redis (the library) the same layer runs in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from precache.online.calibration import OnlineCalibrator
from precache.online.guards import ContributionGuard
from precache.online.merge import LIVE_DEPTH, MergeParams
from precache.online.redis_store import FlushError, RedisCounts
from precache.online.state import OnlineCounts, epoch_of
from precache.types import Prediction

MAX_PENDING = 200_000  # aggregated increments kept while Redis is away (then the oldest batch is dropped)


class OnlineLayer:
    """Live counts for one process, optionally shared through :class:`RedisCounts` (see the module doc)."""

    def __init__(self, params: MergeParams, *, store: RedisCounts | None = None,
                 guard: ContributionGuard | None = None, max_contexts: int = 100_000, max_successors: int = 64,
                 flush_seconds: float = 0.1, refresh_seconds: float = 0.25, timeout: float = 0.05,
                 clock: Callable[[], float] = time.time, calibrator: OnlineCalibrator | None = None) -> None:
        self.params = params
        self.calibrator = calibrator  # the online answers' map, learned from outcomes (refit by ``run``)
        if calibrator is not None:
            calibrator.inline = store is None  # no background task without a store: refit as outcomes arrive
        self.store = store
        self.guard = guard
        self.local = OnlineCounts(params.half_life, max_contexts, max_successors)
        self.flush_seconds = flush_seconds
        self.refresh_seconds = refresh_seconds
        self.timeout = timeout
        self.clock = clock
        self.pending: defaultdict[tuple[int, str, str], float] = defaultdict(float)
        self.unflushed: defaultdict[str, dict[str, float]] = defaultdict(dict)  # context -> page -> weight
        self.fetched: dict[str, float] = {}
        self.wanted: set[str] = set()  # contexts answered from a stale local copy: refreshed by ``run``
        self.stats: Counter[str] = Counter()
        self.inflight = 0  # increments of a flush under way (back in ``pending`` if it fails)
        self._task: asyncio.Task[None] | None = None

    def configure(self, params: MergeParams) -> None:
        """Use ``params`` from now on (the active model's stored settings: :mod:`precache.online.stored`). A new
        half-life changes the scale of every stored weight, so the local counts and the pending increments
        start afresh (counted in ``resets``); Redis rows of the old scale sit under other epoch keys and expire."""
        if params.half_life != self.params.half_life:
            self.local = OnlineCounts(params.half_life, self.local.max_contexts, self.local.max_successors)
            self.pending.clear()
            self.unflushed.clear()
            self.fetched.clear()
            if self.store is not None:
                self.store.half_life = params.half_life
            self.stats["resets"] += 1
        self.params = params

    # -- learning ----------------------------------------------------------------------------------
    def observe(self, previous: str | None, page: str, *, session: str = "", client: str = "",
                agent: str | None = None, t: float | None = None) -> bool:
        """Learn ``previous -> page`` (a page view that already happened); True when it was learned."""
        if previous is None or not page:
            return False
        now = self.clock() if t is None else t
        if self.guard is not None and not self.guard.allow(session, client, previous, page, now, agent):
            self.stats["refused"] += 1
            return False
        self.local.advance(now)
        weight = self.local.stored_weight(now)
        self.local.add_weighted(previous, page, now, weight)
        self.stats["learned"] += 1
        if self.store is not None:
            epoch = self.local.epoch
            if len(self.pending) >= MAX_PENDING:
                self.stats["dropped_increments"] += len(self.pending)
                self.pending.clear()
                self.unflushed.clear()
            self.pending[(epoch, previous, page)] += weight
            self.pending[(epoch, "", page)] += weight
            row = self.unflushed[previous]
            row[page] = row.get(page, 0.0) + weight
        return True

    async def flush(self) -> int:
        """Send the pending increments (one pipeline); on failure they stay pending, counted."""
        if self.store is None or not self.pending:
            return 0
        batch, unflushed = dict(self.pending), dict(self.unflushed)
        self.pending.clear()
        self.unflushed.clear()
        self.inflight = len(batch)
        try:
            sent = await asyncio.wait_for(self.store.flush(batch), timeout=max(1.0, 10 * self.timeout))
        except Exception as exc:  # any Redis failure: keep what was not sent, count it, never raise
            self.stats["flush_errors"] += 1
            self.inflight = 0
            unsent = exc.unsent if isinstance(exc, FlushError) else batch
            for key, weight in unsent.items():
                self.pending[key] += weight
            for context, row in unflushed.items():
                mine = self.unflushed[context]
                for page, weight in row.items():
                    mine[page] = mine.get(page, 0.0) + weight
            return 0
        self.inflight = 0
        self.stats["flushed_increments"] += len(batch)
        self.stats["flushes"] += 1
        for context in unflushed:
            self.fetched.pop(context, None)  # the next read sees the shared row, our increments included
        return sent

    async def run(self) -> None:
        """Every ``flush_seconds``: send the pending increments, refresh the rows answers wanted, and now and
        then trim the contexts cap (until cancelled)."""
        rounds = 0
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()
            await self.refresh()
            if self.calibrator is not None:
                self.calibrator.maybe_refit()
            rounds += 1
            if self.store is not None and rounds % 50 == 0:
                with contextlib.suppress(Exception):
                    await self.store.trim(epoch_of(self.clock(), self.params.half_life))

    def start(self) -> None:
        if self._task is None and self.store is not None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="precache-online-flush")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    # -- reading -----------------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read the wanted rows from Redis in one pipeline (off the request path)."""
        if self.store is None or not self.wanted:
            return
        wanted, self.wanted = list(self.wanted), set()
        await self._refresh(wanted, self.clock())

    async def _refresh(self, contexts: Sequence[str], now: float) -> None:
        if self.store is None:
            return
        stale = [c for c in dict.fromkeys(contexts) if now - self.fetched.get(c, -1e18) >= self.refresh_seconds]
        if not stale:
            return
        try:
            rows = await asyncio.wait_for(self.store.rows(stale, now), timeout=self.timeout)
        except Exception:  # Redis away or slow: frozen + local counts, counted
            self.stats["read_fallbacks"] += 1
            return
        self.stats["rows_read"] += len(rows)
        for context, row in rows.items():
            for page, weight in self.unflushed.get(context, {}).items():
                row[page] = row.get(page, 0.0) + weight
            if row:
                self.local.replace_row(context, row, now)
            self.fetched[context] = now
        if len(self.fetched) > 4 * self.local.max_contexts:
            self.fetched.clear()

    def calibrated(self, answer: Prediction, waiting: str | None = None) -> Prediction:
        """``answer`` through the calibrator (if any), which keeps it under ``waiting`` (a session) until
        :meth:`OnlineCalibrator.outcome` sees what the visitor did next."""
        if self.calibrator is None:
            return answer
        if waiting:
            self.calibrator.served(waiting, answer)
        return self.calibrator.apply(answer)

    async def rerank(self, histories: Sequence[Sequence[str]], frozen: Sequence[Prediction],
                     k: int, sessions: Sequence[str] | None = None) -> list[Prediction]:
        """The frozen lists merged with the live rows of each history's last page, from the local copy (no I/O
        here: a row older than ``refresh_seconds`` is answered as it is and read again by ``run``)."""
        now = self.clock()
        if self.store is not None:
            for history in histories:
                if history and now - self.fetched.get(history[-1], -1e18) >= self.refresh_seconds:
                    self.wanted.add(history[-1])
        out = []
        for i, (history, ranked) in enumerate(zip(histories, frozen, strict=True)):
            row, n = self.local.head(history[-1], LIVE_DEPTH, now) if history else ([], 0.0)
            out.append(self.calibrated(self.params.answer(ranked, row, n, k), sessions[i] if sessions else None))
        return out

    @property
    def backlog(self) -> int:
        """Increments not yet acknowledged by Redis (pending and in flight)."""
        return len(self.pending) + self.inflight

    def snapshot(self) -> dict[str, Any]:
        """Counters and sizes for metrics and the dashboard."""
        refused = dict(self.guard.refused) if self.guard is not None else {}
        calibration = self.calibrator.snapshot() if self.calibrator is not None else None
        return {**self.stats, "contexts": len(self.local), "pending": self.backlog, "calibration": calibration,
                "evicted_contexts": self.local.evicted_contexts, "refused_by": refused}


def online_gauges(layer: OnlineLayer) -> dict[str, Callable[[], float]]:
    """The layer's counters as metric gauges (``onlineLearned``, ``onlineReadFallbacks``, ...)."""
    def counter(name: str) -> Callable[[], float]:
        return lambda: float(layer.stats[name])

    names = ("learned", "refused", "flushes", "flush_errors", "read_fallbacks", "dropped_increments")
    gauges = {"online" + name.title().replace("_", ""): counter(name) for name in names}
    gauges["onlineContexts"] = lambda: float(len(layer.local))
    gauges["onlineBacklog"] = lambda: float(layer.backlog)
    calibrator = layer.calibrator
    if calibrator is not None:  # the online calibrator's outcomes (its map: the layer's snapshot, per replica)
        gauges["onlineCalibrationOutcomes"] = lambda: float(calibrator.outcomes)
    return gauges
