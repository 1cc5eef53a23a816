"""Render a (merged) snapshot in the Prometheus text format, through prometheus-client.

Why a custom collector on a private registry: the values come from a snapshot (possibly the sum of
several workers), not from live ``Counter`` objects; prometheus-client's metric families and
``generate_latest`` take care of escaping, ``_total`` suffixes and the histogram layout, so the output
passes ``promtool check metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from precache.monitoring.families import FAMILIES, LATENCY_BUCKETS, Family
from precache.monitoring.snapshot import Snapshot, parse_series_key
from precache.monitoring.summary import window_rates

_WINDOW_LABEL = {"60": "1m", "3600": "1h", "86400": "24h"}


def _family(family: Family) -> Any:
    if family.kind == "counter":
        return CounterMetricFamily(family.name, family.help, labels=list(family.labels))
    return GaugeMetricFamily(family.name, family.help, labels=list(family.labels))


def _derived(snapshot: Snapshot) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Ratios computed from summed counts (never summed themselves)."""
    v = snapshot.values
    requests = sum(v.get(f"precache_cache_requests_total{{result={r},tier=l1}}", 0.0) for r in ("hit", "stale", "miss"))
    hits = (v.get("precache_cache_requests_total{result=hit,tier=l1}", 0.0)
            + v.get("precache_cache_requests_total{result=stale,tier=l1}", 0.0)
            + v.get("precache_cache_requests_total{result=hit,tier=l2}", 0.0))
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    if requests > 0:
        out["precache_cache_hit_ratio"] = [({}, hits / requests)]
        predictive = v.get("precache_predictive_hits_total", 0.0)
        out["precache_predictive_hit_ratio"] = [({}, predictive / requests)]
    completed = v.get("precache_preloads_total{outcome=completed}", 0.0)
    if completed > 0:
        out["precache_preload_efficiency"] = [({}, v.get("precache_preloads_total{outcome=used}", 0.0) / completed)]
    accuracy: list[tuple[dict[str, str], float]] = []
    for window, parts in sorted(snapshot.windows.items(), key=lambda item: int(item[0])):
        if "current" not in parts:
            continue
        rates = window_rates(parts["current"])
        label = _WINDOW_LABEL.get(window, window)
        for k, key in (("1", "hr1"), ("5", "accuracy")):
            value = rates[key]
            if value is not None:
                accuracy.append(({"k": k, "window": label}, value))
    if accuracy:
        out["precache_prediction_accuracy"] = accuracy
    return out


class SnapshotCollector:
    """A prometheus-client collector that yields every family present in one snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        grouped: dict[str, list[tuple[dict[str, str], float]]] = {}
        for key, value in self.snapshot.values.items():
            name, labels = parse_series_key(key)
            grouped.setdefault(name, []).append((labels, value))
        grouped.update(_derived(self.snapshot))
        for family in FAMILIES:
            if family.kind == "histogram":
                data = self.snapshot.histograms.get(family.name)
                if data is None:
                    continue
                counts, total = data[:-1], data[-1]
                cumulative, buckets = 0.0, []
                for bound, count in zip([*map(repr, LATENCY_BUCKETS), "+Inf"], counts, strict=True):
                    cumulative += count
                    buckets.append((bound, cumulative))
                yield HistogramMetricFamily(family.name, family.help, buckets=buckets, sum_value=total)
                continue
            series = grouped.get(family.name)
            if not series:
                continue
            metric = _family(family)
            for labels, value in sorted(series, key=lambda s: sorted(s[0].items())):
                metric.add_metric([labels.get(label, "") for label in family.labels], value)
            yield metric


def render_prometheus(snapshot: Snapshot) -> bytes:
    """The classic text exposition (``text/plain; version=0.0.4``) of ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))  # type: ignore[arg-type]
    return generate_latest(registry)


__all__ = ["SnapshotCollector", "render_prometheus"]
