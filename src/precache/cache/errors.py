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


class L2Error(CacheError):
    """An L2 operation failed because the server could not be used (connection lost, timeout, a
    cluster or protocol fault). Tiers raise this (not their client library's errors), so the cache
    never imports a Redis client to recognise a fault; it feeds the circuit breaker."""


class L2KeyError(CacheError):
    """An L2 operation failed for its key only (``WRONGTYPE``, a value too large, ``OOM`` refusing this
    write): the server is up, so this is that key's failure and never opens the circuit breaker."""


class CacheUnavailableError(CacheError):
    """A ``set``, ``delete`` or ``invalidate_tags`` could not be written to L2 (the server is down, the
    breaker is open, or the server refused the key), so other instances may still read the old value.
    Raised in the default ``write_mode="strict"``; ``keys`` are the keys concerned."""

    def __init__(self, message: str, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


class ValueTooLargeError(CacheError, ValueError):
    """``set`` of a value that no tier can hold (larger than L1's ``max_bytes`` with no L2): refused at
    the call site instead of being silently dropped (a later ``get`` would miss and reload it)."""
