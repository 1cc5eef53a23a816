"""Where the session cookie may go: never on a response a shared cache may store.

Why: a CDN or proxy in front of the application stores a response marked ``max-age=60`` with its
``Set-Cookie`` and hands it, cookie included, to every later visitor, who then share one session id (and so
one history, one set of hints). So the cookie rides only on responses that say ``private`` or ``no-store``;
a page view that must carry it (a new visitor's first page) is made ``private`` (``public`` and
``s-maxage`` dropped); any other response (an asset, an error page) simply does not issue it.
"""

from __future__ import annotations

from precache.web.rules import parse_cache_control

HeaderList = list[tuple[bytes, bytes]]
_SHARED_ONLY = ("public", "s-maxage", "proxy-revalidate")


def cache_control_of(raw: HeaderList) -> str | None:
    values = [v.decode("latin-1") for n, v in raw if n.lower() == b"cache-control"]
    return ", ".join(values) if values else None


def is_private(raw: HeaderList) -> bool:
    """Does this response forbid shared caches to store it (``private`` or ``no-store``)?"""
    cc = parse_cache_control(cache_control_of(raw))
    return "private" in cc or "no-store" in cc


def made_private(raw: HeaderList) -> HeaderList:
    """``raw`` with ``Cache-Control: private, …`` (the directives only a shared cache reads dropped)."""
    cc = cache_control_of(raw)
    kept = [part.strip() for part in (cc or "").split(",") if part.strip()
            and part.split("=", 1)[0].strip().lower() not in _SHARED_ONLY]
    value = ", ".join(["private", *kept])
    out = [(n, v) for n, v in raw if n.lower() != b"cache-control"]
    out.append((b"cache-control", value.encode("latin-1")))
    return out


def with_session_cookie(raw: HeaderList, cookie: str, page_view: bool) -> tuple[HeaderList, bool]:
    """``(headers, issued)``: the response headers with the ``Set-Cookie`` when it may go on this response
    (see the module docstring), and whether it went."""
    if is_private(raw):
        return [*raw, (b"set-cookie", cookie.encode("latin-1"))], True
    if page_view:
        return [*made_private(raw), (b"set-cookie", cookie.encode("latin-1"))], True
    return raw, False
