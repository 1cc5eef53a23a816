"""The application's marks on what may be prefetched and warmed, and the one policy that applies them.

Three ways for an application to mark URLs, on top of :class:`~precache.warming.allow.AllowRule` (the
setting, ``WebConfig(allow=AllowRule(safe=..., unsafe=...))``):

* a route decorator: ``@no_prefetch`` (per-route opt-out) or ``@prefetch_safe`` (allow a route the default
  rule refuses, a search page with a query say) on a Starlette / FastAPI endpoint; the middleware finds the
  routes itself (``routes_marks``), or takes any ``route_marks(page) -> True | False | None`` callable;
* an attribute in the page: a link ``<a href="/x" data-precache="no">`` (also ``rel="nofollow"`` and Rails'
  ``data-method`` / ``data-turbo-method`` other than ``get``, which mark action links) makes ``/x`` refused
  for everyone once the middleware has served a page carrying it (:class:`PageMarks`);
* pages whose anonymous response HTTP forbade storing (``private``, ``no-store``, ``Set-Cookie``): personal
  or side-effecting, never fetched ahead.

Refusal always wins over a safe mark, except that ``@prefetch_safe`` / ``safe`` patterns lift the default
rule's refusals (query string, action word), never another mark's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

from precache.traces.paths import normalize_path
from precache.warming.allow import AllowRule
from precache.web.sessions import BoundedSet

F = TypeVar("F", bound=Callable[..., Any])
RouteMarks = Callable[[str], bool | None]
"""``page -> True`` (marked safe), ``False`` (marked unsafe) or ``None`` (no mark)."""
MARK_ATTRIBUTE = "__precache_prefetch__"


def no_prefetch(endpoint: F) -> F:
    """Route decorator: never prefetch or warm this route's URLs."""
    setattr(endpoint, MARK_ATTRIBUTE, False)
    return endpoint


def prefetch_safe(endpoint: F) -> F:
    """Route decorator: this route's ``GET`` is free of side effects, prefetch it even when the default rule
    would refuse its URLs (a query string, an action word in the path)."""
    setattr(endpoint, MARK_ATTRIBUTE, True)
    return endpoint


def routes_marks(app: Any) -> RouteMarks | None:
    """The marks of a Starlette / FastAPI app's decorated routes (following ``.app`` through middleware
    and ``Mount`` prefixes), or None when the app has no such routes."""
    marked: list[tuple[re.Pattern[str], bool]] = []
    seen = 0
    while app is not None and not hasattr(app, "routes") and seen < 20:
        app, seen = getattr(app, "app", None), seen + 1
    _collect(getattr(app, "routes", None) or [], "", marked)
    if not marked:
        return None

    def mark(page: str) -> bool | None:
        path = page.partition("?")[0]
        found = [safe for pattern, safe in marked if pattern.match(path)]
        if not found:
            return None
        return all(found)  # an unsafe mark wins

    return mark


def _collect(routes: list[Any], prefix: str, out: list[tuple[re.Pattern[str], bool]]) -> None:
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is None:
            continue
        inner = getattr(route, "routes", None)
        if inner is not None and hasattr(route, "path"):  # a Mount: its routes below its path
            _collect(list(inner), prefix + str(route.path), out)
            continue
        endpoint = getattr(route, "endpoint", None)
        mark = getattr(endpoint, MARK_ATTRIBUTE, None)
        if isinstance(mark, bool):
            body = regex.pattern.removeprefix("^")
            out.append((re.compile("^" + re.escape(prefix) + body), mark))


_ACTION_METHODS = ("data-method", "data-turbo-method")


class _LinkScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refused: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("a", "area", "link"):
            return
        values = {name.lower(): (value or "") for name, value in attrs}
        href = values.get("href")
        if not href:
            return
        refused = values.get("data-precache", "").strip().lower() in ("no", "off", "false", "unsafe")
        refused |= "nofollow" in values.get("rel", "").lower().split()
        refused |= any(values.get(a, "get").strip().lower() != "get" for a in _ACTION_METHODS if a in values)
        if refused:
            self.refused.append(href)


class PageMarks:
    """Links the application's own pages mark as not to be fetched ahead (see the module docstring),
    remembered for everyone (bounded). Pages are scanned only when they mention a marker at all."""

    TRIGGERS = (b"data-precache", b"nofollow", b"data-method", b"data-turbo-method")

    def __init__(self, limit: int, keep_query: bool) -> None:
        self.refused = BoundedSet(limit)
        self.keep_query = keep_query

    def scan(self, page_url: str, body: bytes, charset: str = "utf-8") -> int:
        """Record the marked links of ``body``, an HTML page served at ``page_url`` (absolute). Returns how
        many were found; links to other origins are ignored (never fetched anyway)."""
        lowered = body.lower()
        if not any(t in lowered for t in self.TRIGGERS):
            return 0
        scanner = _LinkScanner()
        try:
            scanner.feed(body.decode(charset, errors="replace"))
            scanner.close()
        except (LookupError, AssertionError):  # an unknown charset; HTMLParser asserts on some garbage
            return 0
        origin = urlsplit(page_url)
        found = 0
        for href in scanner.refused:
            try:
                url = urlsplit(urljoin(page_url, href))
            except ValueError:
                continue
            if (url.scheme, url.netloc) != (origin.scheme, origin.netloc):
                continue
            target = url.path + ("?" + url.query if url.query else "")
            self.refused.add(normalize_path(target or "/", self.keep_query))
            found += 1
        return found

    def __contains__(self, page: object) -> bool:
        return page in self.refused


class PrefetchPolicy:
    """Whether a predicted page may be fetched ahead (hints and warming ask the same object)."""

    def __init__(self, rule: AllowRule, uncacheable: BoundedSet, pages: PageMarks,
                 routes: RouteMarks | None = None) -> None:
        self.rule = rule
        self.uncacheable = uncacheable
        self.pages = pages
        self.routes = routes

    def refusal(self, page: str) -> str | None:
        """Why ``page`` must not be prefetched or warmed, or None."""
        if page in self.uncacheable:
            return "uncacheable"
        if page in self.pages:
            return "marked-in-page"
        route = self.routes(page) if self.routes is not None else None
        if route is False:
            return "marked-route"
        reason = self.rule.refusal(page)
        if reason is not None and route is True and reason in ("query", "unsafe-word"):
            return None
        return reason

    def allows(self, page: str) -> bool:
        return self.refusal(page) is None
