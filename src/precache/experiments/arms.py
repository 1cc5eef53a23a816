"""Per-arm accumulators: counts and running moments that a readout compares and replicas can sum.

Ratio metrics (hit ratio, HR@5, preload efficiency) are pairs (successes, trials). Mean metrics (load
latency, origin requests and bytes per session) keep count, mean and the sum of squared deviations
(Welford), merged exactly across replicas with Chan's formula. The p95 of load latency comes from a
fixed log-spaced histogram, also summable.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(0.1 * 1.25**i, 4) for i in range(60))  # 0.1 ms .. ~65 s


@dataclass(slots=True)
class Moments:
    n: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def merge(self, other: Moments) -> None:
        if other.n == 0:
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan


@dataclass(slots=True)
class Ratio:
    successes: float = 0.0
    trials: float = 0.0

    def add(self, success: bool) -> None:
        self.trials += 1
        self.successes += success


@dataclass(slots=True)
class ArmStats:
    """What one arm saw. ``sessions`` counts assignments (for the sample-ratio check)."""

    sessions: int = 0
    hits: Ratio = field(default_factory=Ratio)
    accuracy: Ratio = field(default_factory=Ratio)
    preloads: Ratio = field(default_factory=Ratio)
    latency_ms: Moments = field(default_factory=Moments)
    latency_hist: list[float] = field(default_factory=lambda: [0.0] * (len(LATENCY_BOUNDS_MS) + 1))
    origin_requests: Moments = field(default_factory=Moments)  # per session
    origin_bytes: Moments = field(default_factory=Moments)  # per session

    def record_request(self, hit: bool, latency_ms: float) -> None:
        self.hits.add(hit)
        self.latency_ms.add(latency_ms)
        self.latency_hist[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1

    def record_session(self, origin_requests: float, origin_bytes: float) -> None:
        self.origin_requests.add(origin_requests)
        self.origin_bytes.add(origin_bytes)

    def p95_latency_ms(self) -> float | None:
        total = sum(self.latency_hist)
        if total < 2:
            return None
        rank, seen = 0.95 * total, 0.0
        for i, count in enumerate(self.latency_hist):
            seen += count
            if seen >= rank:
                return LATENCY_BOUNDS_MS[min(i, len(LATENCY_BOUNDS_MS) - 1)]
        return LATENCY_BOUNDS_MS[-1]

    def merge(self, other: ArmStats) -> None:
        self.sessions += other.sessions
        for mine, theirs in ((self.hits, other.hits), (self.accuracy, other.accuracy), (self.preloads, other.preloads)):
            mine.successes += theirs.successes
            mine.trials += theirs.trials
        self.latency_ms.merge(other.latency_ms)
        self.origin_requests.merge(other.origin_requests)
        self.origin_bytes.merge(other.origin_bytes)
        self.latency_hist = [a + b for a, b in zip(self.latency_hist, other.latency_hist, strict=True)]

    def as_dict(self) -> dict[str, Any]:
        def moments(m: Moments) -> dict[str, float]:
            return {"n": m.n, "mean": m.mean, "m2": m.m2}

        def ratio(r: Ratio) -> dict[str, float]:
            return {"successes": r.successes, "trials": r.trials}

        return {
            "sessions": self.sessions, "hits": ratio(self.hits), "accuracy": ratio(self.accuracy),
            "preloads": ratio(self.preloads), "latency_ms": moments(self.latency_ms),
            "latency_hist": self.latency_hist, "origin_requests": moments(self.origin_requests),
            "origin_bytes": moments(self.origin_bytes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmStats:
        def moments(d: dict[str, float]) -> Moments:
            return Moments(float(d["n"]), float(d["mean"]), float(d["m2"]))

        def ratio(d: dict[str, float]) -> Ratio:
            return Ratio(float(d["successes"]), float(d["trials"]))

        hist = [float(x) for x in data["latency_hist"]]
        if len(hist) != len(LATENCY_BOUNDS_MS) + 1:
            raise ValueError("latency histogram of the wrong length")
        return cls(int(data["sessions"]), ratio(data["hits"]), ratio(data["accuracy"]), ratio(data["preloads"]),
                   moments(data["latency_ms"]), hist, moments(data["origin_requests"]), moments(data["origin_bytes"]))
