"""Names shared by several areas of precache, defined once (stdlib only: importing this is free).

* :class:`Clock` — the injected time source every TTL/expiry decision uses (the replay drives a
  manual one; see :mod:`precache.cache.clock` for ``SystemClock`` and ``ManualClock``).
* :data:`Loader` — what the cache calls on a miss: a zero-argument callable returning the value or an
  awaitable of it (an ``async def`` function, a lambda, a bound method).
* :data:`Prediction` — what every page predictor, the inference engine and the warmer pass around: the
  ranked next pages of a session as ``(page, probability)`` pairs, most probable first.
* :class:`SessionArm` / :class:`SessionParameters` — how an experiment's arm reaches the warmer (and any
  other per-session consumer) without it importing ``precache.experiments``: per session, warming on or
  off, a warming threshold, a pinned model version. :class:`ReplicaArm` is the same for what cannot differ
  per session (the cache policy and the TTL mode, fixed when a replica builds its stack).
* :class:`RequestContext` — who is behind a page view, as far as the service can tell (the visitor's address
  and user agent), carried from the routes through the prediction core to the online layer's guards.

Keep this module light: no third-party import, no import of another precache module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

__all__ = ["Clock", "Loader", "Prediction", "ReplicaArm", "RequestContext", "SessionArm", "SessionParameters"]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now() -> float`` (seconds, any fixed epoch)."""

    def now(self) -> float: ...


Loader: TypeAlias = Callable[[], Awaitable[Any] | Any]
"""A zero-argument callable producing the value for a missing key (sync, or returning an awaitable)."""


Prediction: TypeAlias = list[tuple[str, float]]
"""Ranked next pages with their probabilities, most probable first (at most k of them)."""


@dataclass(frozen=True, slots=True)
class SessionArm:
    """What an experiment arm changes for one session. ``None`` fields keep the configured default.

    ``model_version`` pins a registry version of the page predictor (it need not be the active one).
    ``experiment`` and ``arm`` label the assignment for whoever records per-arm metrics."""

    warming: bool = True
    threshold: float | None = None
    model_version: str | None = None
    experiment: str = ""
    arm: str = ""


@runtime_checkable
class SessionParameters(Protocol):
    """Per-session parameters: the arm a session is in, or None (no experiment: defaults apply).

    Called on the warmer's background side once per prediction batch and session, so it must be cheap
    and must not do I/O (keep definitions in memory; refresh them elsewhere)."""

    def for_session(self, session_id: str) -> SessionArm | None: ...


@dataclass(frozen=True, slots=True)
class ReplicaArm:
    """What a replica-scoped arm fixes when the stack is built. ``None`` keeps the default.

    ``cache_policy``: "learned" (the cache optimizer's policy) or "s3fifo" (the heuristic);
    ``ttl_mode``: "fixed" (the configured TTL) or "adaptive" (the learned policy chooses TTLs)."""

    cache_policy: Literal["learned", "s3fifo"] | None = None
    ttl_mode: Literal["fixed", "adaptive"] | None = None
    experiment: str = ""
    arm: str = ""


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The visitor behind a request: its address and user agent, ``None`` when unknown.

    Framework-free, so the prediction core and the online layer's guards (bot filter, per-client cap) get it
    without importing the web framework. *Unknown* is the honest default: a back end calling the service is
    not the visitor, so its own address and user agent are never put here (the routes fill it only from what
    the caller reports or a trusted proxy forwards; see :mod:`precache.serve.visitor`)."""

    client: str | None = None
    agent: str | None = None

    def overridden(self, client: str | None, agent: str | None) -> RequestContext:
        """This context with the fields a request body names (a non-empty value wins)."""
        if not client and not agent:
            return self
        return RequestContext(client or self.client, agent or self.agent)
