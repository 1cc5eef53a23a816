"""HTTP caching rules for a shared cache (RFC 9111), as pure functions both middlewares call.

Why a module of its own: the ASGI and the WSGI middleware must decide identically, and these rules are
where a shared cache goes wrong in ways that hurt (one user's page shown to another), so they are small,
separate and tested on their own. What it follows:

* only ``GET``/``HEAD`` are looked up and stored; a request with ``Authorization`` or with any cookie
  besides the session cookie and the ignore list is never answered from the cache (Varnish's default),
  (so does one with a configured credential header, such as ``X-Api-Key``),
  and its response is stored only when it says it may be shared (``public``; for ``Authorization`` also
  ``s-maxage``/``must-revalidate``, RFC 9111 §3.5);
* a response is stored only when its status is heuristically cacheable (or it has explicit freshness
  and a redirect status), it has no ``Set-Cookie``, no ``no-store``/``private``/``no-cache``, no
  ``Vary: *``, a positive freshness lifetime (``s-maxage`` > ``max-age`` > ``Expires - Date`` > the
  configured heuristic lifetime, minus ``Age``), a known ``Content-Length`` within the size limit, and
  is not an event stream;
* keys include the values of the request headers the response's ``Vary`` names;
* ``If-None-Match`` is compared weakly (RFC 9110 §13.1.2) against the stored ``ETag``.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HEURISTIC_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
"""Statuses RFC 9110 §15.1 calls heuristically cacheable."""
EXPLICIT_ONLY_STATUSES = frozenset({302, 307})
"""Redirects that may be stored when the response gives explicit freshness."""
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "age"})
"""Not stored with a response (``Age`` is recomputed when a stored response is served)."""
NOT_MODIFIED_HEADERS = ("cache-control", "content-location", "date", "etag", "expires", "vary")
"""What a 304 built from a stored response carries (RFC 9110 §15.4.5)."""


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """``"public, max-age=60"`` -> ``{"public": None, "max-age": "60"}``; names lower-cased, quotes dropped.
    Commas inside quoted values (``private="set-cookie, x"``) do not split directives."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in _split_commas(value):
        name, eq, arg = part.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        arg = arg.strip()
        if len(arg) >= 2 and arg[0] == arg[-1] == '"':
            arg = arg[1:-1]
        out.setdefault(name, arg if eq else None)
    return out


