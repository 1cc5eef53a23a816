"""``GuardedL2``: the one place every L2 read and write of the cache goes through.

It owns the circuit breaker and the classification of failures, so the rules live once:

* the breaker is asked before each call (open = skip L2 for now) and told the outcome;
* :class:`~precache.cache.errors.L2BusyError` (no free connection slot: local saturation) is counted as
  ``l2_busy`` and hands the half-open probe back without blaming Redis;
* :class:`~precache.cache.errors.L2KeyError` (``WRONGTYPE``, a value too large, ``OOM`` for this write)
  is that key's failure (``l2_key_errors``): Redis answered, so the breaker hears a success;
* anything else an L2 call raises is Redis being unavailable (``redis_errors``, breaker failure).

Reads return ``None`` when L2 was skipped or failed (the caller goes on to the loader); writes return an
:class:`Outcome` the write-path contract (docs/contracts.md) turns into an exception or a pending key.
Decoding happens here too, so a poisoned record is a counted miss in exactly one place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import TypeVar

from precache.cache.breaker import CircuitBreaker
from precache.cache.codec import Record, decode_parts
from precache.cache.errors import L2BusyError, L2KeyError, PoisonedValueError
from precache.cache.l2 import L2Tier
from precache.cache.stats import CacheStats

log = logging.getLogger(__name__)

T = TypeVar("T")


class Outcome(Enum):
    """How an L2 write ended."""

    OK = "ok"
    SKIPPED = "skipped"  # the breaker is open: Redis was not tried
    BUSY = "busy"  # no connection slot freed up in time (local saturation)
    KEY_ERROR = "key_error"  # Redis refused this key (WRONGTYPE, too large, OOM)
    UNAVAILABLE = "unavailable"  # Redis could not be used (down, paused, timed out)


class GuardedL2:
    """Breaker + failure accounting + decoding around an :class:`~precache.cache.l2.L2Tier`."""

    __slots__ = ("breaker", "stats", "tier")

    def __init__(self, tier: L2Tier, breaker: CircuitBreaker, stats: CacheStats) -> None:
        self.tier = tier
        self.breaker = breaker
        self.stats = stats

    # -- the guard ---------------------------------------------------------------------------------
    async def call(self, op: Callable[[], Awaitable[T]]) -> tuple[Outcome, T | None]:
        """Run one L2 operation under the breaker; never raises an L2 fault (it is classified)."""
        breaker = self.breaker
        if not breaker.allow():
            return Outcome.SKIPPED, None
        try:
            result = await op()
        except Exception as exc:
            return self.failed(exc), None
        breaker.success()
        return Outcome.OK, result

    def failed(self, exc: BaseException) -> Outcome:
        """Classify and count a failed L2 call (see the module docstring); tells the breaker."""
        stats = self.stats
        if isinstance(exc, L2BusyError):
            stats.l2_busy += 1
            self.breaker.neutral()
            return Outcome.BUSY
        if isinstance(exc, L2KeyError):
            stats.l2_key_errors += 1
            self.breaker.success()
            if stats.l2_key_errors <= 5:
                log.warning("L2 refused one key (Redis is up): %s", exc)
            return Outcome.KEY_ERROR
        stats.redis_errors += 1
        self.breaker.failure()
        if stats.redis_errors <= 5 or stats.redis_errors % 1000 == 0:
            log.warning("L2 unavailable (%s: %s); serving from L1 and the loader (errors so far: %d)",
                        type(exc).__name__, exc, stats.redis_errors)
        return Outcome.UNAVAILABLE

    def poisoned(self, key: str, exc: PoisonedValueError) -> None:
        stats = self.stats
        stats.poisoned += 1
        if stats.poisoned <= 20:
            log.warning("poisoned L2 value for key %r treated as a miss: %s", key, exc)

    # -- reads -------------------------------------------------------------------------------------
    async def read(self, key: str) -> Record | None:
        """The decoded record of ``key``, or None (absent, poisoned, or L2 skipped/failed).

        The reads spell the guard out instead of going through :meth:`call`: they are the L2-hit hot
        path, and this saves a closure and a call per read."""
        breaker = self.breaker
        if not breaker.allow():
            return None
        try:
            raw = await self.tier.get(key)
        except Exception as exc:
            self.failed(exc)
            return None
        breaker.success()
        if raw is None:
            return None
        try:
            value, expires_at, delta = decode_parts(raw)
        except PoisonedValueError as exc:
            self.poisoned(key, exc)
            return None
        return Record(value, expires_at, delta, len(raw))

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        """Raw records of ``keys`` in one round trip, or None when L2 was skipped or failed."""
        breaker = self.breaker
        if not breaker.allow():
            return None
        try:
            raws = await self.tier.get_many(keys)
        except Exception as exc:
            self.failed(exc)
            return None
        breaker.success()
        return raws

    # -- writes ------------------------------------------------------------------------------------
    async def write(self, key: str, raw: bytes, px: int | None, tags: Sequence[str]) -> Outcome:
        tier = self.tier
        outcome, _ = await self.call(lambda: tier.set(key, raw, px, tags))
        return outcome

    async def delete(self, keys: Sequence[str]) -> Outcome:
        tier = self.tier
        outcome, _ = await self.call(lambda: tier.delete(keys))
        return outcome

    async def drop_tags(self, tags: Sequence[str]) -> tuple[Outcome, set[str]]:
        """Delete every key carrying one of ``tags``, then the tag sets; returns the keys deleted."""
        tier = self.tier

        async def drop() -> set[str]:
            members = await tier.tag_members(tags)
            await tier.delete(sorted(members))
            await tier.delete_tags(tags)
            return members

        outcome, members = await self.call(drop)
        return outcome, members or set()

    async def publish(self, message: bytes) -> Outcome:
        tier = self.tier
        outcome, _ = await self.call(lambda: tier.publish(message))
        return outcome

    # -- leases ------------------------------------------------------------------------------------
    async def acquire_lease(self, key: str, token: str, px: int) -> bool | None:
        """True/False from Redis, or None when L2 could not be asked (then load locally)."""
        tier = self.tier
        outcome, acquired = await self.call(lambda: tier.acquire_lease(key, token, px))
        return bool(acquired) if outcome is Outcome.OK else None

    async def release_lease(self, key: str, token: str) -> None:
        tier = self.tier
        await self.call(lambda: tier.release_lease(key, token))
