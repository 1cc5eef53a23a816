"""Exceptions the cache raises to callers (everything else is absorbed and counted)."""

from __future__ import annotations


class CacheError(Exception):
    """Base class of precache.cache errors."""


class UnserializableValueError(CacheError, TypeError):
    """The value cannot be stored with a safe serializer (bytes, str, JSON or msgpack): refused at the
    call site, so a bad value never reaches Redis and never silently degrades into pickle."""


class PoisonedValueError(CacheError, ValueError):
    """Bytes read from L2 are not a valid precache record (random bytes, a pickle payload, a
    truncated write). The cache treats this as a miss, counts it and logs it; it never executes it."""


class L2BusyError(CacheError, TimeoutError):
    """Every L2 connection slot stayed busy for the tier's ``queue_timeout``: the request skips L2 this
    time. This is local saturation, not a Redis failure, so the cache counts it (``stats.l2_busy``)
    without feeding the circuit breaker."""
