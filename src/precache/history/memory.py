"""``MemoryHistories``: the in-process store, bounded in sessions (LRU), pages per session and time."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence


class _Entry:
    __slots__ = ("expires", "pages")

    def __init__(self, pages: deque[str], expires: float) -> None:
        self.pages, self.expires = pages, expires


class MemoryHistories:
    """At most ``max_sessions`` histories (least recently used go first, counted in ``evicted``), each
    keeping its last ``max_history`` pages and, when ``ttl`` is set, expiring ``ttl`` seconds after its
    last page (``clock``: monotonic seconds). Thread-safe: the inference engine's sync API may run in
    worker threads. ``writes`` counts ``add`` calls (one per page-view batch), for tests and metrics.

    Both faces: sync :meth:`add` / :meth:`read` / :meth:`forget` (:class:`~precache.history.LocalHistory`)
    and async :meth:`append` / :meth:`get` (:class:`~precache.history.HistoryStore`).
    """

    def __init__(self, max_sessions: int = 100_000, max_history: int = 50, ttl: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_sessions < 1 or max_history < 1:
            raise ValueError("max_sessions and max_history must be >= 1")
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be > 0 (or None: never expire)")
        self.max_sessions, self.max_history, self.ttl = max_sessions, max_history, ttl
        self._clock = clock
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0
        self.writes = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._data

    def add(self, session_id: str, pages: Sequence[str]) -> list[str]:
        """Append ``pages`` to the session's history (a fresh one if it expired); returns a copy of it."""
        ttl = self.ttl
        now = self._clock() if ttl is not None else 0.0
        with self._lock:
            self.writes += 1
            data = self._data
            entry = data.get(session_id)
            if entry is not None and (ttl is None or entry.expires > now):
                data.move_to_end(session_id)
            else:
                entry = data[session_id] = _Entry(deque(maxlen=self.max_history), 0.0)
                data.move_to_end(session_id)  # an expired entry is replaced in place: make it the newest
                while len(data) > self.max_sessions:
                    data.popitem(last=False)
                    self.evicted += 1
            if ttl is not None:
                entry.expires = now + ttl
            entry.pages.extend(pages)
            return list(entry.pages)

    def read(self, session_id: str) -> list[str]:
        """The session's pages, oldest first (a read counts as use for the LRU order)."""
        with self._lock:
            entry = self._data.get(session_id)
            if entry is None:
                return []
            if self.ttl is not None and entry.expires <= self._clock():
                del self._data[session_id]
                return []
            self._data.move_to_end(session_id)
            return list(entry.pages)

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._data.pop(session_id, None)

    async def append(self, session_id: str, pages: list[str]) -> list[str]:
        return self.add(session_id, pages)

    async def get(self, session_id: str) -> list[str]:
        return self.read(session_id)
