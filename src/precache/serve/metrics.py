"""``/api/ml/metrics``: the counters this service keeps, as JSON or the Prometheus text format.

What exists today: requests by route and status, prediction latency (window ``duration`` ms, from a
bounded ring), the per-replica prediction cache's hits and misses, events received / streamed / refused,
session-history fallbacks to memory, model loads. The monitoring issue adds online accuracy and alerts.
Counters are per replica (Prometheus sums them across replicas by its own labels).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_RING = 10_000


class ServiceMetrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.predictions: Counter[str] = Counter()  # by type
        self.prediction_cache_hits = 0
        self.prediction_cache_misses = 0
        self.unavailable = 0
        self.latencies: deque[tuple[float, float]] = deque(maxlen=LATENCY_RING)  # (unix time, ms)
        self.started = time.time()
        self.gauges: dict[str, Callable[[], float]] = {}

    def observe_prediction(self, kind: str, latency_ms: float, cached: bool | None) -> None:
        self.predictions[kind] += 1
        self.latencies.append((time.time(), latency_ms))
        if cached is True:
            self.prediction_cache_hits += 1
        elif cached is False:
            self.prediction_cache_misses += 1

    def latency_summary(self, duration_ms: float | None) -> dict[str, Any]:
        since = time.time() - duration_ms / 1000 if duration_ms else 0.0
        values = sorted(ms for t, ms in self.latencies if t >= since)
        if not values:
            return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}

        def q(p: float) -> float:
            return round(values[min(len(values) - 1, int(p * len(values)))], 3)

        return {"count": len(values), "p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "max": round(values[-1], 3)}

    def snapshot(self, duration_ms: float | None) -> dict[str, Any]:
        return {
            "uptimeSeconds": round(time.time() - self.started, 1),
            "requests": [{"route": r, "status": s, "count": n} for (r, s), n in sorted(self.requests.items())],
            "predictions": dict(self.predictions),
            "predictionLatencyMs": {"windowMs": duration_ms, **self.latency_summary(duration_ms)},
            "predictionCache": {"hits": self.prediction_cache_hits, "misses": self.prediction_cache_misses},
            "unavailable": self.unavailable,
            **{name: read() for name, read in sorted(self.gauges.items())},
        }

    def prometheus(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Exporter(self))
        return generate_latest(registry)


class _Exporter(Collector):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        requests = CounterMetricFamily("precache_http_requests", "HTTP requests answered", labels=["route", "status"])
        for (route, status), n in sorted(m.requests.items()):
            requests.add_metric([route, str(status)], n)
        yield requests
        # predictions and their latency histogram are exported by precache.monitoring (summed over workers)
        cache = CounterMetricFamily("precache_prediction_cache", "prediction cache lookups", labels=["result"])
        cache.add_metric(["hit"], m.prediction_cache_hits)
        cache.add_metric(["miss"], m.prediction_cache_misses)
        yield cache
        yield CounterMetricFamily("precache_unavailable", "requests refused with 503", value=m.unavailable)
        for name, read in sorted(m.gauges.items()):
            yield GaugeMetricFamily(f"precache_{_snake(name)}", name, value=float(read()))


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


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
