"""Heuristic policies the online switcher can run besides S3-FIFO: SIEVE, GDSF and a doorkeeper.

Why these: they are the Python forms of the baselines that win somewhere in the policy benchmark
(libCacheSim's Sieve, GDSF+Bloom, S3FIFO+Bloom), so the switcher (:mod:`.switcher`) can follow the
workload to whichever of them fits it. Each implements :class:`~precache.cache.policy.EvictionPolicy`.
"""

from __future__ import annotations

import heapq

from precache.cache.policy import EntryInfo, EvictionPolicy

DOOR_GENERATION = 100_000
"""The doorkeeper remembers the keys of up to two generations of this many distinct misses: a key is
admitted when it was missed before within that window (libCacheSim's Bloom-filter admissioner admits
on the second request; two rotating sets bound the memory, as a TinyLFU doorkeeper is reset)."""


class SievePolicy:
    """SIEVE (Zhang et al., NSDI 2024): one FIFO of insertions and a hand that walks it from old to new,
    clearing the visited bit of entries read since it last passed and evicting the first unvisited one;
    a hit only sets a bit. The FIFO is a dict-linked list (``_newer``/``_older``) so that the hand can
    stay where it stopped and arbitrary removals are O(1)."""

    name = "sieve"

    def __init__(self) -> None:
        self._nodes: dict[str, EntryInfo] = {}
        self._newer: dict[str, str | None] = {}
        self._older: dict[str, str | None] = {}
        self._head: str | None = None  # newest
        self._tail: str | None = None  # oldest
        self._hand: str | None = None

    def admit(self, info: EntryInfo) -> bool:
        return True

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return default_ttl

    def on_insert(self, info: EntryInfo) -> None:
        key = info.key
        if key in self._nodes:
            self.on_remove(key)
        info.policy_data = False
        self._nodes[key] = info
        self._older[key] = self._head
        self._newer[key] = None
        if self._head is not None:
            self._newer[self._head] = key
        self._head = key
        if self._tail is None:
            self._tail = key

    def on_hit(self, info: EntryInfo) -> None:
        info.policy_data = True

    def on_remove(self, key: str) -> None:
        if self._nodes.pop(key, None) is None:
            return
        newer, older = self._newer.pop(key), self._older.pop(key)
        if self._hand == key:
            self._hand = newer
        if newer is None:
            self._head = older
        else:
            self._older[newer] = older
        if older is None:
            self._tail = newer
        else:
            self._newer[older] = newer

    def victim(self) -> str | None:
        nodes = self._nodes
        if not nodes:
            return None
        key = self._hand if self._hand is not None else self._tail
        while key is not None:
            info = nodes[key]
            if not info.policy_data:
                break
            info.policy_data = False
            nxt = self._newer[key]
            key = nxt if nxt is not None else self._tail
        assert key is not None  # nodes is not empty, and a full pass clears every bit
        self._hand = self._newer[key]
        self.on_remove(key)  # (a None hand wraps to the oldest on the next call)
        return key

    def __len__(self) -> int:
        return len(self._nodes)


