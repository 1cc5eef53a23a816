"""Per-process session state the middleware keeps: session ids, hint budgets, and the pages whose responses
could not be stored. All of it is bounded (oldest sessions and pages go first). Page histories are not
here: they live in the process's one store (:mod:`precache.history`)."""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict

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


class HintBudgets:
    """The URLs already hinted to each of the most recent ``max_sessions`` sessions (the pages a session
    viewed live in the process's one history store, :mod:`precache.history`)."""

    def __init__(self, max_sessions: int = 100_000) -> None:
        self.max_sessions = max_sessions
        self._hinted: OrderedDict[str, set[str]] = OrderedDict()

    def _get(self, session_id: str) -> set[str]:
        hinted = self._hinted.get(session_id)
        if hinted is None:
            hinted = self._hinted[session_id] = set()
            if len(self._hinted) > self.max_sessions:
                self._hinted.popitem(last=False)
        else:
            self._hinted.move_to_end(session_id)
        return hinted

    def spend(self, session_id: str, urls: list[str], budget: int) -> list[str]:
        """The ``urls`` this session may still be sent: already-hinted ones are free, new ones cost one
        unit of ``budget`` each (distinct URLs per session)."""
        hinted = self._get(session_id)
        out = []
        for url in urls:
            if url in hinted:
                out.append(url)
            elif len(hinted) < budget:
                hinted.add(url)
                out.append(url)
        return out

    def __len__(self) -> int:
        return len(self._hinted)


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
