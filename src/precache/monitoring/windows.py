"""Counts over rolling time windows (1 minute, 1 hour, 24 hours) in bounded memory.

Why buckets of cumulative deltas: the components keep cumulative counters; a sampler feeds the change
since the previous sample into the bucket of "now". A window's total is the sum of its buckets, and the
window before it (for trends) is the sum of the buckets just older, so each window keeps 2 x its bucket
count and nothing grows with traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

WINDOWS: dict[str, tuple[int, int]] = {
    # window seconds -> (bucket seconds, buckets per window)
    "60": (1, 60),
    "3600": (60, 60),
    "86400": (900, 96),
}


class RollingVector:
    """A fixed-width vector of counts summed over a sliding window and the window before it."""

    def __init__(self, width: int, bucket_seconds: float, buckets: int) -> None:
        if width <= 0 or bucket_seconds <= 0 or buckets <= 0:
            raise ValueError("RollingVector needs a positive width, bucket length and bucket count")
        self.width = width
        self.bucket_seconds = float(bucket_seconds)
        self.buckets = buckets
        self._ring = [[0.0] * width for _ in range(2 * buckets)]
        self._stamp = [-1] * (2 * buckets)  # which absolute bucket number each slot holds

    def _slot(self, number: int) -> list[float]:
        i = number % len(self._ring)
        if self._stamp[i] != number:
            self._stamp[i] = number
            row = self._ring[i]
            for j in range(self.width):
                row[j] = 0.0
        return self._ring[i]

    def add(self, delta: Sequence[float], now: float) -> None:
        if len(delta) != self.width:
            raise ValueError(f"expected {self.width} values, got {len(delta)}")
        row = self._slot(math.floor(now / self.bucket_seconds))
        for j, value in enumerate(delta):
            row[j] += value

    def totals(self, now: float) -> tuple[list[float], list[float]]:
        """Sums over ``(now - window, now]`` and over the window before it, by bucket."""
        newest = math.floor(now / self.bucket_seconds)
        current, previous = [0.0] * self.width, [0.0] * self.width
        for i, number in enumerate(self._stamp):
            age = newest - number
            if number < 0 or age < 0:
                continue
            target = current if age < self.buckets else previous if age < 2 * self.buckets else None
            if target is not None:
                for j, value in enumerate(self._ring[i]):
                    target[j] += value
        return current, previous
