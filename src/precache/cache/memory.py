"""L1: an in-process tier bounded by bytes and by item count, with per-entry TTL and a pluggable policy.

Values are kept as Python objects (an L1 hit is a dict lookup, no decoding). Their size is the length of
their safe encoding (see :mod:`precache.cache.codec`) plus a fixed per-entry overhead, so the byte
budget is honest for bytes, str and JSON-able values rather than a guess from ``sys.getsizeof``.

Expiry has two times: ``expires_at`` (fresh until) and ``stale_until`` (kept, and servable as stale
while a refresh runs, until then). Both come from the injected clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from precache.cache.clock import Clock, SystemClock
from precache.cache.policy import (
    BatchEvictPolicy,
    BatchInsertPolicy,
    BudgetAwarePolicy,
    EntryInfo,
    EvictionPolicy,
    LRUPolicy,
    S3FIFOPolicy,
    StalenessSource,
)

ENTRY_OVERHEAD = 64
"""Bytes charged per entry on top of the encoded value size (key object, entry object, dict slot)."""


@dataclass(slots=True, eq=False)
class Entry(EntryInfo):
    """An L1 entry: the policy's :class:`EntryInfo` plus the value and its refresh metadata."""

    value: Any = None
    stale_until: float | None = None
    delta: float = 0.0


# ``fill_many`` builds entries positionally (a measurable saving per key on the L2 batch path); this
# pins the field order it relies on, so a new EntryInfo/Entry field fails loudly at import instead.
_ENTRY_FIELDS = ("key", "size", "inserted_at", "expires_at", "tier", "preloaded", "hits", "tags",
                 "policy_data", "value", "stale_until", "delta")
if tuple(f.name for f in fields(Entry)) != _ENTRY_FIELDS:  # pragma: no cover - a developer error
    raise RuntimeError(f"Entry fields changed: update MemoryTier.fill_many ({_ENTRY_FIELDS})")


_ADMIT_ALL = (S3FIFOPolicy.admit, LRUPolicy.admit)


