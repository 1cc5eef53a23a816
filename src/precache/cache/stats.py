"""Plain counters of what the cache did (cheap integer bumps; monitoring reads them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class CacheStats:
    """Counters since start. ``preload_hits`` = first user hits on entries the warmer prefetched."""

    l1_hits: int = 0
    l2_hits: int = 0
    stale_hits: int = 0
    misses: int = 0
    loads: int = 0
    load_errors: int = 0
    joined_loads: int = 0
    lease_waits: int = 0
    preloads: int = 0
    preload_hits: int = 0
    early_refreshes: int = 0
    sets: int = 0
    deletes: int = 0
    invalidations_received: int = 0
    poisoned: int = 0
    redis_errors: int = 0
    dropped_events: int = 0
    evictions: int = 0
    breaker_state: str = "closed"

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)