def _split_commas(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _seconds(value: str | None) -> int | None:
    """A delta-seconds argument; None when absent or malformed (RFC 9111 §1.2.2: treat as invalid)."""
    text = value.strip() if value is not None else ""
    if not (text.isascii() and text.isdigit()):  # "²".isdigit() is True, and int() refuses it
        return None
    return int(text)


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def cookie_names(cookie_header: str | None) -> list[str]:
    """The names in a ``Cookie`` request header (values are never looked at)."""
    if not cookie_header:
        return []
    names = []
    for part in cookie_header.split(";"):
        name = part.split("=", 1)[0].strip()
        if name:
            names.append(name)
    return names


def cookie_value(cookie_header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (the first one), or None."""
    if not cookie_header:
        return None
    for part in cookie_header.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip() == name:
            return value.strip().strip('"')
    return None


@dataclass(frozen=True, slots=True)
class RequestView:
    """What the rules need from a request: method, lower-cased header names -> values (repeated headers
    joined with ", "), and which cookie names do not count as credentials."""

    method: str
    headers: Mapping[str, str]
    anonymous_cookies: frozenset[str] = frozenset()
    credential_headers: frozenset[str] = frozenset()
    """Other request headers (lower-case) that identify a user, such as ``x-api-key``: treated like
    ``Authorization``."""

    def credentials(self) -> str | None:
        """Why this request carries credentials (``"authorization"``, ``"cookie"``) or None."""
        if "authorization" in self.headers or any(name in self.headers for name in self.credential_headers):
            return "authorization"
        if any(name not in self.anonymous_cookies for name in cookie_names(self.headers.get("cookie"))):
            return "cookie"
        return None


def lookup_bypass(request: RequestView) -> str | None:
    """Why this request must not be answered from the cache (None: it may be)."""
    if request.method not in ("GET", "HEAD"):
        return "method"
    credentials = request.credentials()
    if credentials is not None:
        return credentials
    cc = parse_cache_control(request.headers.get("cache-control"))
    if "no-cache" in cc or "no-store" in cc or request.headers.get("pragma", "").lower() == "no-cache":
        return "request-no-cache"
    return None


@dataclass(frozen=True, slots=True)
class StoreDecision:
    """``ttl`` > 0 when the response may be stored (for that many seconds); else ``reason`` says why not."""

    ttl: float
    reason: str

    @property
    def store(self) -> bool:
        return self.ttl > 0


def store_decision(
    request: RequestView,
    status: int,
    headers: Mapping[str, str],
    *,
    now: float,
    heuristic_ttl: float | None,
    max_ttl: float,
    max_body_bytes: int,
    body_length: int | None = None,
) -> StoreDecision:
    """May this response to ``request`` go into the shared cache, and for how long (see the module doc).
    ``body_length``: the body's size when the caller has the whole body in hand (a response without
    ``Content-Length`` whose body came in one piece is not a stream)."""

    def no(reason: str) -> StoreDecision:
        return StoreDecision(0.0, reason)

    if request.method not in ("GET", "HEAD"):
        return no("method")
    if "no-store" in parse_cache_control(request.headers.get("cache-control")):
        return no("request-no-store")
    cc = parse_cache_control(headers.get("cache-control"))
    for directive in ("no-store", "private", "no-cache"):
        if directive in cc:
            return no(directive)
    if "set-cookie" in headers:
        return no("set-cookie")
    vary = vary_names(headers.get("vary"))
    if "*" in vary:
        return no("vary-star")
    credentials = request.credentials()
    if credentials == "cookie" and "public" not in cc:
        return no("request-cookie")
    if credentials == "authorization" and not ({"public", "s-maxage", "must-revalidate"} & cc.keys()):
        return no("request-authorization")
    if headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream":
        return no("event-stream")
    length = body_length if body_length is not None else _seconds(headers.get("content-length"))
    if length is None:
        return no("streamed")
    if length > max_body_bytes:
        return no("too-large")
    lifetime = _explicit_lifetime(cc, headers, now)
    if lifetime is None:
        if status not in HEURISTIC_STATUSES:
            return no("status")
        if heuristic_ttl is None:
            return no("no-freshness")
        lifetime = heuristic_ttl
    elif status not in HEURISTIC_STATUSES and status not in EXPLICIT_ONLY_STATUSES:
        return no("status")
    lifetime -= _seconds(headers.get("age")) or 0
    lifetime = min(lifetime, max_ttl)
    if lifetime <= 0:
        return no("stale")
    return StoreDecision(float(lifetime), "stored")


def _explicit_lifetime(cc: Mapping[str, str | None], headers: Mapping[str, str], now: float) -> float | None:
    for directive in ("s-maxage", "max-age"):
        if directive in cc:
            seconds = _seconds(cc[directive])
            return 0.0 if seconds is None else float(seconds)  # malformed: treat as stale
    if "expires" in headers:
        expires = _http_date(headers["expires"])
        if expires is None:
            return 0.0  # an invalid Expires means "already expired" (RFC 9111 §5.3)
        date = _http_date(headers.get("date"))
        return expires - (date if date is not None else now)
    return None


def vary_names(value: str | None) -> list[str]:
    """The header names a ``Vary`` value lists, lower-cased, sorted, without duplicates."""
    if not value:
        return []
    return sorted({name.strip().lower() for name in value.split(",") if name.strip()})


def variant_suffix(names: Iterable[str], request_headers: Mapping[str, str]) -> str:
    """The part of a cache key that the ``Vary`` headers select: a digest of each named header's value
    (whitespace-normalised; absent and empty differ), so two Accept-Language values are two entries."""
    parts = []
    for name in names:
        value = request_headers.get(name)
        parts.append(f"{name}\x00" + ("\x01" if value is None else " ".join(value.split())))
    digest = hashlib.sha256("\x02".join(parts).encode("utf-8", "surrogateescape")).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def make_etag(body: bytes) -> str:
    """A strong validator from the body's bytes."""
    return '"' + base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:18]).decode() + '"'


def etag_matches(if_none_match: str | None, etag: str | None) -> bool:
    """Weak comparison of ``If-None-Match`` with a stored ``ETag`` (``*`` matches any stored response)."""
    if not if_none_match or not etag:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.strip().removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in _split_commas(if_none_match))
