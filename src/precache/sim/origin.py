"""The simulated origin: how long a fetch takes, and when it completes on the virtual clock.

Latency model: ``(base + size / bandwidth) * jitter`` with lognormal jitter of mean 1. ``calibrated``
picks ``base`` so the mean latency of an uncached *page* is a target (120 ms by default, the "before"
load time precache was specified against).

Common random numbers: the jitter of a fetch is a function of (seed, the request it serves), never of
the order in which a configuration happens to ask (:func:`jitter_table`: one lognormal draw per trace
event, from a generator seeded by ``seed``; the event fixes the key). A user's fetch uses the draw of its
own request, a preload the draw of the request it is for, so the same request costs the same origin time
in every configuration and differences between rows are the cache's, not the dice's. A fetch that
serves no request (a preload nobody asks for) costs the mean.

:class:`SimOrigin` is the discrete-event part: a fetch returns an asyncio future that the replay resolves
when virtual time reaches the fetch's completion (a heap of pending completions), so the real async
cache code waits exactly as it would on a real origin, without any real sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from precache.sim.payloads import zero_payload


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


def jitter_table(n: int, sigma: float, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Lognormal multipliers with mean 1, one per trace event (index = the request it serves)."""
    if sigma <= 0:
        return np.ones(n, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return rng.lognormal(-sigma * sigma / 2, sigma, n)


@dataclass(slots=True)
class OriginCounters:
    requests: int = 0
    bytes: int = 0
    errors: int = 0


@dataclass(order=True, slots=True)
class _Pending:
    done_at: float
    seq: int
    future: asyncio.Future[memoryview] = field(compare=False)
    size: int = field(compare=False)
    error: bool = field(compare=False, default=False)


class SimOrigin:
    """Origin fetches that complete at virtual times. ``fetch`` is awaited by the cache's loader;
    ``advance_to``/``pop_due`` let the replay resolve completions in time order."""

    def __init__(self, model: LatencyModel, jitter: Sequence[float] | np.ndarray[Any, Any] = (), seed: int = 0,
                 error_rate: float = 0.0) -> None:
        self.model = model
        self._jitter = jitter
        self._heap: list[_Pending] = []
        self._seq = 0
        self.user = OriginCounters()
        self.preload = OriginCounters()
        self.error_rate = error_rate
        self._err_rng = np.random.default_rng(seed + 7919)

    def latency(self, size: int, serves: int = -1) -> float:
        """Origin time of a fetch of ``size`` bytes for trace event ``serves`` (-1: none: the mean)."""
        mean = self.model.mean(size)
        return mean * float(self._jitter[serves]) if 0 <= serves < len(self._jitter) else mean

    def fetch(self, now: float, size: int, preload: bool, serves: int = -1) -> asyncio.Future[memoryview]:
        """Start a fetch at ``now`` for event ``serves``; the future resolves when the replay reaches its
        completion time."""
        counters = self.preload if preload else self.user
        counters.requests += 1
        counters.bytes += size
        took = self.latency(size, serves)
        future: asyncio.Future[memoryview] = asyncio.get_running_loop().create_future()
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
                item.future.set_result(zero_payload(item.size))
        return item.done_at

    @property
    def pending(self) -> int:
        return len(self._heap)


class OriginFetchError(RuntimeError):
    """A simulated origin failure (used to exercise the warmer's back-off)."""
