"""The warmer's budgets and limits (:class:`WarmerConfig`) and its counters (:class:`WarmerStats`).

Apart from :mod:`precache.warming.warmer` so the settings, the middleware and the replay can read what a
warmer is allowed to do without the warmer; ``precache.warming.warmer`` re-exports both names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from precache.defaults import WARMING_TARGET_EFFICIENCY, WARMING_THRESHOLD
from precache.warming.online import OnlineConfig


@dataclass(slots=True)
class WarmerConfig:
    """Budgets and limits. Defaults follow ``precache.config.PredictiveSettings``."""

    threshold: float = WARMING_THRESHOLD
    max_items: int = 50
    max_items_per_session: int = 50
    budget_bytes: int = 100 * 1024 * 1024
    max_concurrency: int = 16
    rate_per_second: float = 200.0
    burst: float | None = None
    top_k: int = 5
    max_history: int = 20
    max_sessions: int = 200_000
    queue_size: int = 10_000
    unused_horizon: float = 900.0
    """A preload not used within this many seconds is written off as wasted and stops counting."""
    slow_after: float = 2.0
    """A preload slower than this (seconds) counts as origin distress and triggers back-off."""
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    preload_assets: bool = True
    current_page_assets: bool = True
    """Also preload the likely assets of the page just viewed (the browser asks for them next)."""
    target_efficiency: float | None = WARMING_TARGET_EFFICIENCY
    """When set, ``threshold`` is only the start: it moves online so that this share of the preloads
    fetched from the origin gets used (:class:`~precache.warming.limits.EfficiencyTarget`)."""
    online: OnlineConfig = field(default_factory=OnlineConfig)
    """Online page -> asset links over the trained asset model (``online.enabled=False``: trained only)."""

    @classmethod
    def from_settings(cls, settings: Any | None = None, **overrides: Any) -> WarmerConfig:
        """Take threshold and budgets from ``precache.config.Settings.predictive``."""
        if settings is None:
            from precache.config import get_settings

            settings = get_settings()
        p = settings.predictive
        base: dict[str, Any] = {
            "threshold": p.warming_threshold,
            "target_efficiency": p.target_efficiency,
            "max_items": p.max_preload_items,
            "max_items_per_session": p.max_preload_items,
            "budget_bytes": p.preload_budget_bytes,
        }
        base.update(overrides)
        return cls(**base)


@dataclass(slots=True)
class WarmerStats:
    """Counters; ``efficiency`` = used / completed preloads."""

    observed: int = 0
    dropped_queue: int = 0
    batches: int = 0
    predictions: int = 0
    predictor_errors: int = 0
    candidates: int = 0
    started: int = 0
    completed: int = 0
    not_admitted: int = 0
    failed: int = 0
    slow: int = 0
    bytes_loaded: int = 0
    used: int = 0
    joined: int = 0
    predictive_hits: int = 0
    wasted_evicted: int = 0
    wasted_expired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def efficiency(self) -> float:
        return self.used / self.completed if self.completed else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = dict(self.skipped)
        data["efficiency"] = self.efficiency
        return data
