"""Eviction-policy protocol for :class:`~precache.cache.memory.MemoryTier`, plus S3-FIFO and LRU.

The learned cache optimizer implements :class:`EvictionPolicy`; the tier calls it on the hot path,
so every hook must be O(1) and must not do I/O or model inference per call (batch that elsewhere).

Division of labour: the *tier* owns the entries, the byte/item budgets and expiry; the *policy* owns
the ordering. The tier asks ``admit`` before storing, ``ttl_for`` to pick the lifetime, tells the
policy about inserts, hits and removals, and calls ``victim()`` repeatedly until the budgets hold.

Optional hooks, each its own small Protocol (a policy implements the ones it can do better in batch):
:class:`BatchInsertPolicy` (``on_insert_many``) and :class:`BatchEvictPolicy` (``evict``); the tier
checks for them once, when it is built.

Optionally a policy may also be a :class:`StalenessSource`: it then hands the cache keys it believes
are stale (``stale_keys``), which :class:`~precache.cache.layered.PredictiveCache` polls off the hit
path and revalidates or drops. The built-in policies do not implement it (nothing changes for them).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

StaleAction = Literal["revalidate", "evict"]
"""What the cache should do with a key a policy flags as stale: reload it in the background through
its last known loader (``"revalidate"``), or drop the L1 copy (``"evict"``)."""


@dataclass(slots=True, eq=False)
class EntryInfo:
    """What a policy may know about an entry. The tier's own entry *is* this object (no copy per hit);
    policies must treat it as read-only except for :attr:`policy_data`, which is theirs to use."""

    key: str
    size: int
    inserted_at: float = 0.0
    expires_at: float | None = None
    tier: str = "l1"
    preloaded: bool = False
    hits: int = 0
    tags: tuple[str, ...] = ()
    policy_data: object = field(default=None, repr=False)


@runtime_checkable
class EvictionPolicy(Protocol):
    """The contract between :class:`MemoryTier` and a policy (default :class:`S3FIFOPolicy`)."""

    name: str

    def admit(self, info: EntryInfo) -> bool:
        """Should this new entry be stored at all? (Refusing keeps one-hit wonders out.)"""
        ...

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        """Lifetime in seconds for this entry (None = no expiry); return ``default_ttl`` to keep it."""
        ...

    def on_insert(self, info: EntryInfo) -> None:
        """The entry was stored (new key, or replaced value: ``on_remove`` came first)."""
        ...

    def on_hit(self, info: EntryInfo) -> None:
        """The entry was read. Hot path: keep this to a few attribute updates."""
        ...

    def on_remove(self, key: str) -> None:
        """The entry left the tier for any reason other than ``victim()`` (delete, expiry, replace)."""
        ...

    def victim(self) -> str | None:
        """Choose and forget one resident key to evict; None when the policy tracks nothing."""
        ...


@runtime_checkable
class BatchInsertPolicy(Protocol):
    """Optional batch hook: the tier announces a whole L2 batch fill in one call instead of one
    ``on_insert`` per entry (same order, same effect)."""

    def on_insert_many(self, infos: list[EntryInfo]) -> None: ...


@runtime_checkable
class BudgetAwarePolicy(Protocol):
    """Optional hook: a policy that decides better knowing the tier's byte budget (the online switcher's
    shadow caches run at it). :class:`MemoryTier` calls ``use_budget`` once, when it takes the policy,
    before any entry is announced."""

    def use_budget(self, max_bytes: int) -> None: ...


@runtime_checkable
class BatchEvictPolicy(Protocol):
    """Optional batch hook: the tier asks for all victims of an overflow in one call. ``evict`` must
    choose and forget victims, in ``victim()`` order, until their sizes sum to at least ``bytes_over``
    and there are at least ``items_over`` of them (or nothing is left)."""

    def evict(self, bytes_over: int, items_over: int) -> list[str]: ...


@runtime_checkable
class StalenessSource(Protocol):
    """Optional extension of :class:`EvictionPolicy`: a policy that predicts which resident entries
    went stale. Not part of ``EvictionPolicy`` itself, so existing policies stay conforming.

    :class:`~precache.cache.layered.PredictiveCache` calls ``stale_keys`` off the hit path (on the miss
    path and from a background task, at most once per ``stale_poll_interval`` on its clock); it must be
    cheap (no model inference: queue the keys when scoring elsewhere) and must not raise.
    """

    def stale_keys(self, limit: int) -> list[tuple[str, StaleAction]]:
        """Forget and return up to ``limit`` ``(key, action)`` pairs flagged since the last call."""
        ...


class LRUPolicy:
    """Least-recently-used: the classic baseline, for comparison."""

    name = "lru"

    def __init__(self) -> None:
        self._order: OrderedDict[str, None] = OrderedDict()

    def admit(self, info: EntryInfo) -> bool:
        return True

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return default_ttl

    def on_insert(self, info: EntryInfo) -> None:
        self._order[info.key] = None

    def on_hit(self, info: EntryInfo) -> None:
        self._order.move_to_end(info.key)

    def on_remove(self, key: str) -> None:
        self._order.pop(key, None)

    def victim(self) -> str | None:
        if not self._order:
            return None
        key, _ = self._order.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._order)


_MAIN = 4
"""S3-FIFO keeps its per-entry state in ``EntryInfo.policy_data`` as a small int: bit 2 set = the entry
is in the main queue; bits 0-1 = its 2-bit access frequency (0..3)."""


def _s3_state(info: EntryInfo) -> int:
    data = info.policy_data
    return data if isinstance(data, int) else 0


class S3FIFOPolicy:
    """S3-FIFO (Yang et al., SOSP 2023): a small FIFO filters one-hit wonders, a main FIFO with
    2-bit frequency reinsertion keeps the rest, and a ghost FIFO of recently evicted keys sends
    returning keys straight to main. Beats LRU on web traces and needs no list moves on a hit
    (a hit only bumps a counter), which keeps the L1 hit path cheap.

    It follows libCacheSim's ``S3FIFO.c`` (the authors' reference implementation), byte for byte where
    the cache's capacity is known (``capacity_bytes``, as the benchmark's replay knows it):

    - the small queue holds ``small_ratio`` (10%) of the capacity, main the rest; a victim comes from
      main when main is over its share or small is empty, else from small;
    - an object leaves small for main only if it was read at least ``move_to_main_threshold`` (2)
      times while in small, else it goes to the ghost queue;
    - main reinserts an entry read since its last pass with its 2-bit frequency (capped at 3) minus 1;
    - the ghost queue holds the *bytes* of the keys evicted from small, up to ``ghost_ratio`` (90%) of
      the capacity; a key found there on insertion goes straight to main;
    - with a known capacity, an object of at least the small queue's size is not admitted (it would
      flush the small queue), and before the first eviction a full small queue sends new keys to main.

    Without ``capacity_bytes`` (the memory tier, which owns its budgets) it keeps the tier's former rules,
    on which the replay benchmark's figures were measured: the small share is of the bytes resident, an
    object is promoted after one read in small (``move_to_main_threshold`` 1), the ghost holds the last
    ``ghost_items`` keys and every victim search starts afresh. (Moving the tier to the parity rules needs
    its byte budget passed in and a re-run of ``bench_replay``.)

    The queues hold the tier's entry objects themselves (no node object per key:
    the per-entry state is an int in ``policy_data``), and removal of arbitrary keys is lazy (an entry
    in a queue is live only while it *is* the tracked entry of its key), so every hook is O(1)
    amortized. :meth:`on_insert_many` and :meth:`evict` are the batch forms the tier uses for L2 fills.
    """

    name = "s3fifo"

    def __init__(self, small_ratio: float = 0.1, ghost_ratio: float = 0.9, move_to_main_threshold: int | None = None,
                 capacity_bytes: int | None = None, ghost_items: int = 10_000) -> None:
        if not 0.0 < small_ratio < 1.0:
            raise ValueError(f"small_ratio must be in (0, 1), got {small_ratio}")
        if ghost_ratio < 0.0:
            raise ValueError(f"ghost_ratio must be >= 0, got {ghost_ratio}")
        threshold = move_to_main_threshold if move_to_main_threshold is not None else 2 if capacity_bytes else 1
        if not 1 <= threshold <= 3:
            raise ValueError(f"move_to_main_threshold must be 1..3 (a 2-bit counter), got {threshold}")
        self.small_ratio = small_ratio
        self.ghost_ratio = ghost_ratio
        self.threshold = threshold
        self.capacity = capacity_bytes
        self._ghost_items = max(0, ghost_items)
        self._small_cap = int(capacity_bytes * small_ratio) if capacity_bytes else 0
        self._nodes: dict[str, EntryInfo] = {}
        self._small: deque[EntryInfo] = deque()
        self._main: deque[EntryInfo] = deque()
        self._ghost: OrderedDict[str, int] = OrderedDict()
        self._ghost_bytes = 0
        self._small_bytes = 0
        self._main_bytes = 0
        self._evicted = False

    def admit(self, info: EntryInfo) -> bool:
        return not self._small_cap or info.size < self._small_cap

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return default_ttl

    def on_insert(self, info: EntryInfo) -> None:
        key = info.key
        if key in self._nodes:  # a replace without on_remove: forget the old entry first
            self.on_remove(key)
        ghost = self._ghost
        size = ghost.pop(key, None)
        to_main = size is not None
        if to_main:
            self._ghost_bytes -= size  # type: ignore[operator]  # not None here
        elif self._small_cap and not self._evicted and self._small_bytes >= self._small_cap:
            to_main = True  # libCacheSim: before the first eviction a full small queue sends new keys to main
        if to_main:
            info.policy_data = _MAIN
            self._main.append(info)
            self._main_bytes += info.size
        else:
            info.policy_data = 0
            self._small.append(info)
            self._small_bytes += info.size
        self._nodes[key] = info

    def on_insert_many(self, infos: list[EntryInfo]) -> None:
        """``on_insert`` for each of ``infos``, in order (the batch-fill form: one call per batch)."""
        if self._small_cap and not self._evicted:  # the warm-up rule needs per-entry checks
            for info in infos:
                self.on_insert(info)
            return
        nodes, ghost = self._nodes, self._ghost
        small_append = self._small.append
        small_bytes = 0
        for info in infos:
            key = info.key
            if key in ghost or key in nodes:  # rare: returning key, or a key twice in one batch
                self._small_bytes += small_bytes
                small_bytes = 0
                self.on_insert(info)
                continue
            info.policy_data = 0
            small_append(info)
            small_bytes += info.size
            nodes[key] = info
        self._small_bytes += small_bytes

    def on_hit(self, info: EntryInfo) -> None:
        data = info.policy_data
        if isinstance(data, int) and data & 3 != 3:
            info.policy_data = data + 1

    def on_remove(self, key: str) -> None:
        info = self._nodes.pop(key, None)
        if info is None:
            return
        if _s3_state(info) & _MAIN:
            self._main_bytes -= info.size
        else:
            self._small_bytes -= info.size
        self._compact()

    def _compact(self) -> None:
        """Bound the lazily-deleted tombstones in the queues to about the live count."""
        nodes = self._nodes
        if len(self._small) + len(self._main) > 2 * len(nodes) + 64:
            self._small = deque(i for i in self._small if nodes.get(i.key) is i)
            self._main = deque(i for i in self._main if nodes.get(i.key) is i)

    def victim(self) -> str | None:
        victims = self.evict(1, 1)
        return victims[0] if victims else None

    def _ghost_add(self, key: str, size: int) -> None:
        ghost = self._ghost
        ghost[key] = size
        self._ghost_bytes += size
        if self.capacity:  # libCacheSim: a byte budget of ghost_ratio of the capacity
            while self._ghost_bytes > self.ghost_ratio * self.capacity and ghost:
                self._ghost_bytes -= ghost.popitem(last=False)[1]
        else:  # the memory tier's former rule: the last ghost_items keys
            while len(ghost) > self._ghost_items:
                self._ghost_bytes -= ghost.popitem(last=False)[1]

    def evict(self, bytes_over: int, items_over: int) -> list[str]:
        """Choose and forget victims until their sizes sum to at least ``bytes_over`` and there are at
        least ``items_over`` of them (or nothing is left). The batch form of :meth:`victim`, same order.

        This is the inner loop of every L2 batch fill (one victim per filled key once L1 is full), so
        it binds its lookups once."""
        out: list[str] = []
        add_victim = out.append
        nodes, small, main = self._nodes, self._small, self._main
        tracked = nodes.get
        small_pop, main_pop, main_push = small.popleft, main.popleft, main.append
        ratio, threshold, cap = self.small_ratio, self.threshold, self.capacity
        main_cap = cap - self._small_cap if cap else 0
        small_bytes, main_bytes = self._small_bytes, self._main_bytes
        freed = count = 0
        self._evicted = True
        in_small = False  # libCacheSim: once a victim is sought in small, promotions keep searching small
        while freed < bytes_over or count < items_over:
            if not in_small:
                main_over = main_bytes > main_cap if cap else small_bytes < ratio * (small_bytes + main_bytes)
                in_small = bool(small) and not (main and main_over)
            if in_small and small:
                info = small_pop()
                key = info.key
                if tracked(key) is not info:
                    continue  # tombstone
                state: int = info.policy_data  # type: ignore[assignment]  # an int once queued (on_insert)
                size = info.size
                small_bytes -= size
                if state >= threshold:  # read often enough while in small: promote, frequency 0
                    info.policy_data = _MAIN
                    main_push(info)
                    main_bytes += size
                    in_small = bool(cap)  # libCacheSim keeps searching small; the tier's former rule re-picks
                    continue
                del nodes[key]
                self._small_bytes, self._main_bytes = small_bytes, main_bytes
                self._ghost_add(key, size)
                in_small = False
            elif in_small:  # small ran out while promoting: the next victim is chosen afresh
                in_small = False
                continue
            elif main:
                info = main_pop()
                key = info.key
                if tracked(key) is not info:
                    continue
                state = info.policy_data  # type: ignore[assignment]
                if state & 3:
                    info.policy_data = state - 1
                    main_push(info)
                    continue
                size = info.size
                main_bytes -= size
                del nodes[key]
            else:
                break
            freed += size
            count += 1
            add_victim(key)
        self._small_bytes, self._main_bytes = small_bytes, main_bytes
        return out

    def __len__(self) -> int:
        return len(self._nodes)


POLICIES: dict[str, Callable[[], EvictionPolicy]] = {"s3fifo": S3FIFOPolicy, "lru": LRUPolicy}
"""The built-in policies by name: a new policy class is added here (see docs/contributing.md)."""


def make_policy(name: str) -> EvictionPolicy:
    """Build a built-in policy by name (:data:`POLICIES`: "s3fifo", "lru")."""
    cls = POLICIES.get(name)
    if cls is None:
        raise ValueError(f"unknown eviction policy {name!r}; expected one of {', '.join(map(repr, POLICIES))}")
    return cls()
