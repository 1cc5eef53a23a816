"""Eviction-policy protocol for :class:`~precache.cache.memory.MemoryTier`, plus S3-FIFO and LRU.

The learned cache optimizer implements :class:`EvictionPolicy`; the tier calls it on the hot path,
so every hook must be O(1) and must not do I/O or model inference per call (batch that elsewhere).

Division of labour: the *tier* owns the entries, the byte/item budgets and expiry; the *policy* owns
the ordering. The tier asks ``admit`` before storing, ``ttl_for`` to pick the lifetime, tells the
policy about inserts, hits and removals, and calls ``victim()`` repeatedly until the budgets hold.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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


class _S3Node:
    """Per-key S3-FIFO state (which queue, 2-bit frequency, generation for lazy deletion)."""

    __slots__ = ("freq", "gen", "main", "size")

    def __init__(self, size: int, gen: int, main: bool) -> None:
        self.size = size
        self.gen = gen
        self.main = main
        self.freq = 0


class S3FIFOPolicy:
    """S3-FIFO (Yang et al., SOSP 2023): a small FIFO filters one-hit wonders, a main FIFO with
    2-bit frequency reinsertion keeps the rest, and a ghost FIFO of recently evicted keys sends
    returning keys straight to main. Beats LRU on web traces and needs no list moves on a hit
    (a hit only bumps a counter), which keeps the L1 hit path cheap.

    Sizes are in bytes: the small queue holds about ``small_ratio`` of the resident bytes.
    Removal of arbitrary keys is lazy (generation numbers), so every hook is O(1) amortized.
    """

    name = "s3fifo"

    def __init__(self, small_ratio: float = 0.1, ghost_items: int = 10_000) -> None:
        if not 0.0 < small_ratio < 1.0:
            raise ValueError(f"small_ratio must be in (0, 1), got {small_ratio}")
        self.small_ratio = small_ratio
        self._nodes: dict[str, _S3Node] = {}
        self._small: deque[tuple[str, int]] = deque()
        self._main: deque[tuple[str, int]] = deque()
        self._ghost: OrderedDict[str, None] = OrderedDict()
        self._ghost_items = max(0, ghost_items)
        self._small_bytes = 0
        self._main_bytes = 0
        self._gen = 0

    def admit(self, info: EntryInfo) -> bool:
        return True

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return default_ttl

    def on_insert(self, info: EntryInfo) -> None:
        self._gen += 1
        key = info.key
        to_main = key in self._ghost
        if to_main:
            del self._ghost[key]
        node = _S3Node(info.size, self._gen, to_main)
        self._nodes[key] = node
        if to_main:
            self._main.append((key, node.gen))
            self._main_bytes += node.size
        else:
            self._small.append((key, node.gen))
            self._small_bytes += node.size

    def on_hit(self, info: EntryInfo) -> None:
        node = self._nodes.get(info.key)
        if node is not None and node.freq < 3:
            node.freq += 1

    def on_remove(self, key: str) -> None:
        node = self._nodes.pop(key, None)
        if node is None:
            return
        if node.main:
            self._main_bytes -= node.size
        else:
            self._small_bytes -= node.size
        self._compact()

    def _compact(self) -> None:
        """Bound the lazily-deleted tombstones in the queues to about the live count."""
        live = len(self._nodes)
        if len(self._small) + len(self._main) > 2 * live + 64:
            self._small = deque(item for item in self._small if self._live(item))
            self._main = deque(item for item in self._main if self._live(item))

    def _live(self, item: tuple[str, int]) -> bool:
        node = self._nodes.get(item[0])
        return node is not None and node.gen == item[1]

    def victim(self) -> str | None:
        while self._nodes and (self._small or self._main):
            total = self._small_bytes + self._main_bytes
            if self._small and (self._small_bytes >= self.small_ratio * total or not self._main):
                key = self._evict_small()
            else:
                key = self._evict_main()
            if key is not None:
                return key
        return None

    def _evict_small(self) -> str | None:
        key, gen = self._small.popleft()
        node = self._nodes.get(key)
        if node is None or node.gen != gen or node.main:
            return None
        self._small_bytes -= node.size
        if node.freq > 0:
            node.main = True
            node.freq = 0
            self._main.append((key, gen))
            self._main_bytes += node.size
            return None
        del self._nodes[key]
        if self._ghost_items:
            self._ghost[key] = None
            if len(self._ghost) > self._ghost_items:
                self._ghost.popitem(last=False)
        return key

    def _evict_main(self) -> str | None:
        if not self._main:
            return None
        key, gen = self._main.popleft()
        node = self._nodes.get(key)
        if node is None or node.gen != gen or not node.main:
            return None
        if node.freq > 0:
            node.freq -= 1
            self._main.append((key, gen))
            return None
        self._main_bytes -= node.size
        del self._nodes[key]
        return key

    def __len__(self) -> int:
        return len(self._nodes)


def make_policy(name: str) -> EvictionPolicy:
    """Build a built-in policy by name ("s3fifo", "lru")."""
    if name == "s3fifo":
        return S3FIFOPolicy()
    if name == "lru":
        return LRUPolicy()
    raise ValueError(f"unknown eviction policy {name!r}; expected 's3fifo' or 'lru'")
