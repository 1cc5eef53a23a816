"""Per-process session state the middleware keeps: session ids, page histories, hint budgets, and the
pages whose responses could not be stored. All of it is bounded (oldest sessions and pages go first)."""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict, deque
from typing import Protocol

_VALID_ID = re.compile(r"[A-Za-z0-9_\-]{8,64}")


def valid_session_id(value: str | None) -> str | None:
    """``value`` when it looks like an id this middleware could have issued (or a sane header id)."""
    if value and _VALID_ID.fullmatch(value):
        return value
    return None


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


def session_cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    """The ``Set-Cookie`` value for a new session: HttpOnly, SameSite=Lax, Secure on HTTPS."""
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class HistoryStore(Protocol):
    """A session-history store shared by processes (``precache.serve.sessions.RedisHistories`` is one):
    pages oldest first, capped and expiring as the store decides."""

    async def append(self, session_id: str, pages: list[str]) -> list[str]: ...

    async def get(self, session_id: str) -> list[str]: ...


class _Session:
    __slots__ = ("hinted", "pages")

    def __init__(self, max_history: int) -> None:
        self.pages: deque[str] = deque(maxlen=max_history)
        self.hinted: set[str] = set()


class SessionTracker:
    """Page history and the URLs already hinted, for the most recent ``max_sessions`` sessions."""

    def __init__(self, max_sessions: int = 100_000, max_history: int = 20) -> None:
        self.max_sessions = max_sessions
        self.max_history = max_history
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def _get(self, session_id: str) -> _Session:
        state = self._sessions.get(session_id)
        if state is None:
            state = self._sessions[session_id] = _Session(self.max_history)
            if len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(session_id)
        return state

    def view(self, session_id: str, page: str) -> None:
        self._get(session_id).pages.append(page)

    def history(self, session_id: str) -> list[str]:
        state = self._sessions.get(session_id)
        return list(state.pages) if state is not None else []

    def spend(self, session_id: str, urls: list[str], budget: int) -> list[str]:
        """The ``urls`` this session may still be sent: already-hinted ones are free, new ones cost one
        unit of ``budget`` each (distinct URLs per session)."""
        hinted = self._get(session_id).hinted
        out = []
        for url in urls:
            if url in hinted:
                out.append(url)
            elif len(hinted) < budget:
                hinted.add(url)
                out.append(url)
        return out

    def __len__(self) -> int:
        return len(self._sessions)


class BoundedSet:
    """A set that forgets its oldest members beyond ``limit`` (pages known to be uncacheable)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        if len(self._items) > self.limit:
            self._items.popitem(last=False)

    def discard(self, item: str) -> None:
        self._items.pop(item, None)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)
