"""The cache's settings as small plain dataclasses (no pydantic here: ``import precache.cache`` stays light).

``PredictiveCache(l1, l2, clock, config=CacheConfig(...))`` replaces the 20-odd keyword arguments the
constructor used to take. Those keywords still work for one release (:func:`config_from_legacy` maps them
and warns with a :class:`DeprecationWarning`). Every default is defined here, once; the
from-environment builder (:mod:`precache.stack`) fills these objects from :mod:`precache.config`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

SerializerName = Literal["json", "msgpack"]
WriteMode = Literal["strict", "best_effort"]


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """Cross-process single-flight: one instance loads a missing key under a Redis lease
    (``SET NX PX`` for ``ttl`` s); the others poll L2 every ``poll`` s for up to ``wait`` s."""

    ttl: float = 5.0
    wait: float = 1.0
    poll: float = 0.01

    def __post_init__(self) -> None:
        if self.ttl <= 0 or self.wait < 0 or self.poll <= 0:
            raise ValueError(f"LeaseConfig needs ttl > 0, wait >= 0, poll > 0; got {self}")


@dataclass(frozen=True, slots=True)
class StalenessConfig:
    """Staleness hints from a policy that is a :class:`~precache.cache.policy.StalenessSource`.

    The policy is polled at most once per ``poll_interval`` s of the cache's clock, for at most
    ``poll_limit`` keys, on the miss path and, when ``background`` (default: only with a
    ``SystemClock``, so a replay on a ``ManualClock`` stays deterministic), by a background task. The
    last loader of up to ``max_known_loaders`` keys is remembered for "revalidate"."""

    enabled: bool = True
    poll_interval: float = 1.0
    poll_limit: int = 64
    background: bool | None = None
    max_known_loaders: int = 10_000

    def __post_init__(self) -> None:
        if self.poll_interval <= 0 or self.poll_limit < 1 or self.max_known_loaders < 0:
            raise ValueError("stale_poll_interval must be > 0, stale_poll_limit >= 1, max_known_loaders >= 0")


@dataclass(frozen=True, slots=True)
class EventConfig:
    """Access events: a bounded in-process queue (``queue_size``; full = drop and count) and, when
    ``stream`` is set, a copy appended to that Redis Stream (``MAXLEN ~ stream_maxlen``)."""

    queue_size: int = 10_000
    stream: str | None = None
    stream_maxlen: int = 100_000

    def __post_init__(self) -> None:
        if self.queue_size <= 0 or self.stream_maxlen <= 0:
            raise ValueError(f"EventConfig needs queue_size > 0 and stream_maxlen > 0; got {self}")


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """How :class:`~precache.cache.layered.PredictiveCache` behaves.

    ``default_ttl`` (seconds, None = no expiry) applies when a call gives no ``ttl``; ``grace`` is how
    long after expiry a value may still be served stale while one refresh runs; ``l1_max_ttl`` caps how
    long L1 keeps a copy (the bound on cross-instance staleness if an invalidation message is lost);
    ``xfetch_beta`` scales early refresh of hot keys (0 = off). ``invalidation`` publishes writes to
    other instances over the L2's pub/sub. ``write_mode``: what ``set``/``delete``/``invalidate_tags`` do
    when L2 cannot be written (see the write-path contract in docs/contracts.md): ``"strict"`` raises
    :class:`~precache.cache.errors.CacheUnavailableError`; ``"best_effort"`` returns and replays the
    delete later (at most ``max_pending_writes`` keys and tags wait; beyond that writes raise)."""

    default_ttl: float | None = 300.0
    grace: float = 30.0
    l1_max_ttl: float | None = None
    xfetch_beta: float = 1.0
    serializer: SerializerName = "json"
    invalidation: bool = True
    instance_id: str | None = None
    close_timeout: float = 5.0
    write_mode: WriteMode = "strict"
    max_pending_writes: int = 100_000
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    staleness: StalenessConfig = field(default_factory=StalenessConfig)
    events: EventConfig = field(default_factory=EventConfig)

    def __post_init__(self) -> None:
        if self.default_ttl is not None and self.default_ttl <= 0:
            raise ValueError(f"default_ttl must be > 0 seconds or None, got {self.default_ttl}")
        if self.grace < 0 or self.xfetch_beta < 0:
            raise ValueError("grace, lease_wait, xfetch_beta must be >= 0; lease_ttl, lease_poll > 0")
        if self.l1_max_ttl is not None and self.l1_max_ttl <= 0:
            raise ValueError(f"l1_max_ttl must be > 0 seconds or None, got {self.l1_max_ttl}")
        if self.serializer not in ("json", "msgpack"):
            raise ValueError(f"unknown serializer {self.serializer!r}; expected 'json' or 'msgpack'")
        if self.write_mode not in ("strict", "best_effort"):
            raise ValueError(f"write_mode must be 'strict' or 'best_effort', got {self.write_mode!r}")
        if self.max_pending_writes < 0:
            raise ValueError(f"max_pending_writes must be >= 0, got {self.max_pending_writes}")
        if self.close_timeout <= 0:
            raise ValueError(f"close_timeout must be > 0 seconds, got {self.close_timeout}")


# The constructor keywords of earlier releases: name -> (sub-config or None, field).
LEGACY_KEYWORDS: dict[str, tuple[str | None, str]] = {
    "default_ttl": (None, "default_ttl"),
    "grace": (None, "grace"),
    "serializer": (None, "serializer"),
    "xfetch_beta": (None, "xfetch_beta"),
    "l1_max_ttl": (None, "l1_max_ttl"),
    "invalidation": (None, "invalidation"),
    "instance_id": (None, "instance_id"),
    "close_timeout": (None, "close_timeout"),
    "lease_ttl": ("lease", "ttl"),
    "lease_wait": ("lease", "wait"),
    "lease_poll": ("lease", "poll"),
    "event_queue_size": ("events", "queue_size"),
    "stream": ("events", "stream"),
    "stream_maxlen": ("events", "stream_maxlen"),
    "policy_staleness": ("staleness", "enabled"),
    "stale_poll_interval": ("staleness", "poll_interval"),
    "stale_poll_limit": ("staleness", "poll_limit"),
    "stale_poll_background": ("staleness", "background"),
    "max_known_loaders": ("staleness", "max_known_loaders"),
}


def config_from_legacy(config: CacheConfig | None, legacy: dict[str, Any], stacklevel: int = 3) -> CacheConfig:
    """``config`` (or the defaults) with the old constructor keywords in ``legacy`` applied.

    Unknown keywords raise ``TypeError`` as a normal signature would; known ones warn once per call."""
    base = config if config is not None else CacheConfig()
    if not legacy:
        return base
    unknown = sorted(set(legacy) - set(LEGACY_KEYWORDS))
    if unknown:
        raise TypeError(f"PredictiveCache() got unexpected keyword argument(s): {', '.join(unknown)}")
    warnings.warn(
        f"PredictiveCache({', '.join(f'{k}=' for k in sorted(legacy))}) is deprecated and will be removed in "
        "the next release; pass config=CacheConfig(...) (see precache.cache.config)",
        DeprecationWarning, stacklevel=stacklevel,
    )
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in legacy.items():
        group, attr = LEGACY_KEYWORDS[name]
        if group is None:
            top[attr] = value
        else:
            nested.setdefault(group, {})[attr] = value
    for group, values in nested.items():
        top[group] = dataclasses.replace(getattr(base, group), **values)
    return dataclasses.replace(base, **top)