class MemoryTier:
    """Bounded L1. ``get``/``set``/``delete`` are O(1) (eviction is amortized O(1) per insert).

    ``max_bytes`` and ``max_items`` are hard limits: after every call the tier holds at most that many.
    An entry larger than ``max_bytes`` on its own is not stored.
    """

    def __init__(
        self,
        max_bytes: int = 64 * 1024 * 1024,
        max_items: int = 100_000,
        policy: EvictionPolicy | None = None,
        clock: Clock | None = None,
        default_ttl: float | None = None,
    ) -> None:
        if max_bytes <= 0 or max_items <= 0:
            raise ValueError(f"MemoryTier needs max_bytes > 0 and max_items > 0, got {max_bytes}, {max_items}")
        self.max_bytes = int(max_bytes)
        self.max_items = int(max_items)
        self.policy: EvictionPolicy = policy if policy is not None else S3FIFOPolicy()
        if isinstance(self.policy, BudgetAwarePolicy):
            self.policy.use_budget(self.max_bytes)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.default_ttl = default_ttl
        self.data: dict[str, Entry] = {}
        self.peek = self.data.get
        """``peek(key) -> Entry | None``: the entry as stored, fresh or not, without telling the policy
        (the cache's hit path: one dict lookup; the caller checks ``expires_at`` and calls :meth:`hit`)."""
        self._on_hit = self.policy.on_hit
        self._on_insert = self.policy.on_insert
        # the built-in policies admit everything: skip the call per key (a subclass overriding admit
        # is still asked)
        self._admit = None if getattr(type(self.policy), "admit", None) in _ADMIT_ALL else self.policy.admit
        self._insert_many = self.policy.on_insert_many if isinstance(self.policy, BatchInsertPolicy) else None
        self._evict_many = self.policy.evict if isinstance(self.policy, BatchEvictPolicy) else None
        self.bytes = 0
        self.evictions = 0
        self.expirations = 0
        self.rejections = 0
        self._tags: dict[str, set[str]] = {}

    # -- reads ------------------------------------------------------------------------------------
    def lookup(self, key: str) -> Entry | None:
        """The entry (fresh or stale-but-servable), or None. Drops it once past ``stale_until``.
        Does not tell the policy about the hit: the caller does, once it decides to use the entry."""
        entry = self.data.get(key)
        if entry is None:
            return None
        limit = entry.stale_until
        if limit is not None and self.clock.now() >= limit:
            self.expirations += 1
            self._remove(key, entry)
            self.policy.on_remove(key)
            return None
        return entry

    def hit(self, entry: Entry) -> None:
        """Count a read of ``entry`` (its hit counter and the policy's ``on_hit``). Hot path."""
        entry.hits += 1
        self._on_hit(entry)

    def get(self, key: str, default: Any = None) -> Any:
        """The fresh value, or ``default`` (stale values are not returned here)."""
        entry = self.lookup(key)
        if entry is None:
            return default
        if entry.expires_at is not None and self.clock.now() >= entry.expires_at:
            return default
        self.hit(entry)
        return entry.value

    def too_large(self, key: str, size: int) -> bool:
        """Would an entry of ``size`` encoded bytes exceed the whole byte budget on its own?"""
        return size + len(key) + ENTRY_OVERHEAD > self.max_bytes

    def staleness_source(self) -> StalenessSource | None:
        """The policy, if it predicts staleness (:class:`StalenessSource`), else None."""
        return self.policy if isinstance(self.policy, StalenessSource) else None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.lookup(key) is not None

    def __len__(self) -> int:
        return len(self.data)

    def keys(self) -> Iterator[str]:
        return iter(list(self.data))

    def keys_for_tag(self, tag: str) -> set[str]:
        return set(self._tags.get(tag, ()))

    # -- writes -----------------------------------------------------------------------------------
    def set(
        self,
        key: str,
        value: Any,
        size: int,
        ttl: float | None = None,
        grace: float = 0.0,
        tags: tuple[str, ...] = (),
        preloaded: bool = False,
        delta: float = 0.0,
        expires_at: float | None = None,
    ) -> bool:
        """Store ``value`` (whose encoded size is ``size`` bytes). ``ttl`` None means the tier default;
        ``expires_at`` (absolute) wins over ``ttl`` (used when filling from L2). Returns False when the
        policy refused admission or the entry alone exceeds the byte budget."""
        if not isinstance(key, str):
            raise TypeError(f"cache keys are str, got {type(key).__name__}")
        now = self.clock.now()
        charged = int(size) + len(key) + ENTRY_OVERHEAD
        entry = Entry(key=key, size=charged, inserted_at=now, preloaded=preloaded, tags=tags,
                      value=value, delta=delta)
        if expires_at is None:
            chosen = self.policy.ttl_for(entry, ttl if ttl is not None else self.default_ttl)
            if chosen is not None:
                if chosen <= 0:
                    self.delete(key)
                    return False
                expires_at = now + chosen
        entry.expires_at = expires_at
        entry.stale_until = None if expires_at is None else expires_at + max(0.0, grace)
        old = self.data.get(key)
        if old is not None:
            self._remove(key, old)
            self.policy.on_remove(key)
        if charged > self.max_bytes or not self.policy.admit(entry):
            self.rejections += 1
            return False
        self.data[key] = entry
        self.bytes += charged
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)
        self.policy.on_insert(entry)
        self._enforce()
        return key in self.data

    def fill_many(self, items: list[tuple[str, Any, int, float | None, float]], grace: float = 0.0,
                  tags: tuple[str, ...] = (), preloaded: bool = False, keep_fresh: bool = False,
                  count_resident: bool = True) -> int:
        """Store values read from L2: ``(key, value, encoded size, absolute expires_at, delta)`` each.

        The batch form of ``set(..., expires_at=...)`` (no ``ttl_for``: the lifetime comes from L2):
        every entry is admitted and announced to the policy (in one ``on_insert_many`` call when the
        policy has it), then the budgets are enforced once for the whole batch (one ``evict`` call when
        the policy has it). With ``keep_fresh``, a key that already holds a fresh entry is left alone
        (that entry was stored after the L2 read was sent, so it is at least as new).
        Returns how many of the items are resident afterwards (0 with ``count_resident=False``: the
        count is a pass over the batch after eviction, skipped when the caller does not read it)."""
        now = self.clock.now()
        data = self.data
        policy = self.policy
        admit = self._admit
        insert_many = self._insert_many
        on_insert = policy.on_insert
        max_bytes = self.max_bytes
        grace = max(0.0, grace)
        added = 0
        stored: list[EntryInfo] = []
        for key, value, size, expires_at, delta in items:
            old = data.get(key)
            if old is not None:
                if keep_fresh and (old.expires_at is None or now < old.expires_at):
                    continue
                self._remove(key, old)
                policy.on_remove(key)
            charged = size + len(key) + ENTRY_OVERHEAD
            entry = Entry(key, charged, now, expires_at, "l1", preloaded, 0, tags, None, value,
                          None if expires_at is None else expires_at + grace, delta)
            if expires_at is None:  # no lifetime from L2: the tier default, through the policy (as set())
                chosen = policy.ttl_for(entry, self.default_ttl)
                if chosen is not None:
                    if chosen <= 0:
                        continue
                    entry.expires_at = now + chosen
                    entry.stale_until = entry.expires_at + grace
            if charged > max_bytes or (admit is not None and not admit(entry)):
                self.rejections += 1
                continue
            data[key] = entry
            added += charged
            if tags:
                for tag in tags:
                    self._tags.setdefault(tag, set()).add(key)
            if insert_many is None:
                on_insert(entry)
            stored.append(entry)
        if insert_many is not None and stored:
            insert_many(stored)
        self.bytes += added
        if self.bytes <= max_bytes and len(data) <= self.max_items:
            return len(stored)
        self._enforce()
        if not count_resident:
            return 0
        return sum(1 for entry in stored if data.get(entry.key) is entry)

    def fill_one(self, key: str, value: Any, size: int, expires_at: float | None, delta: float,
                 grace: float = 0.0, tags: tuple[str, ...] = (), preloaded: bool = False) -> None:
        """:meth:`fill_many` of one item (a ``get`` that read L2): the same effect, without building a
        batch. An item with no lifetime from L2 takes the batch path (the tier default through the policy)."""
        if expires_at is None or self._admit is not None or tags:
            self.fill_many([(key, value, size, expires_at, delta)], grace, tags, preloaded)
            return
        data = self.data
        old = data.get(key)
        if old is not None:
            self._remove(key, old)
            self.policy.on_remove(key)
        charged = size + len(key) + ENTRY_OVERHEAD
        if charged > self.max_bytes:
            self.rejections += 1
            return
        entry = Entry(key, charged, self.clock.now(), expires_at, "l1", preloaded, 0, (), None, value,
                      expires_at + (grace if grace > 0.0 else 0.0), delta)
        data[key] = entry
        self.bytes += charged
        self._on_insert(entry)
        if self.bytes > self.max_bytes or len(data) > self.max_items:
            self._enforce()

    def delete(self, key: str) -> bool:
        entry = self.data.get(key)
        if entry is None:
            return False
        self._remove(key, entry)
        self.policy.on_remove(key)
        return True

    def delete_tag(self, tag: str) -> list[str]:
        """Drop every entry carrying ``tag``; returns the keys dropped."""
        keys = list(self._tags.get(tag, ()))
        for key in keys:
            self.delete(key)
        self._tags.pop(tag, None)
        return keys

    def clear(self) -> None:
        for key in list(self.data):
            self.delete(key)

    # -- internals --------------------------------------------------------------------------------
    def _remove(self, key: str, entry: Entry) -> None:
        del self.data[key]
        self.bytes -= entry.size
        for tag in entry.tags:
            members = self._tags.get(tag)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._tags[tag]

    def _enforce(self) -> None:
        data = self.data
        max_bytes, max_items = self.max_bytes, self.max_items
        if self.bytes <= max_bytes and len(data) <= max_items:
            return
        evicted = 0
        evict = self._evict_many
        if evict is not None:  # batch form: one policy call for the whole overflow (no call per victim)
            pop = data.pop
            freed = 0
            for chosen in evict(self.bytes - max_bytes, len(data) - max_items):
                entry = pop(chosen, None)
                if entry is not None:
                    freed += entry.size
                    evicted += 1
                    if entry.tags and self._tags:
                        self._untag(chosen, entry.tags)
            self.bytes -= freed
        next_victim = self.policy.victim
        while self.bytes > max_bytes or len(data) > max_items:
            victim = next_victim()
            if victim is None:
                # The policy lost track (a buggy plug-in): fall back to insertion order so budgets hold.
                victim = next(iter(data))
                self.policy.on_remove(victim)
            evicted += self._evict(victim)
        self.evictions += evicted

    def _evict(self, victim: str) -> int:
        """Drop the policy's victim (already forgotten by the policy); 1 if it was resident."""
        entry = self.data.pop(victim, None)
        if entry is None:
            return 0
        self.bytes -= entry.size
        if entry.tags and self._tags:
            self._untag(victim, entry.tags)
        return 1

    def _untag(self, key: str, entry_tags: tuple[str, ...]) -> None:
        tags = self._tags
        for tag in entry_tags:
            members = tags.get(tag)
            if members is not None:
                members.discard(key)
                if not members:
                    del tags[tag]
