"""``/api/ml/metrics``: the counters this service keeps, as JSON or the Prometheus text format.

What this module keeps: requests by route and status, the per-replica prediction cache's hits and misses,
503s, and gauges (events received / streamed / refused, session-history fallbacks to memory, model loads,
alert-loop errors). Served predictions and their latency are *not* counted here: their one source of truth is
the :class:`~precache.monitoring.Monitor` (:mod:`precache.serve.monitoring`), whose counts and latency
histogram are summed over workers; the JSON's ``predictions`` and ``predictionLatencyMs`` come from it.
They reach Prometheus through the monitor's snapshots (:meth:`ServiceMetrics.values`), summed over a replica's
workers like every other count (:mod:`precache.monitoring.replica`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from precache.monitoring.snapshot import series_key


class ServiceMetrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.prediction_cache_hits = 0
        self.prediction_cache_misses = 0
        self.unavailable = 0
        self.arm_fallbacks = 0  # predictions whose experiment arm's pinned version could not be served
        self.fallback_versions: set[str] = set()
        self.started = time.time()
        self.gauges: dict[str, Callable[[], float]] = {}

    def cache_lookup(self, cached: bool | None) -> None:
        """One prediction answered from the prediction cache (True), computed (False), or neither (None)."""
        if cached is True:
            self.prediction_cache_hits += 1
        elif cached is False:
            self.prediction_cache_misses += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptimeSeconds": round(time.time() - self.started, 1),
            "requests": [{"route": r, "status": s, "count": n} for (r, s), n in sorted(self.requests.items())],
            "predictionCache": {"hits": self.prediction_cache_hits, "misses": self.prediction_cache_misses},
            "unavailable": self.unavailable,
            "experimentArmFallbacks": self.arm_fallbacks,
            **{name: read() for name, read in sorted(self.gauges.items())},
        }

    def values(self) -> dict[str, float]:
        """Every count as a Prometheus series (``precache.monitoring.families`` declares each family with its
        type and HELP text); the monitor adds these to its snapshots, so they are summed over a replica's
        workers like everything else. A gauge name without a declared series is a bug (KeyError)."""
        out = {series_key("precache_http_requests_total", {"route": route, "status": str(status)}): float(n)
               for (route, status), n in self.requests.items()}
        out[series_key("precache_prediction_cache_lookups_total", {"result": "hit"})] = self.prediction_cache_hits
        out[series_key("precache_prediction_cache_lookups_total", {"result": "miss"})] = self.prediction_cache_misses
        out["precache_unavailable_total"] = float(self.unavailable)
        out["precache_experiment_arm_fallbacks_total"] = float(self.arm_fallbacks)
        for name, read in self.gauges.items():
            family, labels = SERIES_OF[name]
            out[series_key(family, labels)] = float(read())
        return out


# The camelCase names of ``ServiceMetrics.gauges`` (kept for the JSON summary) -> their Prometheus series.
SERIES_OF: dict[str, tuple[str, dict[str, str]]] = {
    "sessionsInMemory": ("precache_sessions_in_memory", {}),
    "historyRedisFailures": ("precache_history_redis_failures_total", {}),
    "eventsReceived": ("precache_events_received_total", {}),
    "eventsStreamed": ("precache_events_streamed_total", {}),
    "assetCountFailures": ("precache_asset_count_failures_total", {}),
    "eventsRateLimited": ("precache_events_rate_limited_total", {}),
    "rateLimitRedisFailures": ("precache_rate_limit_redis_failures_total", {}),
    "modelLoads": ("precache_model_loads_total", {}),
    "alertLoopErrors": ("precache_alert_loop_errors_total", {}),
    "gcFrozenObjects": ("precache_gc_frozen_objects", {}),
    "gcFullCollections": ("precache_gc_full_collections_total", {}),
    "edgeForwarded": ("precache_edge_forwarded_total", {}),
    "edgeAnswered": ("precache_edge_answered_total", {}),
    "edgeTimeouts": ("precache_edge_fallbacks_total", {"reason": "timeout"}),
    "edgeErrors": ("precache_edge_fallbacks_total", {"reason": "error"}),
    "edgeSkippedBreakerOpen": ("precache_edge_fallbacks_total", {"reason": "breaker_open"}),
    "onlineLearned": ("precache_online_learned_total", {}),
    "onlineRefused": ("precache_online_refused_total", {}),
    "onlineFlushes": ("precache_online_flushes_total", {}),
    "onlineFlushErrors": ("precache_online_redis_failures_total", {"op": "flush"}),
    "onlineReadFallbacks": ("precache_online_redis_failures_total", {"op": "read"}),
    "onlineDroppedIncrements": ("precache_online_dropped_increments_total", {}),
    "onlineContexts": ("precache_online_contexts", {}),
    "onlineBacklog": ("precache_online_backlog", {}),
    "onlineCalibrationOutcomes": ("precache_online_calibration_outcomes_total", {}),
    **{f"edgeRefresh{r.title().replace('_', '')}": ("precache_edge_refreshes_total", {"result": r})
       for r in ("published", "unchanged", "skipped", "not_leader", "failed")},
    "driftTriggers": ("precache_drift_retrains_total", {"result": "started"}),
    "driftSuppressed": ("precache_drift_retrains_total", {"result": "suppressed"}),
    "driftBusy": ("precache_drift_retrains_total", {"result": "busy"}),
    "driftStartFailures": ("precache_drift_retrains_total", {"result": "failed"}),
    "driftWindowHr5": ("precache_drift_window_hr5", {}),
}


class RequestCounter:
    """ASGI middleware counting answered requests by route template and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests[(path, status)] += 1
