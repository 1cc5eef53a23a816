"""An adaptive TTL that learns how often each key changes from what the cache sees.

Why: a TTL only exists because some content changes never reach the cache as an invalidation. A key
that never changes should live as long as the user allows; a key that changes every few minutes should
be refetched often. One fixed TTL for both either serves stale copies of the second or refetches the
first for nothing. :class:`ChangeRateTTL` estimates, per key, the rate of the changes the cache is *not*
told about, and picks the lifetime that keeps the expected stale share of that key's hits at a bound.

What it hears (all of it visible to a real cache, none of it from the future):

- ``fetched(key, now, validator)``: an origin fetch completed; ``validator`` is what the origin sent to
  tell versions apart (ETag, Last-Modified, a version number). Against the previous fetch of the key it
  gives one *interval*: ``now - previous`` seconds of exposure, changed or not.
- ``invalidated(key, now)``: the application said the key changed. The interval since the last fetch
  ends there with a change (a known one).

Estimate: per key, changes / exposure (every interval, whether it ended in a refresh or an invalidation),
shrunk towards its class's pooled rate (a Gamma prior worth ``prior_weight`` changes), times the share of
changes that arrive *without* an invalidation (pooled over all keys: validator changes / all changes
seen). With every change invalidated that share is 0 and every key gets ``max_ttl``; with none, the
estimate is the validator-change rate.

Lifetime: a copy ``T`` seconds old is stale with probability about ``rate * T``, so the hits of a copy
with lifetime ``T`` are stale about ``rate * T / 2`` of the time; ``T = 2 * stale_share / rate``,
clamped to ``[min_ttl, max_ttl]`` (the user's bounds). The request rate enters through the exposure:
a key requested often is refetched often, so its estimate firms up quickly; a rarely requested key keeps
its class's rate.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

_ASSET_SUFFIXES = (".gif", ".jpg", ".jpeg", ".png", ".css", ".js", ".ico", ".svg", ".woff", ".woff2", ".mpg",
                   ".wav", ".xbm", ".pdf", ".zip", ".gz")


def key_class(key: str) -> str:
    """Pages and assets change at very different rates: pool each class separately."""
    path = key.split("?", 1)[0].lower()
    return "asset" if path.endswith(_ASSET_SUFFIXES) else "page"


@dataclass(frozen=True, slots=True)
class ChangeRateConfig:
    """The user's bounds and the one trade-off knob.

    ``stale_share``: the expected share of a key's hits served stale that its TTL aims at (0.01 = 1%).
    ``prior_rate``: changes per second assumed for a class before anything was seen (default one a day).
    ``prior_weight``: how many observed changes the class prior is worth against a key's own history.
    """

    min_ttl: float = 60.0
    max_ttl: float = 86400.0
    stale_share: float = 0.01
    prior_rate: float = 1.0 / 86400.0
    prior_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.min_ttl <= self.max_ttl:
            raise ValueError(f"need 0 < min_ttl <= max_ttl, got {self.min_ttl}, {self.max_ttl}")
        if not 0 < self.stale_share < 1:
            raise ValueError(f"stale_share must be in (0, 1), got {self.stale_share}")
        if self.prior_rate <= 0 or self.prior_weight <= 0:
            raise ValueError("prior_rate and prior_weight must be > 0")


class _Counts:
    __slots__ = ("changes", "exposure")

    def __init__(self) -> None:
        self.changes = 0.0
        self.exposure = 0.0


class _KeyState(_Counts):
    __slots__ = ("fetched_at", "validator")

    def __init__(self) -> None:
        super().__init__()
        self.fetched_at: float | None = None
        self.validator: Hashable = None


class ChangeRateTTL:
    """Per-key change-rate estimates and the TTL they imply (see the module docstring)."""

    def __init__(self, config: ChangeRateConfig | None = None,
                 classify: Callable[[str], str] = key_class) -> None:
        self.config = config or ChangeRateConfig()
        self._classify = classify
        self._keys: dict[str, _KeyState] = {}
        self._classes: dict[str, _Counts] = {}
        self.validator_changes = 0
        self.invalidations = 0

    def _state(self, key: str) -> _KeyState:
        st = self._keys.get(key)
        if st is None:
            st = self._keys[key] = _KeyState()
        return st

    def _add(self, key: str, st: _KeyState, exposure: float, changed: bool) -> None:
        cls = self._classes.get(self._classify(key))
        if cls is None:
            cls = self._classes[self._classify(key)] = _Counts()
        st.exposure += exposure
        cls.exposure += exposure
        if changed:
            st.changes += 1
            cls.changes += 1

    def fetched(self, key: str, now: float, validator: Hashable) -> None:
        """An origin fetch of ``key`` completed at ``now`` with this validator."""
        st = self._state(key)
        if st.fetched_at is not None:
            changed = validator != st.validator
            self._add(key, st, max(0.0, now - st.fetched_at), changed)
            if changed:
                self.validator_changes += 1
        st.fetched_at, st.validator = now, validator

    def invalidated(self, key: str, now: float) -> None:
        """The application invalidated ``key`` at ``now`` (a change the cache was told about)."""
        self.invalidations += 1
        st = self._state(key)
        if st.fetched_at is not None:
            self._add(key, st, max(0.0, now - st.fetched_at), True)
            st.fetched_at = None  # the next fetch starts a new interval; its validator is not compared

    def unannounced_share(self) -> float:
        """Share of the changes seen that arrived without an invalidation (1 before any was seen)."""
        seen = self.validator_changes + self.invalidations
        return 1.0 if seen == 0 else (self.validator_changes + 0.5) / (seen + 0.5)

    def rate(self, key: str) -> float:
        """Estimated changes per second of ``key`` that no invalidation announces."""
        cfg = self.config
        cls = self._classes.get(self._classify(key))
        w = cfg.prior_weight
        class_rate = cfg.prior_rate if cls is None else (cls.changes + w) / (cls.exposure + w / cfg.prior_rate)
        st = self._keys.get(key)
        own = class_rate if st is None else (st.changes + w) / (st.exposure + w / class_rate)
        return own * self.unannounced_share()

    def ttl(self, key: str) -> float:
        """The lifetime for a copy of ``key`` fetched now, within ``[min_ttl, max_ttl]``."""
        cfg = self.config
        r = self.rate(key)
        t = cfg.max_ttl if r <= 0 else 2.0 * cfg.stale_share / r
        return min(cfg.max_ttl, max(cfg.min_ttl, t))

    def __len__(self) -> int:
        return len(self._keys)
