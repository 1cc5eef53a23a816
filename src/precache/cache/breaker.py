"""Circuit breaker for L2: when Redis is down or slow, stop paying a timeout per request.

closed → (``failure_threshold`` consecutive failures) → open → (``reset_timeout`` later) → half-open,
where exactly one request probes Redis: success closes the breaker, failure re-opens it. A probe
that never reports back (its caller was cancelled, or the operation ended without reaching Redis,
e.g. no connection slot was free) is forgotten after ``reset_timeout``, so the breaker can never be
wedged half-open. Uses ``time.monotonic`` (real time), because it protects against a real server,
not simulated time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

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
