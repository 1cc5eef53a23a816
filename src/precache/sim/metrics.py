"""What one replay measured, and the summary numbers the table and the report show.

Per request we keep only (time, outcome code, load time, size, event index) in typed arrays (33 bytes a
request, not ~150 in lists of Python objects); every summary (hit rate, byte hit rate, cold starts per
minute, mean/p95 load time, hit rate over time, load-time CDF) is computed from them afterwards with
numpy. :meth:`ReplayResult.compact` keeps those summaries and drops the per-request arrays, so an
experiment of many configurations holds only the few whose requests it still needs.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# outcome codes (see replay.py): 0 L1 hit, 1 L2 hit, 2 stale hit, 3 joined a preload, 4 origin, 5 error,
# 6 joined another request's origin fetch
HIT_CODES = (0, 1, 2)
JOIN_CODES = (3, 6)
ORIGIN_CODE = 4


@dataclass(slots=True)
class ReplayResult:
    mode: str
    label: str
    trace: str
    measured: int
    duration: float
    times: array[float] = field(default_factory=lambda: array("d"))
    outcomes: array[int] = field(default_factory=lambda: array("b"))
    latencies: array[float] = field(default_factory=lambda: array("d"))
    sizes: array[int] = field(default_factory=lambda: array("q"))
    indices: array[int] = field(default_factory=lambda: array("q"))
    """The trace event each recorded request is (records arrive in completion order, not event order)."""
    replayed: int = 0
    """Events replayed, warm-up included (what the replay speed counts)."""
    origin_user_requests: int = 0
    origin_user_bytes: int = 0
    origin_preload_requests: int = 0
    origin_preload_bytes: int = 0
    preload_efficiency: float | None = None
    """Origin-fetched preloads used by the next request for their key / origin-fetched preloads."""
    preloads_fetched: int = 0
    preloads_used: int = 0
    predictive_hits: int = 0
    online_hr5: float | None = None
    online_transitions: int = 0
    warmer: dict[str, Any] | None = None
    cache_stats: dict[str, Any] | None = None
    wall_seconds: float = 0.0
    stale_serves: int = 0
    """Measured requests answered from the cache with a copy older than the origin's (see freshness)."""
    ttl_learner: dict[str, Any] | None = None
    compacted: dict[str, Any] | None = None
    """After :meth:`compact`: the summary, CDF and hit-rate series (the per-request arrays are gone)."""

    def compact(self) -> None:
        """Keep what the table and the figures show; free the per-request records."""
        if self.compacted is None:
            self.compacted = {"summary": self.summary(), "cdf": self.latency_cdf(), "series": self.hit_rate_series(30)}
            self.times, self.outcomes, self.latencies = array("d"), array("b"), array("d")
            self.sizes, self.indices = array("q"), array("q")

    def record(self, t: float, outcome: int, latency: float, size: int, index: int = -1) -> None:
        self.indices.append(index)
        self.times.append(t)
        self.outcomes.append(outcome)
        self.latencies.append(latency)
        self.sizes.append(size)

    def _arrays(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        return (np.asarray(self.outcomes, dtype=np.int8), np.asarray(self.latencies, dtype=np.float64),
                np.asarray(self.sizes, dtype=np.float64))

    def summary(self) -> dict[str, Any]:
        """The table's row: rates in [0, 1], times in milliseconds."""
        if self.compacted is not None:
            return dict(self.compacted["summary"])
        outcomes, lat, sizes = self._arrays()
        n = len(outcomes)
        hits = np.isin(outcomes, HIT_CODES)
        served = hits | np.isin(outcomes, JOIN_CODES)
        cold = outcomes == ORIGIN_CODE
        minutes = max(self.duration / 60.0, 1e-9)
        total_bytes = float(sizes.sum())
        n_hits = int(hits.sum())
        return {
            "mode": self.mode,
            "label": self.label,
            "requests": n,
            "hit_rate": float(hits.mean()) if n else math.nan,
            "stale_rate": self.stale_serves / n if n else math.nan,
            "stale_serves": self.stale_serves,
            "hit_or_joined_rate": float(served.mean()) if n else math.nan,
            "byte_hit_rate": float(sizes[hits].sum() / total_bytes) if total_bytes else math.nan,
            "cold_starts": int(cold.sum()),
            "cold_starts_per_min": float(cold.sum() / minutes),
            "joined_preloads": int((outcomes == 3).sum()),
            "joined_other_requests": int((outcomes == 6).sum()),
            "avg_load_ms": float(lat.mean() * 1000) if n else math.nan,
            "p95_load_ms": float(np.percentile(lat, 95) * 1000) if n else math.nan,
            "online_hr5": self.online_hr5,
            "preload_efficiency": self.preload_efficiency,
            "preloads_fetched": self.preloads_fetched,
            "preloads_used": self.preloads_used,
            "predictive_hit_rate": (self.predictive_hits / n_hits) if self.warmer is not None and n_hits else None,
            "origin_requests": self.origin_user_requests + self.origin_preload_requests,
            "extra_origin_requests": self.origin_preload_requests,
            "extra_origin_bytes": self.origin_preload_bytes,
            "origin_bytes": self.origin_user_bytes + self.origin_preload_bytes,
            "replay_seconds": self.wall_seconds,
            "requests_per_second": (self.measured / self.wall_seconds) if self.wall_seconds else None,
            "replayed_per_second": (self.replayed / self.wall_seconds) if self.wall_seconds else None,
        }

    def hit_rate_series(self, buckets: int = 60) -> tuple[list[float], list[float]]:
        """(minutes since the start of the measured part, hit rate in that bucket)."""
        if self.compacted is not None:
            return self.compacted["series"]  # type: ignore[no-any-return]
        if not self.times:
            return [], []
        t = np.asarray(self.times) - self.times[0]
        hits = np.isin(np.asarray(self.outcomes, dtype=np.int8), HIT_CODES).astype(np.float64)
        edges = np.linspace(0, max(float(t[-1]), 1e-9), buckets + 1)
        idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, buckets - 1)
        count = np.bincount(idx, minlength=buckets)
        hit = np.bincount(idx, weights=hits, minlength=buckets)
        keep = count > 0
        centers = ((edges[:-1] + edges[1:]) / 2 / 60.0)[keep]
        return centers.tolist(), (hit[keep] / count[keep]).tolist()

    def latency_cdf(self, points: int = 400) -> tuple[list[float], list[float]]:
        """(load time in ms, fraction of requests at or below it), subsampled to ``points``."""
        if self.compacted is not None:
            return self.compacted["cdf"]  # type: ignore[no-any-return]
        if not self.latencies:
            return [], []
        lat = np.sort(np.asarray(self.latencies)) * 1000
        q = np.linspace(0, 1, points)
        return np.quantile(lat, q).tolist(), q.tolist()
