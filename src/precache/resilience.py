"""Resilience against a struggling dependency: a circuit breaker, a token bucket and a back-off.

Why one module: the cache's L2 tier (and the edge client) trip a :class:`CircuitBreaker` when Redis is
down or slow; the warmer paces preloads with a :class:`TokenBucket` and pauses on origin errors with a
:class:`Backoff`; the service's HTTP rate limiter is a :class:`TokenBucket` per client. They sit below every
package that uses them (only :mod:`precache.types` is imported), so none of those users imports another.

The breaker: closed → (``failure_threshold`` consecutive failures) → open → (``reset_timeout`` later) →
half-open, where exactly one request probes Redis: success closes the breaker, failure re-opens it. A probe
that never reports back (its caller was cancelled, or the operation ended without reaching Redis, e.g. no
connection slot was free) is forgotten after ``reset_timeout``, so the breaker can never be wedged
half-open. It uses ``time.monotonic`` (real time), because it protects against a real server, not simulated
time. The bucket and the back-off run on an injected :class:`~precache.types.Clock`: the same code runs in
production (wall time) and in the replay (virtual time); a limiter that read ``time.monotonic`` would let
the replay preload at an unbounded rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from precache.types import Clock

__all__ = ["Backoff", "BreakerState", "CircuitBreaker", "TokenBucket"]

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    __slots__ = ("_clock", "_open_until", "_probe_until", "_probing", "failure_threshold", "failures",
                 "opened", "reset_timeout", "state")

    def __init__(self, failure_threshold: int = 3, reset_timeout: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` is the time source (seconds, monotonic); tests may inject a fake one."""
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError("CircuitBreaker needs failure_threshold >= 1 and reset_timeout > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self.state: BreakerState = "closed"
        self.failures = 0
        self.opened = 0
        self._open_until = 0.0
        self._probing = False
        self._probe_until = 0.0

    def allow(self) -> bool:
        """May this request use Redis? (In half-open state, only the single probe may.)"""
        if self.state == "closed":
            return True
        if self.state == "open":
            if self._clock() < self._open_until:
                return False
            self.state = "half_open"
            self._probing = False
        if self._probing and self._clock() < self._probe_until:
            return False
        self._probing = True
        self._probe_until = self._clock() + self.reset_timeout
        return True

    def neutral(self) -> None:
        """The operation allowed by ``allow`` ended without telling anything about Redis (it never
        reached it): give the probe back so the next request may probe."""
        if self.state == "half_open":
            self._probing = False

    def success(self) -> None:
        if self.state != "closed" or self.failures:
            self.state = "closed"
            self.failures = 0
            self._probing = False

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.failure_threshold:
            if self.state != "open":
                self.opened += 1
            self.state = "open"
            self._open_until = self._clock() + self.reset_timeout
            self._probing = False


class TokenBucket:
    """Allow ``rate`` operations per second on average, bursts up to ``burst``. Never waits: the
    warmer drops a preload it cannot afford now (a late prediction is worth little)."""

    def __init__(self, clock: Clock, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.clock = clock
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._last = clock.now()

    def try_take(self, n: float = 1.0) -> bool:
        now = self.clock.now()
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False


class Backoff:
    """Exponential pause after origin errors or slow answers; a healthy answer halves it again.

    The warmer is the least important origin client there is: when the origin struggles, preloading
    stops first so user requests keep the capacity.
    """

    def __init__(self, clock: Clock, initial: float = 1.0, maximum: float = 60.0) -> None:
        self.clock = clock
        self.initial = initial
        self.maximum = maximum
        self.delay = 0.0
        self.paused_until = float("-inf")
        self.trips = 0

    @property
    def paused(self) -> bool:
        return self.clock.now() < self.paused_until

    def failure(self) -> None:
        self.delay = min(self.maximum, self.delay * 2 if self.delay else self.initial)
        self.paused_until = self.clock.now() + self.delay
        self.trips += 1

    def success(self) -> None:
        if self.delay:
            self.delay = self.delay / 2 if self.delay / 2 >= self.initial else 0.0
