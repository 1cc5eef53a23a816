"""The online count state: last page -> decayed successor counts, and decayed page popularity.

Why forward decay (Cormode et al., "Forward decay", ICDE 2009): an event at time ``t`` adds the weight
``2 ** ((t - L) / h)`` (``h`` the half-life, ``L`` a landmark) and counts only ever grow. Reading at time
``now`` divides by ``2 ** ((now - L) / h)``, which gives exactly the exponentially decayed count. So an
update is one increment with no read-modify-write: the same rule runs in process and in Redis
(``HINCRBYFLOAT``), and replicas that add to the same Redis hash agree without locks. Within one context
every successor is scaled by the same factor, so the decay changes a row's *evidence* (its decayed total,
which sets how much the merge trusts it) and the relative weight of recent against old transitions.

Landmarks are aligned to epochs of :data:`EPOCH_HALF_LIVES` half-lives (``L_e = e * EPOCH_HALF_LIVES * h``)
so that every replica computes the same landmark from the clock alone, and weights stay below
``2 ** EPOCH_HALF_LIVES`` (far from float overflow). At an epoch change the state is rescaled by
``2 ** -EPOCH_HALF_LIVES`` (what was 1 becomes 5e-20: data that old no longer matters). ``half_life=None``
switches decay off (every weight is 1).

Memory cap (what is evicted):
- contexts: at most ``max_contexts`` rows; past it the row *least recently updated* is dropped whole (a
  page nobody has left for the longest time; the frozen model still answers for it);
- successors: at most ``max_successors`` per row; a new successor of a full row replaces the one with the
  smallest count (its count leaves the row total too), like Space-Saving without inheriting the count
  (which would overstate a new successor);
- popularity: at most ``max_contexts`` pages; a new page of a full table replaces the lightest of the
  :data:`EVICTION_SAMPLE` pages held longest (bounded time: a learning call may run on a server's event loop,
  where evicting the lightest tenth of 100,000 pages at once stalled every request behind it for tens of
  milliseconds).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

EPOCH_HALF_LIVES = 64
EVICTION_SAMPLE = 64  # a full popularity table evicts the lightest of its this-many longest-held pages
POPULARITY = ""  # the row key of the popularity counts (no page id is empty)


def epoch_of(t: float, half_life: float | None) -> int:
    """The epoch number of time ``t`` (0 forever when there is no decay)."""
    if half_life is None:
        return 0
    return math.floor(t / (EPOCH_HALF_LIVES * half_life))


def forward_weight(t: float, half_life: float | None) -> float:
    """The weight an event at ``t`` adds in its epoch: ``2 ** ((t - L_e) / h)``, in ``[1, 2 ** 64)``."""
    if half_life is None:
        return 1.0
    landmark = epoch_of(t, half_life) * EPOCH_HALF_LIVES * half_life
    return float(2.0 ** ((t - landmark) / half_life))


def read_scale(now: float, half_life: float | None) -> float:
    """Divide the stored (current-epoch) counts by this to get decayed counts at ``now``."""
    return forward_weight(now, half_life)


@dataclass(slots=True)
class Row:
    """One context's successors (stored weights, forward-decayed) and their sum."""

    successors: dict[str, float]
    total: float = 0.0

    def add(self, page: str, weight: float, cap: int, sample: int | None = None) -> None:
        """Add ``weight`` to ``page``; a new page of a full row first evicts the lightest successor, or with
        ``sample`` (a large row: popularity) the lightest of the ``sample`` held longest (O(sample), not O(cap))."""
        successors = self.successors
        if page not in successors and len(successors) >= cap:
            candidates = successors if sample is None else itertools.islice(successors, sample)
            gone = min(candidates, key=successors.__getitem__)
            self.total -= successors.pop(gone)
        successors[page] = successors.get(page, 0.0) + weight
        self.total += weight

    def scaled(self, factor: float) -> None:
        for page in self.successors:
            self.successors[page] *= factor
        self.total *= factor

    def head(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` heaviest successors with their share of the row, best first (ties by page)."""
        if self.total <= 0:
            return []
        items = sorted(self.successors.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(page, w / self.total) for page, w in items]


class OnlineCounts:
    """Decayed, capped first-order transition counts and popularity (in process; see the module doc).

    ``add(previous, page, t)`` learns one observed transition (``previous=None``: only popularity);
    ``head(previous, n, now)`` reads a row's top ``n`` as ``(page, share)`` with the row's decayed evidence.
    """

    def __init__(self, half_life: float | None = None, max_contexts: int = 100_000, max_successors: int = 64) -> None:
        if half_life is not None and not half_life > 0:
            raise ValueError(f"half_life must be > 0 seconds (or None for no decay), got {half_life}")
        if max_contexts < 1 or max_successors < 1:
            raise ValueError("max_contexts and max_successors must be >= 1")
        self.half_life = half_life
        self.max_contexts = max_contexts
        self.max_successors = max_successors
        self.rows: OrderedDict[str, Row] = OrderedDict()
        self.popularity = Row({})
        self.epoch = 0
        self.updates = 0
        self.evicted_contexts = 0

    def advance(self, t: float) -> None:
        """Move to ``t``'s epoch (rescaling what is stored) when ``t`` is in a later one."""
        epoch = epoch_of(t, self.half_life)
        if not self.rows and self.popularity.total == 0:
            self.epoch = max(self.epoch, epoch)
        elif epoch > self.epoch:
            factor = 2.0 ** (-EPOCH_HALF_LIVES * min(epoch - self.epoch, 16))
            for row in self.rows.values():
                row.scaled(factor)
            self.popularity.scaled(factor)
            self.epoch = epoch

    def add(self, previous: str | None, page: str, t: float, weight: float = 1.0) -> None:
        """Learn ``previous -> page`` observed at time ``t`` (seconds, or any monotone clock)."""
        self.advance(t)
        self.add_weighted(previous, page, t, weight * self.stored_weight(t))

    def add_weighted(self, previous: str | None, page: str, t: float, w: float) -> None:
        """``add`` with the stored weight already computed (``stored_weight(t)`` after ``advance(t)``)."""
        self.popularity.add(page, w, self.max_contexts, sample=EVICTION_SAMPLE)
        if previous is not None:
            self.add_stored(previous, page, w)
        self.updates += 1

    def stored_weight(self, t: float) -> float:
        """The stored weight of one event at ``t`` in the state's current epoch (an event from an earlier
        epoch, out of order, is scaled down with it)."""
        if self.half_life is None:
            return 1.0
        behind = self.epoch - epoch_of(t, self.half_life)
        return forward_weight(t, self.half_life) * 2.0 ** (-EPOCH_HALF_LIVES * max(0, behind))

    def add_stored(self, context: str, page: str, stored_weight: float) -> None:
        """Add an already forward-weighted count (what a Redis mirror copies in)."""
        row = self.rows.get(context)
        if row is None:
            row = self.rows[context] = Row({})
            if len(self.rows) > self.max_contexts:
                self.rows.popitem(last=False)
                self.evicted_contexts += 1
        else:
            self.rows.move_to_end(context)
        row.add(page, stored_weight, self.max_successors)

    def replace_row(self, context: str, successors: dict[str, float], now: float) -> None:
        """Set a row to stored weights of ``now``'s epoch read elsewhere (a Redis read): the local copy."""
        self.advance(now)
        if len(successors) > self.max_successors:
            successors = dict(sorted(successors.items(), key=lambda kv: -kv[1])[: self.max_successors])
        self.rows[context] = Row(successors, sum(successors.values()))
        self.rows.move_to_end(context)
        if len(self.rows) > self.max_contexts:
            self.rows.popitem(last=False)
            self.evicted_contexts += 1

    def evidence(self, total: float, now: float) -> float:
        """A row's decayed count at ``now`` from its stored total."""
        if self.half_life is None:
            return total
        ahead = epoch_of(now, self.half_life) - self.epoch
        return total / (forward_weight(now, self.half_life) * 2.0 ** (EPOCH_HALF_LIVES * min(ahead, 16)))

    def head(self, context: str | None, n: int, now: float) -> tuple[list[tuple[str, float]], float]:
        """Top ``n`` successors of ``context`` as shares, and the row's decayed evidence (0: unseen)."""
        self.advance(now)
        row = self.popularity if context is None else self.rows.get(context)
        if row is None or row.total <= 0:
            return [], 0.0
        return row.head(n), self.evidence(row.total, now)

    def contexts(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def approx_bytes(self) -> int:
        """Python heap bytes of the rows (dict tables, keys and floats; the page strings are counted once)."""
        seen: set[int] = set()
        total = sys.getsizeof(self.rows)

        def strsize(s: str) -> int:
            if id(s) in seen:
                return 0
            seen.add(id(s))
            return sys.getsizeof(s)

        for context, row in [*self.rows.items(), (POPULARITY, self.popularity)]:
            total += strsize(context) + sys.getsizeof(row) + sys.getsizeof(row.successors)
            total += sum(strsize(p) + 24 for p in row.successors)  # 24: a float object
        return total


def seed(state: OnlineCounts, transitions_in_order: Iterable[tuple[str | None, str, float]]) -> OnlineCounts:
    """Add ``(previous, page, t)`` events in order (seeding from the training period)."""
    for previous, page, t in transitions_in_order:
        state.add(previous, page, t)
    return state
