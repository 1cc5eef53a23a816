"""The JSON summary over a window: ``GET /api/ml/metrics?format=json&duration=<ms>``.

Shape: ``{accuracy, cacheHitRate, predictiveHitRate, preloadEfficiency, originOverhead, avgLatency,
p50Latency, p95Latency, memoryBytes, alerts, trends: {accuracy, hitRate}, window: {durationMs,
requestedMs}}``. ``accuracy`` is online HR@5; ``originOverhead`` = origin requests made by warming /
user lookups that missed (the origin requests users caused). Latencies are in milliseconds, totals are
across workers (the input is a merged snapshot). ``duration`` snaps to the nearest window the monitor
keeps (1 minute, 1 hour or 24 hours). A rate whose window saw nothing is ``null``, never 0. Trends
compare the window with the one before it: ``up``/``down`` when the rate moved by more than
``TREND_TOLERANCE``, otherwise (or without data on either side) ``stable``. Sections registered with
:meth:`~precache.monitoring.monitor.Monitor.add_section` (e.g. ``experiments``: each experiment's readout)
are added under their own names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from precache.monitoring.families import LATENCY_BUCKETS
from precache.monitoring.monitor import WINDOW_FIELDS
from precache.monitoring.snapshot import Snapshot, parse_series_key
from precache.monitoring.windows import WINDOWS

TREND_TOLERANCE = 0.01
Trend = Literal["up", "down", "stable"]
_F = {name: i for i, name in enumerate(WINDOW_FIELDS)}


def snap_duration(duration_ms: float) -> str:
    """The kept window nearest to ``duration_ms`` (as the window key: "60", "3600" or "86400")."""
    if duration_ms <= 0:
        raise ValueError("duration must be a positive number of milliseconds")
    return min(WINDOWS, key=lambda w: abs(int(w) * 1000 - duration_ms))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def quantile_from_buckets(q: float, counts: Sequence[float], bounds: Sequence[float] = LATENCY_BUCKETS) -> float | None:
    """Prometheus' ``histogram_quantile`` on per-bucket (not cumulative) counts; the +Inf bucket last.

    Linear interpolation inside the bucket that holds the rank; a rank in +Inf answers the largest bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for i, count in enumerate(counts):
        if seen + count >= rank and count > 0:
            if i >= len(bounds):
                return bounds[-1]
            lower = 0.0 if i == 0 else bounds[i - 1]
            return lower + (bounds[i] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1]


def _trend(current: float | None, previous: float | None) -> Trend:
    if current is None or previous is None:
        return "stable"
    if current - previous > TREND_TOLERANCE:
        return "up"
    if previous - current > TREND_TOLERANCE:
        return "down"
    return "stable"


def window_rates(vector: Sequence[float]) -> dict[str, float | None]:
    """Accuracy (HR@5), HR@1, hit rates, efficiency and latencies (seconds) from one window's counts."""
    predictions = vector[_F["predictions"]]
    buckets = vector[_F["latency_bucket_0"]:]
    return {
        "accuracy": _ratio(vector[_F["hit5"]], vector[_F["scored"]]),
        "hr1": _ratio(vector[_F["hit1"]], vector[_F["scored"]]),
        "cacheHitRate": _ratio(vector[_F["hits"]], vector[_F["requests"]]),
        "predictiveHitRate": _ratio(vector[_F["predictive_hits"]], vector[_F["requests"]]),
        "preloadEfficiency": _ratio(vector[_F["preloads_used"]], vector[_F["preloads_completed"]]),
        "originOverhead": _ratio(vector[_F["warming_requests"]], vector[_F["user_misses"]]),
        "avgLatency": _ratio(vector[_F["latency_sum"]], predictions),
        "p50Latency": quantile_from_buckets(0.5, buckets),
        "p95Latency": quantile_from_buckets(0.95, buckets),
    }


def memory_bytes(snapshot: Snapshot) -> float:
    return sum(v for k, v in snapshot.values.items() if parse_series_key(k)[0] == "precache_memory_bytes")


def summarize(snapshot: Snapshot, duration_ms: float, alerts: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The summary of a merged snapshot over the window nearest to ``duration_ms``."""
    window = snap_duration(duration_ms)
    parts = snapshot.windows.get(window, {})
    empty = [0.0] * len(WINDOW_FIELDS)
    now = window_rates(parts.get("current", empty))
    before = window_rates(parts.get("previous", empty))

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else seconds * 1000.0

    out = {
        "accuracy": now["accuracy"],
        "cacheHitRate": now["cacheHitRate"],
        "predictiveHitRate": now["predictiveHitRate"],
        "preloadEfficiency": now["preloadEfficiency"],
        "originOverhead": now["originOverhead"],
        "avgLatency": ms(now["avgLatency"]),
        "p50Latency": ms(now["p50Latency"]),
        "p95Latency": ms(now["p95Latency"]),
        "memoryBytes": memory_bytes(snapshot),
        "alerts": list(alerts),
        "trends": {
            "accuracy": _trend(now["accuracy"], before["accuracy"]),
            "hitRate": _trend(now["cacheHitRate"], before["cacheHitRate"]),
        },
        "window": {"durationMs": int(window) * 1000, "requestedMs": duration_ms},
    }
    for name, section in snapshot.extras.items():
        out.setdefault(name, section)
    return out
