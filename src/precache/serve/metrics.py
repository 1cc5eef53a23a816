"""``/api/ml/metrics``: the counters this service keeps, as JSON or the Prometheus text format.

What this module keeps: requests by route and status, the per-replica prediction cache's hits and misses,
503s, and gauges (events received / streamed / refused, session-history fallbacks to memory, model loads,
alert-loop errors). Served predictions and their latency are *not* counted here: their one source of truth is
the :class:`~precache.monitoring.Monitor` (:mod:`precache.serve.monitoring`), whose counts and latency
histogram are summed over workers; the JSON's ``predictions`` and ``predictionLatencyMs`` come from it.
These counters are per replica (Prometheus sums them across replicas by its own labels).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ServiceMetrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.prediction_cache_hits = 0
        self.prediction_cache_misses = 0
        self.unavailable = 0
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
