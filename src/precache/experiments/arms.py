"""Per-arm accumulators: counts and running moments that a readout compares and replicas can sum.

Ratio metrics (hit ratio, HR@5, preload efficiency) are pairs (successes, trials). When arms are assigned
per session, the requests of one session are not independent draws (a session that hits keeps hitting),
so every per-request metric (hit ratio, load latency, HR@5, preload use) also keeps per-session sums
(:class:`Clustered`) for the delta-method variance: the session is the unit of randomization, and a test on
requests alone is too confident (issue 28: latency p = 7e-17 per request beside a session-level 4e-8).
Mean metrics (load
latency, origin requests and bytes per session) keep count, mean and the sum of squared deviations
(Welford), merged exactly across replicas with Chan's formula. The p95 of load latency comes from a
fixed log-spaced histogram, also summable.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

CLUSTERED = ("session_hits", "session_latency", "session_accuracy", "session_preloads")
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
class Clustered:
    """Per-session sums of (trials n, successes x) for a ratio metric: sessions m, sums of n, x, n², x², n·x.

    The ratio R = Σx / Σn has, by the delta method (Deng, Knoblich, Lu 2018), the variance
    Var(R) ≈ (s_xx − 2 R s_nx + R² s_nn) / (m · n̄²), with s the sample (co)variances over sessions."""

    m: float = 0.0
    n: float = 0.0
    x: float = 0.0
    nn: float = 0.0
    xx: float = 0.0
    nx: float = 0.0

    def add(self, trials: float, successes: float) -> None:
        self.m += 1
        self.n += trials
        self.x += successes
        self.nn += trials * trials
        self.xx += successes * successes
        self.nx += trials * successes

    def merge(self, other: Clustered) -> None:
        self.m += other.m
        self.n += other.n
        self.x += other.x
        self.nn += other.nn
        self.xx += other.xx
        self.nx += other.nx

    def ratio_variance(self) -> tuple[float, float] | None:
        """(R, Var(R)), or None with fewer than 2 sessions."""
        m = self.m
        if m < 2 or self.n <= 0:
            return None
        mean_n, mean_x = self.n / m, self.x / m
        s_nn = (self.nn - m * mean_n * mean_n) / (m - 1)
        s_xx = (self.xx - m * mean_x * mean_x) / (m - 1)
        s_nx = (self.nx - m * mean_n * mean_x) / (m - 1)
        r = self.x / self.n
        return r, max(0.0, (s_xx - 2 * r * s_nx + r * r * s_nn) / (m * mean_n * mean_n))

    def as_dict(self) -> dict[str, float]:
        return {"m": self.m, "n": self.n, "x": self.x, "nn": self.nn, "xx": self.xx, "nx": self.nx}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> Clustered:
        return cls(*(float(data[k]) for k in ("m", "n", "x", "nn", "xx", "nx")))


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
    session_hits: Clustered = field(default_factory=Clustered)
    """The hit ratio's per-session sums (filled by :meth:`record_session`), for the delta method."""
    session_latency: Clustered = field(default_factory=Clustered)
    """Per session: requests and their summed load latency (ms): mean latency per request, clustered."""
    session_accuracy: Clustered = field(default_factory=Clustered)
    """Per session: scored predictions and their HR@5 hits."""
    session_preloads: Clustered = field(default_factory=Clustered)
    """Per session: preloads loaded and the ones a request then used."""

    def record_request(self, hit: bool, latency_ms: float) -> None:
        self.hits.add(hit)
        self.latency_ms.add(latency_ms)
        self.latency_hist[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1

    def record_session(self, origin_requests: float, origin_bytes: float, requests: float | None = None,
                       hits: float | None = None, latency_ms: float | None = None) -> None:
        """A session ended: its origin costs and, when known, its requests, hits and summed latency (for the
        delta method)."""
        self.origin_requests.add(origin_requests)
        self.origin_bytes.add(origin_bytes)
        if requests is not None and hits is not None and requests > 0:
            self.session_hits.add(requests, hits)
            if latency_ms is not None:
                self.session_latency.add(requests, latency_ms)

    def clustered(self, metric: str) -> Clustered:
        """The per-session sums behind ``metric`` (hits, latency_ms, accuracy, preloads)."""
        return {"hits": self.session_hits, "latency_ms": self.session_latency, "accuracy": self.session_accuracy,
                "preloads": self.session_preloads}[metric]

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
        for name in CLUSTERED:
            getattr(self, name).merge(getattr(other, name))
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
            **{name: getattr(self, name).as_dict() for name in CLUSTERED},
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
        sums = {name: Clustered.from_dict(data[name]) if name in data else Clustered() for name in CLUSTERED}
        return cls(int(data["sessions"]), ratio(data["hits"]), ratio(data["accuracy"]), ratio(data["preloads"]),
                   moments(data["latency_ms"]), hist, moments(data["origin_requests"]), moments(data["origin_bytes"]),
                   **sums)
