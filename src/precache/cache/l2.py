"""The L2 interface the layered cache talks to, and :class:`MemoryL2`, its in-process implementation.

Two implementations, one contract:

* :class:`~precache.cache.redis_tier.RedisTier` — the real shared L2 (Redis or Redis Cluster), real time.
* :class:`MemoryL2` — a dict in this process that keeps the same semantics (encoded records, PX expiry,
  tag sets, leases, invalidation broadcast) on the *injected clock*. The discrete-event replay uses it
  with a :class:`~precache.cache.clock.ManualClock`, so expiry follows simulated time, and several
  ``PredictiveCache`` instances sharing one ``MemoryL2`` see each other's invalidations.

Values cross this interface as encoded records (bytes, see :mod:`precache.cache.codec`): decoding and
poison detection happen once, in the cache.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from precache.cache.clock import Clock, SystemClock
from precache.cache.codec import HEADER_SIZE

MessageHandler = Callable[[bytes], None]


@runtime_checkable
class L2Tier(Protocol):
    """Everything :class:`~precache.cache.layered.PredictiveCache` needs from a shared tier.

    Failures: raise :class:`~precache.cache.errors.L2KeyError` for a failure of the key alone (the
    server answered), :class:`~precache.cache.errors.L2BusyError` for local saturation, anything else
    (e.g. :class:`~precache.cache.errors.L2Error`, ``OSError``, ``TimeoutError``) when the server could
    not be used. The cache classifies them in one place (:mod:`precache.cache.guarded`)."""

    name: str

    async def get(self, key: str) -> bytes | None: ...
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...
    async def set(self, key: str, raw: bytes, px: int | None, tags: Sequence[str] = ()) -> None: ...
    async def delete(self, keys: Sequence[str]) -> None: ...
    async def tag_members(self, tags: Sequence[str]) -> builtins.set[str]: ...
    async def delete_tags(self, tags: Sequence[str]) -> None: ...
    async def acquire_lease(self, key: str, token: str, px: int) -> bool: ...
    async def release_lease(self, key: str, token: str) -> None: ...
    async def publish(self, message: bytes) -> None: ...
    async def listen(self, handler: MessageHandler, on_connect: Callable[[], None]) -> None:
        """Deliver invalidation messages to ``handler`` until cancelled (may return at once when delivery
        is synchronous, as in :class:`MemoryL2`); call ``on_connect`` after every (re)subscription."""
        ...

    def unlisten(self, handler: MessageHandler) -> None:
        """Stop delivering to ``handler`` (after the listen task was cancelled)."""
        ...

    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


@runtime_checkable
class ClockedTier(Protocol):
    """An L2 that expires keys on an injected clock (:class:`MemoryL2`); the cache checks that it is the
    cache's own clock (never overwrites it)."""

    clock: Clock


@runtime_checkable
class StreamWriter(Protocol):
    """An L2 that can append access events to a stream (:class:`~precache.cache.redis_tier.RedisTier`),
    for ``EventConfig(stream=...)``."""

    async def xadd_many(self, stream: str, entries: Sequence[dict[str, Any]], maxlen: int) -> None: ...


class _ZeroRecord:
    """A record whose payload is all zero bytes, kept as (header, full length)."""

    __slots__ = ("header", "length")

    def __init__(self, header: bytes, length: int) -> None:
        self.header = header
        self.length = length

    @classmethod
    def of(cls, raw: bytes) -> _ZeroRecord | None:
        """The compact form of ``raw``, or None when its payload is not all zeros (or too short to matter)."""
        payload = len(raw) - HEADER_SIZE
        if payload < 256 or raw.count(0, HEADER_SIZE) != payload:
            return None
        return cls(raw[:HEADER_SIZE], len(raw))

    def __len__(self) -> int:
        return self.length

    def expand(self) -> bytes:
        return self.header + bytes(self.length - HEADER_SIZE)


