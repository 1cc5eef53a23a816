"""The middleware's settings: plain frozen dataclasses, so both middlewares and the tests share them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from precache.defaults import WARMING_THRESHOLD
from precache.warming.allow import AllowRule

HintMode = Literal["rules", "link", "both", "none"]


@dataclass(frozen=True, slots=True)
class HintConfig:
    """Browser prefetch hints for the pages the predictor expects next.

    ``mode``: ``"rules"`` adds a ``Speculation-Rules`` header naming a per-session JSON route (``route``,
    served as ``application/speculationrules+json``; it predicts when the browser asks, off the page's own
    response path, and doubles as the page-view beacon for pages the browser showed from its prefetch
    cache); ``"link"`` adds ``Link: <url>; rel=prefetch`` headers (predicts inline, on the response path);
    ``"both"``; ``"none"``. Only pages :attr:`WebConfig.allow` and the application's marks allow
    (:mod:`precache.web.marks`), with probability >= ``threshold``; at most ``max_per_page`` per response
    and ``budget_per_session`` distinct URLs per session."""

    mode: HintMode = "rules"
    threshold: float = WARMING_THRESHOLD
    max_per_page: int = 3
    budget_per_session: int = 50
    route: str = "/_precache/speculation-rules"
    eagerness: Literal["immediate", "eager", "moderate", "conservative"] = "immediate"

    def __post_init__(self) -> None:
        if self.mode not in ("rules", "link", "both", "none"):
            raise ValueError(f"HintConfig.mode must be rules, link, both or none; got {self.mode!r}")
        if not 0.0 <= self.threshold <= 1.0 or self.max_per_page < 0 or self.budget_per_session < 0:
            raise ValueError("HintConfig needs 0 <= threshold <= 1, max_per_page >= 0, budget_per_session >= 0")
        if not self.route.startswith("/"):
            raise ValueError("HintConfig.route must be a path starting with /")


@dataclass(frozen=True, slots=True)
class WebConfig:
    """How :class:`~precache.web.asgi.PrecacheMiddleware` (and the WSGI one) behave.

    Sessions: the id comes from ``session_header`` when set and present, else from the ``session_cookie``
    cookie, which is set when absent (``HttpOnly``, ``SameSite=Lax``, ``Secure`` on HTTPS, ``Max-Age`` =
    ``session_max_age``). Use a cookie of precache's own: on the cached path the application sees no
    cookies at all, so a response stored there cannot depend on who asked.

    Caching (``cache_responses``): ``GET``/``HEAD`` under the rules of :mod:`precache.web.rules`;
    ``ignore_cookies`` are cookie names (regular expressions, full match) that do not make a request
    personal (analytics cookies); ``credential_headers`` are request headers that identify a user like
    ``Authorization`` does (``X-Api-Key``): such requests bypass the cache; ``heuristic_ttl`` is the
    lifetime of a cacheable response that states none (None: store only responses with explicit
    freshness); ``max_ttl`` caps every lifetime;
    ``max_body_bytes`` bounds what is buffered and stored (larger, streamed and event-stream responses
    pass through unbuffered); ``etag`` adds a strong ``ETag`` to stored responses that have none.
    ``keep_query``: the page id the predictor sees keeps the query string (the cache key always does).
    ``status_header``: a response header saying ``hit``, ``miss``, ``pass`` or ``bypass`` (None: none).

    ``allow``: what may be fetched ahead of a visitor, by browser prefetch and by warming alike (an allow
    rule: no query string, no action word in a path segment, the application's ``safe``/``unsafe``
    patterns; see :mod:`precache.warming.allow` and, for route decorators and page attributes,
    :mod:`precache.web.marks`). ``max_marked``: how many page-marked links are remembered.
    """

    session_cookie: str = "precache_sid"
    session_header: str | None = None
    session_max_age: int = 30 * 24 * 3600
    cache_responses: bool = True
    ignore_cookies: tuple[str, ...] = ()
    credential_headers: tuple[str, ...] = ()
    heuristic_ttl: float | None = 60.0
    max_ttl: float = 24 * 3600.0
    max_body_bytes: int = 1024 * 1024
    etag: bool = True
    key_prefix: str = "web:"
    keep_query: bool = False
    status_header: str | None = "X-Precache"
    max_sessions: int = 100_000
    max_history: int = 20
    max_uncacheable: int = 10_000
    hints: HintConfig = field(default_factory=HintConfig)
    allow: AllowRule = field(default_factory=AllowRule)
    max_marked: int = 10_000

    def __post_init__(self) -> None:
        if not self.session_cookie or any(c in self.session_cookie for c in ";,= \t"):
            raise ValueError(f"WebConfig.session_cookie is not a cookie name: {self.session_cookie!r}")
        if self.max_body_bytes < 0 or self.max_ttl <= 0 or (self.heuristic_ttl is not None and self.heuristic_ttl < 0):
            raise ValueError("WebConfig needs max_body_bytes >= 0, max_ttl > 0, heuristic_ttl >= 0 or None")
        if self.max_sessions < 1 or self.max_history < 1:
            raise ValueError("WebConfig needs max_sessions >= 1 and max_history >= 1")
        for pattern in self.ignore_cookies:
            re.compile(pattern)
