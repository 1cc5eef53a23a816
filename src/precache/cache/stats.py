"""Plain counters of what the cache did (cheap integer bumps; monitoring reads them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class CacheStats:
    """Counters since start. ``preload_hits`` = first user hits on entries the warmer prefetched.

    ``redis_errors`` are L2 failures (they feed the circuit breaker); ``l2_busy`` are L2 operations
    skipped because no connection slot freed up in time (local saturation: not a Redis failure, the
    breaker is not told); ``l2_key_errors`` are L2 failures of one key while Redis answered (``WRONGTYPE``,
    a value too large, ``OOM`` on a write: never counted against the breaker). ``prefetch_errors`` counts
    prefetches whose loader (or store) raised.
    Writes (``set``/``delete``/``invalidate_tags`` and the loader's fill-back) that did not reach L2:
    ``writes_failed`` (tried, and Redis failed or refused the key), ``writes_skipped`` (not tried: the
    breaker was open or no connection slot was free); ``writes_pending`` (now) / ``writes_replayed``:
    best-effort keys and tags waiting for / done with their replay. ``too_large``: values no tier could
    keep (larger than L1's budget, with no L2).
    ``fills_skipped``: L2 reads not copied into L1 because an invalidation or write happened while
    they were in flight (the value is returned, but may already be outdated, so it is not cached).
    ``policy_revalidations`` / ``policy_evictions``: keys a staleness-predicting policy flagged
    (:class:`~precache.cache.policy.StalenessSource`) that were reloaded in the background / dropped
    from L1 (a flagged key with no known loader is dropped and counted as an eviction)."""

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
    l2_key_errors: int = 0
    l2_busy: int = 0
    prefetch_errors: int = 0
    writes_failed: int = 0
    writes_skipped: int = 0
    writes_pending: int = 0
    writes_replayed: int = 0
    too_large: int = 0
    fills_skipped: int = 0
    policy_revalidations: int = 0
    policy_evictions: int = 0
    dropped_events: int = 0
    evictions: int = 0
    breaker_state: str = "closed"

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)
