"""The warmer's adaptive threshold. Its rate limit and back-off are :mod:`precache.resilience`'s
:class:`~precache.resilience.TokenBucket` and :class:`~precache.resilience.Backoff` (shared with the service's
rate limiter and the cache)."""

from __future__ import annotations

__all__ = ["EfficiencyTarget"]


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
