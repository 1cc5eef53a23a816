"""The per-process monitor: what components already count, plus served predictions, as snapshots.

Why it reads instead of being told: the cache and the warmer keep plain integer counters
(``CacheStats``, ``WarmerStats``). Incrementing Prometheus metrics next to each of them would cost the hot
path twice. The monitor reads them when it samples (a periodic task, about once a second, feeding the
rolling windows) and when it is scraped. The only hot-path call it adds is :meth:`Monitor.record_prediction`
for a served prediction: a counter, a histogram bucket and, with a session id, one pending entry in the
online accuracy tracker.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from precache.defaults import SESSION_GAP_SECONDS
from precache.monitoring.accuracy import OnlineAccuracyTracker
from precache.monitoring.background import STOP_SECONDS, cancel_task
from precache.monitoring.families import LATENCY_BUCKETS
from precache.monitoring.snapshot import Snapshot, series_key
from precache.monitoring.windows import WINDOWS, RollingVector

BREAKER_STATES = ("closed", "open", "half_open")
# The count vector each rolling window keeps; summary.py computes every windowed figure from it.
WINDOW_FIELDS: tuple[str, ...] = (
    "requests", "hits", "predictive_hits", "scored", "hit1", "hit5", "preloads_completed", "preloads_used",
    "user_misses", "warming_requests", "warming_bytes", "predictions", "latency_sum",
    *(f"latency_bucket_{i}" for i in range(len(LATENCY_BUCKETS) + 1)),
)
_FIELD = {name: i for i, name in enumerate(WINDOW_FIELDS)}
_BUCKET0 = _FIELD["latency_bucket_0"]

StatsReader = Callable[[], Mapping[str, Any]]


@dataclass(slots=True)
class MonitorSources:
    """Where the monitor reads counts from; each is optional (an embedded cache without a warmer, a
    service without a local cache...). ``cache_stats``/``warmer_stats`` return ``as_dict()`` of
    ``CacheStats``/``WarmerStats``; ``l1_usage`` returns (bytes, items); ``model_bytes`` the loaded model size."""

    cache_stats: StatsReader | None = None
    warmer_stats: StatsReader | None = None
    l1_usage: Callable[[], tuple[int, int]] | None = None
    model_bytes: Callable[[], int] | None = None


def _num(stats: Mapping[str, Any], name: str) -> float:
    value = stats.get(name, 0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class Monitor:
    """One process's metrics. Thread-compatible with asyncio use (all calls on the loop's thread)."""

    def __init__(
        self,
        sources: MonitorSources | None = None,
        *,
        clock: Callable[[], float] = time.time,
        session_gap: float = SESSION_GAP_SECONDS,
        max_pending_sessions: int = 100_000,
    ) -> None:
        self.sources = sources or MonitorSources()
        self.clock = clock
        self.accuracy = OnlineAccuracyTracker(session_gap=session_gap, max_sessions=max_pending_sessions)
        self.predictions: Counter[str] = Counter()
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.training_runs: Counter[str] = Counter()
        self.gate_decisions: Counter[str] = Counter()
        self.edge_fallbacks: Counter[str] = Counter()
        self.models: dict[str, str] = {}
        self._windows = {w: RollingVector(len(WINDOW_FIELDS), b, n) for w, (b, n) in WINDOWS.items()}
        self._last: list[float] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self.sections: dict[str, Callable[[], Any]] = {}
        self.value_providers: list[Callable[[], Mapping[str, float]]] = []
        self.scored_listeners: list[Callable[[str, bool], None]] = []
        self.section_errors = 0

    def add_values(self, provider: Callable[[], Mapping[str, float]]) -> None:
        """Add ``provider()`` (series key -> value; families declared in ``families.FAMILIES``) to every
        snapshot's values: counts kept elsewhere (the service's requests) summed and exported like the rest."""
        self.value_providers.append(provider)

    def add_section(self, name: str, provider: Callable[[], Any]) -> None:
        """Add ``provider()`` (JSON, cheap, no I/O: a value kept fresh elsewhere) to every snapshot under
        ``extras[name]``; the JSON summary and the dashboard show it as ``name``."""
        self.sections[name] = provider

    # -- hot path --------------------------------------------------------------------------------
    def record_prediction(
        self,
        seconds: float,
        *,
        kind: str = "page",
        session_id: str | None = None,
        pages: Sequence[str] = (),
        model_version: str | None = None,
    ) -> None:
        """A prediction was served in ``seconds``; with a session id it is scored when the next page comes."""
        self.predictions[kind] += 1
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        if session_id is not None:
            self.accuracy.on_prediction(session_id, pages, model_version or "unknown", self.clock())

    def record_page_view(self, session_id: str, page: str) -> bool | None:
        """The session visited ``page``: scores the prediction served to it before (see the tracker), and
        tells the scored listeners (e.g. experiments: HR@5 per arm)."""
        hit5 = self.accuracy.on_page(session_id, page, self.clock())
        if hit5 is not None:
            for listener in self.scored_listeners:
                listener(session_id, hit5)
        return hit5

    def add_scored_listener(self, listener: Callable[[str, bool], None]) -> None:
        """``listener(session_id, hit_at_5)`` for every scored prediction (called inline: keep it cheap)."""
        self.scored_listeners.append(listener)

    # -- rarer events ----------------------------------------------------------------------------
    def record_training(self, result: str) -> None:
        self.training_runs[result] += 1

    def record_gate(self, decision: str) -> None:
        self.gate_decisions[decision] += 1

    def record_edge_fallback(self, reason: str) -> None:
        self.edge_fallbacks[reason] += 1

    def set_model(self, name: str, version: str) -> None:
        self.models[name] = version

    # -- sampling --------------------------------------------------------------------------------
    def _window_vector(self, cache: Mapping[str, Any], warmer: Mapping[str, Any]) -> list[float]:
        acc = self.accuracy.totals()
        vec = [0.0] * len(WINDOW_FIELDS)
        hits = _num(cache, "l1_hits") + _num(cache, "stale_hits") + _num(cache, "l2_hits")
        vec[_FIELD["requests"]] = hits + _num(cache, "misses")
        vec[_FIELD["hits"]] = hits
        vec[_FIELD["predictive_hits"]] = _num(cache, "preload_hits")
        vec[_FIELD["scored"]] = acc.scored
        vec[_FIELD["hit1"]] = acc.hit1
        vec[_FIELD["hit5"]] = acc.hit5
        vec[_FIELD["preloads_completed"]] = _num(warmer, "completed")
        vec[_FIELD["preloads_used"]] = _num(warmer, "used")
        vec[_FIELD["user_misses"]] = _num(cache, "misses")
        vec[_FIELD["warming_requests"]] = _num(warmer, "started")
        vec[_FIELD["warming_bytes"]] = _num(warmer, "bytes_loaded")
        vec[_FIELD["predictions"]] = float(sum(self.predictions.values()))
        vec[_FIELD["latency_sum"]] = self.latency_sum
        for i, count in enumerate(self.latency_counts):
            vec[_BUCKET0 + i] = float(count)
        return vec

    def _read(self) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        cache = self.sources.cache_stats() if self.sources.cache_stats else {}
        warmer = self.sources.warmer_stats() if self.sources.warmer_stats else {}
        return cache, warmer

    def sample(self, now: float | None = None) -> None:
        """Feed the change since the last sample into the rolling windows (call about once a second)."""
        now = self.clock() if now is None else now
        current = self._window_vector(*self._read())
        last = self._last
        # A counter that went down was reset (a component was replaced): count from zero again.
        delta = current if last is None else [c - p if c >= p else c for c, p in zip(current, last, strict=True)]
        for window in self._windows.values():
            window.add(delta, now)
        self._last = current

    def start(self, interval: float = 1.0) -> None:
        """Sample periodically on the running event loop (idempotent)."""
        if self._sampler is None or self._sampler.done():
            self._sampler = asyncio.get_running_loop().create_task(self._run(interval))

    async def _run(self, interval: float) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval)

    async def stop(self, within: float = STOP_SECONDS) -> None:
        await cancel_task(self._sampler, within)
        self._sampler = None

    # -- snapshot --------------------------------------------------------------------------------
    def snapshot(self, now: float | None = None) -> Snapshot:
        """This process's values now (samples first, so the windows include the latest counts)."""
        now = self.clock() if now is None else now
        self.sample(now)
        cache, warmer = self._read()
        values: dict[str, float] = {}

        def put(family: str, value: float, **labels: str) -> None:
            values[series_key(family, labels)] = float(value)

        if self.sources.cache_stats is not None:
            l1_hits, stale, l2_hits, misses = (_num(cache, n) for n in ("l1_hits", "stale_hits", "l2_hits", "misses"))
            requests = "precache_cache_requests_total"
            put(requests, l1_hits, tier="l1", result="hit")
            put(requests, stale, tier="l1", result="stale")
            put(requests, l2_hits + misses, tier="l1", result="miss")
            put(requests, l2_hits, tier="l2", result="hit")
            put(requests, misses, tier="l2", result="miss")
            put("precache_cache_loads_total", _num(cache, "loads") - _num(cache, "load_errors"), result="ok")
            put("precache_cache_loads_total", _num(cache, "load_errors"), result="error")
            put("precache_cache_joined_loads_total", _num(cache, "joined_loads"))
            put("precache_predictive_hits_total", _num(cache, "preload_hits"))
            put("precache_cache_writes_total", _num(cache, "sets"), op="set")
            put("precache_cache_writes_total", _num(cache, "deletes"), op="delete")
            put("precache_cache_evictions_total", _num(cache, "evictions"), tier="l1")
            put("precache_cache_invalidations_received_total", _num(cache, "invalidations_received"))
            put("precache_redis_errors_total", _num(cache, "redis_errors"))
            put("precache_redis_busy_total", _num(cache, "l2_busy"))
            put("precache_events_dropped_total", _num(cache, "dropped_events"), queue="cache")
            state = str(cache.get("breaker_state", "closed")).replace("-", "_")
            for s in BREAKER_STATES:
                put("precache_circuit_breaker_state", 1.0 if s == state else 0.0, state=s)
        if self.sources.l1_usage is not None:
            l1_bytes, l1_items = self.sources.l1_usage()
            put("precache_cache_tier_bytes", l1_bytes, tier="l1")
            put("precache_cache_tier_items", l1_items, tier="l1")
            put("precache_memory_bytes", l1_bytes, component="l1")
        if self.sources.model_bytes is not None:
            put("precache_memory_bytes", self.sources.model_bytes(), component="model")
        if self.sources.warmer_stats is not None:
            for outcome, stat in (("started", "started"), ("completed", "completed"), ("used", "used"),
                                  ("wasted_evicted", "wasted_evicted"), ("wasted_expired", "wasted_expired"),
                                  ("failed", "failed"), ("not_admitted", "not_admitted")):
                put("precache_preloads_total", _num(warmer, stat), outcome=outcome)
            put("precache_warming_origin_requests_total", _num(warmer, "started"))
            put("precache_warming_origin_bytes_total", _num(warmer, "bytes_loaded"))
            put("precache_events_dropped_total", _num(warmer, "dropped_queue"), queue="warmer")
        for kind, count in self.predictions.items():
            put("precache_predictions_total", count, type=kind)
        for version, counts in self.accuracy.by_version.items():
            put("precache_prediction_scored_total", counts.scored, model_version=version)
            put("precache_prediction_hits_total", counts.hit1, model_version=version, k="1")
            put("precache_prediction_hits_total", counts.hit5, model_version=version, k="5")
        for result, count in self.training_runs.items():
            put("precache_training_runs_total", count, result=result)
        for decision, count in self.gate_decisions.items():
            put("precache_gate_decisions_total", count, decision=decision)
        for reason, count in self.edge_fallbacks.items():
            put("precache_edge_fallbacks_total", count, reason=reason)
        for name, version in self.models.items():
            put("precache_model_info", 1.0, name=name, version=version)
        for provider in self.value_providers:
            values.update(provider())
        histogram = [float(c) for c in self.latency_counts] + [self.latency_sum]
        windows = {}
        for name, window in self._windows.items():
            current, previous = window.totals(now)
            windows[name] = {"current": current, "previous": previous}
        extras: dict[str, Any] = {}
        for section, provider in self.sections.items():
            try:
                extras[section] = provider()
            except Exception:  # a broken section must not take the metrics down with it
                self.section_errors += 1
        return Snapshot(values, {"precache_prediction_latency_seconds": histogram}, windows, extras)


def watch_cache(cache: Any) -> MonitorSources:
    """Sources for a :class:`~precache.cache.PredictiveCache`-like object: its ``stats`` and its L1 usage.

    Duck-typed on public attributes only (``stats.as_dict()``, ``l1.bytes``, ``len(l1)``)."""
    l1 = getattr(cache, "l1", None)
    usage = (lambda: (int(l1.bytes), len(l1))) if l1 is not None else None
    return MonitorSources(cache_stats=lambda: cache.stats.as_dict(), l1_usage=usage)
