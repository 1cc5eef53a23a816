"""Rate limit and back-off for the warmer, both on an injected clock.

Why an injected clock: the same code runs in production (wall time) and in the replay (virtual time);
a limiter that read ``time.monotonic`` would let the replay preload at an unbounded rate.
"""

from __future__ import annotations

from precache.types import Clock

__all__ = ["Backoff", "Clock", "EfficiencyTarget", "TokenBucket"]


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


class EfficiencyTarget:
    """The warming threshold, moved online so the share of preloads that get used tracks ``target``.

    Why: a fixed probability threshold means a different preload efficiency on every site (on the NASA
    traces 0.7 gave 0.77 on one part and 0.96 on the other), while what an operator can state is the
    waste they accept. Each resolved origin preload moves the threshold (a Robbins-Monro step): a used one
    lowers it by ``step * (1 - target)``, a wasted one raises it by ``step * target``, so it settles where
    the used share equals ``target``. It starts at the configured threshold and stays in ``[low, high]``.
    """

    def __init__(self, initial: float, target: float, step: float = 0.03, low: float = 0.2,
                 high: float = 0.95) -> None:
        if not 0 < target < 1:
            raise ValueError("target efficiency must be in (0, 1)")
        self.target, self.step, self.low, self.high = target, step, low, high
        self.threshold = min(high, max(low, initial))
        self.used = 0
        self.wasted = 0

    def outcome(self, used: bool) -> None:
        """One origin preload was used (True) or wasted (False)."""
        if used:
            self.used += 1
        else:
            self.wasted += 1
        delta = self.step * (self.target - (1.0 if used else 0.0))
        self.threshold = min(self.high, max(self.low, self.threshold + delta))