class MemoryL2:
    """In-process L2 with :class:`RedisTier`'s interface; expiry on the injected clock; never fails.

    Not shared across processes. Stores bytes (the same encoded records Redis would hold), so sizes,
    serializer refusals and poisoned-value handling behave exactly as with Redis.

    ``max_bytes`` bounds it like Redis' ``maxmemory`` with ``allkeys-lru``: a read refreshes a key's
    recency, and a write that takes the stored bytes (value + key) over the budget evicts the least
    recently used keys first (exact LRU, where Redis samples). ``None`` = unbounded.

    ``compact_zero_payloads`` (the simulator's setting, whose contents are placeholder zeros of each
    object's size): a record whose payload is all zero bytes is kept as its header and a length, and
    rebuilt byte for byte on read, so memory is per key rather than per byte. Sizes, budgets and
    eviction count the full record, as without it.
    """

    name = "memory"

    def __init__(self, clock: Clock | None = None, max_bytes: int | None = None,
                 compact_zero_payloads: bool = False) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._data: dict[str, tuple[bytes | _ZeroRecord, float | None]] = {}
        self.compact_zero_payloads = compact_zero_payloads
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._tags: dict[str, set[str]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._listeners: list[MessageHandler] = []

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        raw, until = item
        if until is not None and self.clock.now() >= until:
            self._drop(key)
            return None
        if self.max_bytes is not None:  # LRU recency: the dict's order is the eviction order
            del self._data[key]
            self._data[key] = item
        return raw if isinstance(raw, bytes) else raw.expand()

    def _drop(self, key: str) -> None:
        item = self._data.pop(key, None)
        if item is not None:
            self.bytes -= len(item[0]) + len(key)

    def _store(self, key: str, raw: bytes | _ZeroRecord, until: float | None) -> None:
        self._drop(key)
        size = len(raw) + len(key)
        if self.max_bytes is not None:
            if size > self.max_bytes:
                return  # larger than the whole budget: Redis would refuse it too (OOM)
            data = self._data
            while self.bytes + size > self.max_bytes and data:
                self._drop(next(iter(data)))
                self.evictions += 1
        self._data[key] = (raw, until)
        self.bytes += size

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._live(k) for k in keys]

    async def set(self, key: str, raw: bytes, px: int | None, tags: Sequence[str] = ()) -> None:
        until = None if px is None else self.clock.now() + px / 1000.0
        record = bytes(raw)
        if self.compact_zero_payloads:
            self._store(key, _ZeroRecord.of(record) or record, until)
        else:
            self._store(key, record, until)
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)

    def put_raw(self, key: str, raw: bytes) -> None:
        """Store arbitrary bytes under ``key`` (tests: simulate a poisoned value)."""
        self._store(key, raw, None)

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._drop(key)

    async def tag_members(self, tags: Sequence[str]) -> builtins.set[str]:
        out: builtins.set[str] = builtins.set()
        for tag in tags:
            out |= self._tags.get(tag, set())
        return out

    async def delete_tags(self, tags: Sequence[str]) -> None:
        for tag in tags:
            self._tags.pop(tag, None)

    async def acquire_lease(self, key: str, token: str, px: int) -> bool:
        now = self.clock.now()
        held = self._leases.get(key)
        if held is not None and held[1] > now:
            return False
        self._leases[key] = (token, now + px / 1000.0)
        return True

    async def release_lease(self, key: str, token: str) -> None:
        held = self._leases.get(key)
        if held is not None and held[0] == token:
            del self._leases[key]

    async def publish(self, message: bytes) -> None:
        for handler in list(self._listeners):
            handler(message)

    async def listen(self, handler: MessageHandler, on_connect: Callable[[], None]) -> None:
        """Registers ``handler`` and returns at once (delivery is synchronous in ``publish``)."""
        self._listeners.append(handler)
        on_connect()

    def unlisten(self, handler: MessageHandler) -> None:
        if handler in self._listeners:
            self._listeners.remove(handler)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._data)
