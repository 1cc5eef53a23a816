"""``type: "cache"``: the cache optimizer's decisions for one key, from the accesses this service was told of.

Why replay per request: the optimizer's features are online statistics of one object (gaps, decayed
counts, clients, sizes). The service keeps each key's last accesses in Redis (see
:mod:`precache.serve.events`), so any replica rebuilds the same state by replaying them through a fresh
:class:`~precache.models.optimizer.features.FeatureTracker` -- the code the training rows come from -- and
scores it with the ONNX model. The request itself counts as an access at ``now``. Limitation: the
tracker's two global features (overall request rate, distinct objects) see only this key's history.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Protocol

from precache.models.optimizer.features import FeatureTracker
from precache.models.optimizer.model import OptimizerModel

log = logging.getLogger("precache.serve")

ADMIT_THRESHOLD = 0.5
MIN_TTL, MAX_TTL = 1.0, 86400.0


class CacheAdvisor:
    def __init__(self, model: OptimizerModel, directory: Path, version: str) -> None:
        self.model, self.directory, self.version = model, directory, version

    @classmethod
    def load(cls, directory: Path) -> CacheAdvisor:
        """Load and verify (sha256) an optimizer directory; raises on a bad one."""
        model = OptimizerModel.load(directory)
        return cls(model, directory, model.version or f"cache-optimizer-{directory.name}")

    def decide(self, key: str, accesses: list[tuple[float, int, float, str]], now: float) -> dict[str, float | bool]:
        tracker = FeatureTracker(stream_counts=self.model.stream_counts)
        size = 0
        for when, size_, latency, client in accesses:
            if when <= now:
                tracker.observe(key, when, size_, client, latency if latency > 0 else None)
                size = size_ or size
        tracker.observe(key, now, size)
        row = tracker.features(key, now)
        assert row is not None
        out = self.model.predict(row.reshape(1, -1))
        p_cache = _unit(float(out.should_cache[0]))
        ttl = float(out.seconds_to_change()[0])
        return {
            "shouldCache": p_cache >= ADMIT_THRESHOLD,
            "priority": round(max(0.0, _finite(float(out.seconds_to_next_access()[0]))), 3),
            "ttl": round(min(MAX_TTL, max(MIN_TTL, _finite(ttl))), 3),
            "invalidationProbability": round(_unit(float(out.invalidation[0])), 6),
        }


class AdvisorFollower(Protocol):
    """What :class:`Advisors` reads of the registry follower (:class:`precache.serve.watch.RegistryFollower`)."""

    @property
    def advisor(self) -> CacheAdvisor | None: ...

    @property
    def advisor_error(self) -> str | None: ...


class Advisors:
    """The cache optimizer in use: the pinned directory's (``PRECACHE_OPTIMIZER_DIR``), else the registry's
    active version (kept by the follower, set once the service starts following the registry)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.pinned: CacheAdvisor | None = None
        self.error: str | None = None
        self.follower: AdvisorFollower | None = None

    def load_pinned(self) -> None:
        """Load the pinned directory; a failure is kept as :meth:`problem` (``/readyz`` shows it)."""
        assert self.directory is not None
        try:
            self.pinned, self.error = CacheAdvisor.load(self.directory), None
        except Exception as exc:
            self.error = f"{self.directory}: {type(exc).__name__}: {exc}"[:300]
            log.error("cache optimizer not loaded: %s", self.error)

    def current(self) -> CacheAdvisor | None:
        if self.pinned is not None or self.follower is None:
            return self.pinned
        return self.follower.advisor

    def problem(self) -> str | None:
        if self.pinned is None and self.follower is not None and self.directory is None:
            return self.follower.advisor_error
        return self.error


def _finite(value: float) -> float:
    return value if math.isfinite(value) else MAX_TTL


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0
