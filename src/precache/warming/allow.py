"""Which URLs precache may fetch on a visitor's behalf (warming, browser prefetch): an allow rule.

Why an allow rule and not a deny-list: a prefetch or a warming request is a ``GET`` nobody clicked. When a
site performs an action on a ``GET`` (``/cart/add?item=1``, ``/api/delete_all``, ``/logout``), fetching it
ahead performs the action in the visitor's name. No list of bad patterns is complete, so precache fetches
only what is safe by construction: a same-origin path (never ``//host``, no backslash, no control
character), **without a query string**, none of whose path segments contains a word of an action
vocabulary (segment-wise: ``delete_all``, ``remove-card``, ``deleteAll`` and ``log-out`` are split into words;
percent-encoding is decoded first), unless the application marks it safe. The application's marks win:
``unsafe`` patterns always refuse, ``safe`` patterns allow a URL the defaults would refuse (a search page
with a query, say). Both are regular expressions matched against the whole page id (path and query).

This module is below :mod:`precache.web` (which may import warming, never the reverse), so the middleware's
hints and every warmer share one rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

UNSAFE_WORDS: frozenset[str] = frozenset({
    # leaving, signing in and out (an SSO login on GET sets state and redirects)
    "logout", "logoff", "signout", "signoff", "login", "signin", "oauth", "callback", "sso", "impersonate",
    # changing or removing things
    "delete", "del", "remove", "rm", "destroy", "drop", "erase", "purge", "clear", "wipe", "reset", "truncate",
    "add", "create", "insert", "update", "save", "submit", "set", "unset", "toggle", "mark", "undo", "redo",
    "revert", "rollback", "merge", "publish", "unpublish", "archive", "unarchive", "move", "rename", "copy",
    "upload", "import", "sync", "edit",
    # commerce
    "cart", "basket", "checkout", "buy", "purchase", "pay", "payment", "order", "refund", "redeem", "claim",
    "transfer", "withdraw", "deposit", "donate",
    # social and subscriptions
    "subscribe", "unsubscribe", "follow", "unfollow", "like", "unlike", "vote", "upvote", "downvote", "rate",
    "star", "unstar", "favorite", "favourite", "bookmark", "pin", "unpin", "share", "invite", "join", "leave",
    "block", "unblock", "ban", "unban", "mute", "unmute", "report", "flag", "send", "email", "notify",
    # accounts and administration
    "confirm", "cancel", "approve", "reject", "accept", "decline", "revoke", "verify", "activate",
    "deactivate", "enable", "disable", "password", "token", "install", "uninstall", "run", "execute", "exec",
    "trigger", "restart", "shutdown", "stop", "kill", "download", "export",
})  # fmt: skip
"""Words that name an action: a path segment containing one is refused by default (extend or replace it)."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def segment_words(segment: str) -> set[str]:
    """The words of one path segment: camelCase and separators split, lower-cased; the whole segment
    without separators counts too (``log-out`` -> ``logout``)."""
    parts = [w for w in _WORD_SPLIT.split(_CAMEL.sub(" ", segment).lower()) if w]
    return {*parts, "".join(parts)} if parts else set()


def _decoded(path: str) -> str:
    """Percent-decoding until stable (at most three rounds): ``%64elete`` is ``delete`` to the server."""
    for _ in range(3):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return path


@dataclass(frozen=True, slots=True)
class AllowRule:
    """What may be fetched ahead (see the module docstring).

    ``unsafe_words``: the action vocabulary (default :data:`UNSAFE_WORDS`); ``extra_unsafe_words`` adds to
    it. ``safe`` / ``unsafe``: the application's marks, regular expressions matched against the whole page
    id (``re.fullmatch``; ``unsafe`` wins). ``allow_query``: allow query strings by default (off: a query
    usually carries parameters of an action or a search nobody asked for). ``reserved``: path prefixes never
    fetched (precache's own routes)."""

    unsafe_words: frozenset[str] = UNSAFE_WORDS
    extra_unsafe_words: tuple[str, ...] = ()
    safe: tuple[str, ...] = ()
    unsafe: tuple[str, ...] = ()
    allow_query: bool = False
    reserved: tuple[str, ...] = ("/_precache/",)
    _safe: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _unsafe: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _words: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_safe", tuple(re.compile(p) for p in self.safe))
            object.__setattr__(self, "_unsafe", tuple(re.compile(p) for p in self.unsafe))
        except re.error as exc:
            raise ValueError(f"AllowRule: a safe/unsafe pattern is not a regular expression: {exc}") from exc
        words = frozenset(w.lower() for w in (*self.unsafe_words, *self.extra_unsafe_words))
        object.__setattr__(self, "_words", words)

    def refusal(self, page: str) -> str | None:
        """Why ``page`` (a path, with its query if any) must not be fetched ahead, or None when it may."""
        if not page.startswith("/") or page.startswith("//") or "\\" in page or "#" in page:
            return "not-same-origin-path"
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in page):
            return "control-character"
        decoded = _decoded(page)
        if decoded.startswith("//") or "\\" in decoded or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
            return "not-same-origin-path"
        if any(decoded.startswith(prefix) or page.startswith(prefix) for prefix in self.reserved):
            return "reserved"
        if any(p.fullmatch(page) or p.fullmatch(decoded) for p in self._unsafe):
            return "marked-unsafe"
        if any(p.fullmatch(page) for p in self._safe):
            return None
        path, question, _ = page.partition("?")
        if question and not self.allow_query:
            return "query"
        for segment in _decoded(path).split("/"):
            if segment and segment_words(segment) & self._words:
                return "unsafe-word"
        return None

    def allows(self, page: str) -> bool:
        return self.refusal(page) is None