class GDSFPolicy:
    """GreedyDual-Size-Frequency (Cherkasova 1998), as libCacheSim's GDSF: priority = L + frequency /
    size, evict the lowest (ties: the least recently requested), L rises to the evicted priority (aging).
    A lazy min-heap: stale heap items (a key hit or removed since) are skipped when popped, and rebuilt
    when they outnumber live ones.

    With ``capacity_bytes`` it also refuses what libCacheSim's GDSF never keeps: libCacheSim inserts a miss
    first and then evicts the lowest priorities, so a new object whose priority is below every resident
    that would have to go to make room for it is itself the first evicted (one large object read once
    does not flush the cache). In the evict-first order of this project's caches, :meth:`admit` says no
    to that object, and L rises to its priority as libCacheSim's would. Without a capacity (the memory
    tier owns its budget) every miss is admitted."""

    name = "gdsf"

    def __init__(self, capacity_bytes: int | None = None) -> None:
        self.capacity = capacity_bytes
        self._prio: dict[str, float] = {}
        self._freq: dict[str, int] = {}
        self._size: dict[str, int] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._age = 0.0
        self.used = 0

    @property
    def age(self) -> float:
        """L: the priority of the last object evicted (or refused), added to every new priority."""
        return self._age

    def admit(self, info: EntryInfo) -> bool:
        if self.capacity is None:
            return True
        need = self.used + info.size - self.capacity
        if need <= 0:
            return True
        incoming = self._age + 1.0 / max(info.size, 1)
        if self._frees_before(incoming, need):
            return True
        self._age = incoming  # libCacheSim evicts the new object itself: its priority is the new L
        return False

    def _frees_before(self, priority: float, need: int) -> bool:
        """Do the residents whose priority is at most ``priority`` (lowest first) hold ``need`` bytes?
        A walk of the heap in order through a frontier of its nodes: O(k log k) for the k items read."""
        heap, prio, size = self._heap, self._prio, self._size
        frontier = [(heap[0], 0)] if heap else []
        freed = 0
        while frontier:
            (p, _, key), i = heapq.heappop(frontier)
            if p > priority:
                return False
            if prio.get(key) == p:  # the live item (priorities only rise: one per key, as victim() assumes)
                freed += size[key]
                if freed >= need:
                    return True
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(heap):
                    heapq.heappush(frontier, (heap[child], child))
        return False

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return default_ttl

    def _push(self, key: str, size: int) -> None:
        p = self._age + self._freq[key] / max(size, 1)
        self._prio[key] = p
        self._seq += 1
        heapq.heappush(self._heap, (p, self._seq, key))
        if len(self._heap) > 2 * len(self._prio) + 64:
            self._heap = [(q, s, k) for q, s, k in self._heap if self._prio.get(k) == q]
            heapq.heapify(self._heap)

    def on_insert(self, info: EntryInfo) -> None:
        self._freq[info.key] = 1
        self._size[info.key] = info.size
        self.used += info.size
        self._push(info.key, info.size)

    def on_hit(self, info: EntryInfo) -> None:
        self._freq[info.key] = self._freq.get(info.key, 0) + 1
        self._push(info.key, info.size)

    def _forget(self, key: str) -> None:
        del self._prio[key]
        del self._freq[key]
        self.used -= self._size.pop(key)

    def on_remove(self, key: str) -> None:
        if key in self._prio:
            self._forget(key)

    def victim(self) -> str | None:
        heap, prio = self._heap, self._prio
        while heap:
            p, _, key = heapq.heappop(heap)
            if prio.get(key) == p:
                self._age = p
                self._forget(key)
                return key
        return None

    def __len__(self) -> int:
        return len(self._prio)


class DoorkeeperPolicy:
    """Admission in front of any policy: a miss is admitted only if its key was missed before within
    the last one to two generations of ``generation`` distinct missed keys (the first request of a
    one-hit wonder never enters the cache). Every other hook is the inner policy's."""

    def __init__(self, inner: EvictionPolicy, generation: int = DOOR_GENERATION) -> None:
        self.inner = inner
        self.name = f"{inner.name}+door"
        self.generation = max(1, generation)
        self._young: set[str] = set()
        self._old: set[str] = set()

    def admit(self, info: EntryInfo) -> bool:
        key = info.key
        if key in self._young or key in self._old:
            return self.inner.admit(info)
        self._young.add(key)
        if len(self._young) >= self.generation:
            self._old, self._young = self._young, set()
        return False

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return self.inner.ttl_for(info, default_ttl)

    def on_insert(self, info: EntryInfo) -> None:
        self.inner.on_insert(info)

    def on_hit(self, info: EntryInfo) -> None:
        self.inner.on_hit(info)

    def on_remove(self, key: str) -> None:
        self.inner.on_remove(key)

    def victim(self) -> str | None:
        return self.inner.victim()
