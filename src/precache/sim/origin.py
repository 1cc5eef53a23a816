"""The simulated origin: how long a fetch takes, and when it completes on the virtual clock.

Latency model: ``(base + size / bandwidth) * jitter`` with lognormal jitter of mean 1. ``calibrated``
picks ``base`` so the mean latency of an uncached *page* is a target (120 ms by default, the "before"
load time precache was specified against). Jitter is drawn in bulk with numpy (the replay asks for
hundreds of thousands of samples) from a seeded generator, so every run is reproducible.

:class:`SimOrigin` is the discrete-event part: a fetch returns an asyncio future that the replay resolves
when virtual time reaches the fetch's completion (a heap of pending completions), so the real async
cache code waits exactly as it would on a real origin, without any real sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Seconds for an origin fetch of ``size`` bytes, and the (fixed) cost of cache tier hits."""

    base: float = 0.110
    bandwidth: float = 2_000_000.0
    sigma: float = 0.5
    l1_latency: float = 0.0002
    l2_latency: float = 0.0015

    def mean(self, size: int) -> float:
        return self.base + size / self.bandwidth

    @classmethod
    def calibrated(
        cls,
        page_sizes: Iterable[int],
        target: float = 0.120,
        bandwidth: float = 2_000_000.0,
        sigma: float = 0.5,
        **tiers: float,
    ) -> LatencyModel:
        """Choose ``base`` so the mean latency over ``page_sizes`` equals ``target`` seconds.
        If the transfer time alone exceeds the target, bandwidth is raised to leave a 10% base."""
        sizes = [max(0, int(s)) for s in page_sizes]
        mean_size = sum(sizes) / len(sizes) if sizes else 0.0
        transfer = mean_size / bandwidth
        if transfer > 0.9 * target:
            bandwidth = mean_size / (0.9 * target)
            transfer = 0.9 * target
        return cls(base=target - transfer, bandwidth=bandwidth, sigma=sigma, **tiers)


class JitterStream:
    """Lognormal multipliers with mean 1, drawn in chunks from a seeded generator."""

    def __init__(self, sigma: float, seed: int = 0, chunk: int = 65_536) -> None:
        self.sigma = sigma
        self._rng = np.random.default_rng(seed)
        self._chunk = chunk
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        if self.sigma <= 0:
            return 1.0
        if self._i >= len(self._buf):
            mu = -self.sigma * self.sigma / 2
            self._buf = self._rng.lognormal(mu, self.sigma, self._chunk).tolist()
            self._i = 0
        value = self._buf[self._i]
        self._i += 1
        return value


@dataclass(slots=True)
class OriginCounters:
    requests: int = 0
    bytes: int = 0
    errors: int = 0


@dataclass(order=True, slots=True)
class _Pending:
    done_at: float
    seq: int
    future: asyncio.Future[bytes] = field(compare=False)
    size: int = field(compare=False)
    error: bool = field(compare=False, default=False)


class SimOrigin:
    """Origin fetches that complete at virtual times. ``fetch`` is awaited by the cache's loader;
    ``advance_to``/``pop_due`` let the replay resolve completions in time order."""

    def __init__(self, model: LatencyModel, seed: int = 0, error_rate: float = 0.0) -> None:
        self.model = model
        self._jitter = JitterStream(model.sigma, seed)
        self._heap: list[_Pending] = []
        self._seq = 0
        self.user = OriginCounters()
        self.preload = OriginCounters()
        self.error_rate = error_rate
        self._err_rng = np.random.default_rng(seed + 7919)

    def latency(self, size: int) -> float:
        return self.model.mean(size) * self._jitter.next()

    def fetch(self, now: float, size: int, preload: bool, latency: float | None = None) -> asyncio.Future[bytes]:
        """Start a fetch at ``now``; the future resolves when the replay reaches its completion time."""
        counters = self.preload if preload else self.user
        counters.requests += 1
        counters.bytes += size
        took = self.latency(size) if latency is None else latency
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        error = self.error_rate > 0 and float(self._err_rng.random()) < self.error_rate
        if error:
            counters.errors += 1
        self._seq += 1
        heapq.heappush(self._heap, _Pending(now + took, self._seq, future, size, error))
        return future

    def next_time(self) -> float:
        return self._heap[0].done_at if self._heap else math.inf

    def complete_next(self) -> float:
        """Resolve the earliest pending fetch; returns its completion time."""
        item = heapq.heappop(self._heap)
        if not item.future.done():
            if item.error:
                item.future.set_exception(OriginFetchError("simulated origin error"))
            else:
                item.future.set_result(bytes(item.size))
        return item.done_at

    @property
    def pending(self) -> int:
        return len(self._heap)


class OriginFetchError(RuntimeError):
    """A simulated origin failure (used to exercise the warmer's back-off)."""
