"""Names shared by several areas of precache, defined once (stdlib only: importing this is free).

* :class:`Clock` — the injected time source every TTL/expiry decision uses (the replay drives a
  manual one; see :mod:`precache.cache.clock` for ``SystemClock`` and ``ManualClock``).
* :data:`Loader` — what the cache calls on a miss: a zero-argument callable returning the value or an
  awaitable of it (an ``async def`` function, a lambda, a bound method).
* :data:`Prediction` — what every page predictor, the inference engine and the warmer pass around: the
  ranked next pages of a session as ``(page, probability)`` pairs, most probable first.

Keep this module light: no third-party import, no import of another precache module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = ["Clock", "Loader", "Prediction"]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now() -> float`` (seconds, any fixed epoch)."""

    def now(self) -> float: ...


Loader: TypeAlias = Callable[[], Awaitable[Any] | Any]
"""A zero-argument callable producing the value for a missing key (sync, or returning an awaitable)."""


Prediction: TypeAlias = list[tuple[str, float]]
"""Ranked next pages with their probabilities, most probable first (at most k of them)."""
