"""The two protocols of a session-history store (defined here once; see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class HistoryStore(Protocol):
    """A session-history store that may be shared by processes: pages oldest first, capped and expiring as
    the store decides. ``append`` is one write per call (a page view is appended once)."""

    async def append(self, session_id: str, pages: list[str]) -> list[str]:
        """Add page views; returns the session's history (oldest first, capped)."""
        ...

    async def get(self, session_id: str) -> list[str]:
        """The session's history (oldest first; empty when unknown or expired)."""
        ...


@runtime_checkable
class LocalHistory(Protocol):
    """The same store read and written synchronously (in-process only): the request path and the warmer's
    batch step use it without awaiting. ``evicted`` counts sessions dropped to stay within bounds."""

    evicted: int

    def add(self, session_id: str, pages: Sequence[str]) -> list[str]:
        """Add page views; returns a copy of the session's history (oldest first, capped)."""
        ...

    def read(self, session_id: str) -> list[str]: ...

    def forget(self, session_id: str) -> None: ...
