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

Pending writes (``write_mode="best_effort"``): a key whose L2 copy could not be deleted or overwritten is
recorded here (as are tags whose invalidation failed). Before L2 is read again, the pending deletes are
replayed and their invalidation published; until that succeeds, L2 is not read for those keys (nor at
all while a tag invalidation is pending), so this instance never reads the value it meant to replace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from enum import Enum
from typing import TypeVar

from precache.cache.codec import Record, decode_parts
from precache.cache.errors import L2BusyError, L2KeyError, PoisonedValueError
from precache.cache.l2 import L2Tier
from precache.cache.stats import CacheStats
from precache.resilience import CircuitBreaker

log = logging.getLogger(__name__)

T = TypeVar("T")


class Outcome(Enum):
    """How an L2 write ended."""

    OK = "ok"
    SKIPPED = "skipped"  # the breaker is open: Redis was not tried
    BUSY = "busy"  # no connection slot freed up in time (local saturation)
    KEY_ERROR = "key_error"  # Redis refused this key (WRONGTYPE, too large, OOM)
    UNAVAILABLE = "unavailable"  # Redis could not be used (down, paused, timed out)


Message = Callable[[Sequence[str], Sequence[str]], bytes]
"""``message(keys, tags)``: the invalidation broadcast for a replayed delete (None: do not publish)."""


class GuardedL2:
    """Breaker + failure accounting + decoding around an :class:`~precache.cache.l2.L2Tier`."""

    __slots__ = ("breaker", "has_pending", "message", "pending_keys", "pending_tags", "stats", "tier")

    def __init__(self, tier: L2Tier, breaker: CircuitBreaker, stats: CacheStats,
                 message: Message | None = None) -> None:
        self.tier = tier
        self.breaker = breaker
        self.stats = stats
        self.message = message
        self.pending_keys: dict[str, None] = {}
        self.pending_tags: dict[str, None] = {}
        self.has_pending = False

    # -- pending writes (best effort) ----------------------------------------------------------------
    def defer(self, keys: Iterable[str] = (), tags: Iterable[str] = ()) -> None:
        """Remember that these keys' L2 copies (and these tags' members) must be deleted."""
        self.pending_keys.update(dict.fromkeys(keys))
        self.pending_tags.update(dict.fromkeys(tags))
        self.has_pending = bool(self.pending_keys or self.pending_tags)
        self.stats.writes_pending = len(self.pending_keys) + len(self.pending_tags)

    async def replay_pending(self) -> bool:
        """Delete the pending keys (and the members of pending tags) in L2 and publish their
        invalidation, in one guarded call. Returns True when nothing is pending any more."""
        if not self.has_pending:
            return True
        keys, tags = list(self.pending_keys), list(self.pending_tags)
        tier, message = self.tier, self.message

        async def replay() -> None:
            members = await tier.tag_members(tags) if tags else set()
            dropped = sorted({*keys, *members})
            if dropped:
                await tier.delete(dropped)
            if tags:
                await tier.delete_tags(tags)
            if message is not None:
                await tier.publish(message(dropped, tags))

        outcome, _ = await self.call(replay)
        if outcome is not Outcome.OK:
            return False
        for key in keys:
            self.pending_keys.pop(key, None)
        for tag in tags:
            self.pending_tags.pop(tag, None)
        self.stats.writes_replayed += len(keys) + len(tags)
        self.defer()  # recompute the flags
        return not self.has_pending

    async def _may_read(self, keys: Sequence[str]) -> bool:
        """Before L2 is read: replay pending deletes; False when one of ``keys`` must not be read yet."""
        if await self.replay_pending():
            return True
        pending = self.pending_keys
        return not self.pending_tags and not any(key in pending for key in keys)

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
        if self.has_pending and not await self._may_read((key,)):
            return None
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
        if self.has_pending and not await self._may_read(keys):
            return None
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
