"""Injected time source for every TTL and expiry decision in the cache.

The replay (``precache.sim``) runs hours of traffic in seconds by driving a :class:`ManualClock`;
the cache therefore never calls ``time.time()`` itself. Latency measurements (``AccessEvent.latency``)
use ``time.perf_counter`` instead, because they measure real work, not simulated time.
"""

from __future__ import annotations

import time

from precache.types import Clock

__all__ = ["Clock", "ManualClock", "SystemClock", "same_clock"]


class SystemClock:
    """Wall-clock seconds since the Unix epoch (``time.time``), shared across processes and Redis.

    Every instance tells the same time, so two of them count as the same clock (:func:`same_clock`)."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()


def same_clock(a: Clock, b: Clock) -> bool:
    """Do ``a`` and ``b`` tell the same time? (The same object, or two system clocks.)"""
    return a is b or (isinstance(a, SystemClock) and isinstance(b, SystemClock))


class ManualClock:
    """A clock that moves only when told: the discrete-event replay and tests advance it explicitly."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def set(self, value: float) -> None:
        """Jump to ``value``; time never runs backwards, so an earlier value is refused."""
        if value < self._now:
            raise ValueError(f"ManualClock cannot go back in time ({value} < {self._now})")
        self._now = float(value)

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"ManualClock.advance needs seconds >= 0, got {seconds}")
        self._now += seconds
        return self._now
