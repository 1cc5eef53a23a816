"""A stored HTTP response as bytes in the cache (msgpack, never pickle), and the ``Vary`` marker.

Why bytes: the cache keeps bytes as given in both tiers, the warmer sizes its budget by them, and a
value read back from Redis is parsed by a format that cannot run code. A value that does not parse is a
miss, never an error page.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """Status, headers (names lower-case, hop-by-hop removed), body, and when it was stored / goes stale
    (seconds on the wall clock)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    stored_at: float
    expires_at: float

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def fresh(self, now: float) -> bool:
        return now < self.expires_at


@dataclass(frozen=True, slots=True)
class VaryMarker:
    """Stored under a URL's key when its response varies: the request headers that select the variant, and
    a generation that the variants' keys carry (a new marker after an invalidation orphans old variants)."""

    names: tuple[str, ...]
    expires_at: float
    generation: str = ""


def encode(value: StoredResponse | VaryMarker) -> bytes:
    if isinstance(value, VaryMarker):
        data: dict[str, object] = {"f": _FORMAT, "vary": list(value.names), "e": value.expires_at,
                                   "g": value.generation}
    else:
        data = {"f": _FORMAT, "s": value.status, "h": [list(h) for h in value.headers], "b": value.body,
                "t": value.stored_at, "e": value.expires_at}
    out: bytes = msgpack.packb(data, use_bin_type=True)
    return out


def decode(raw: object) -> StoredResponse | VaryMarker | None:
    """The value ``encode`` wrote, or None for anything else (a foreign or damaged value is a miss)."""
    if not isinstance(raw, bytes | bytearray):
        return None
    try:
        data = msgpack.unpackb(raw, raw=False, strict_map_key=True)
        if not isinstance(data, dict) or data.get("f") != _FORMAT:
            return None
        expires = float(data["e"])
        if "vary" in data:
            return VaryMarker(tuple(str(n) for n in data["vary"]), expires, str(data.get("g", "")))
        headers = [(str(k), str(v)) for k, v in data["h"]]
        body = data["b"]
        if not isinstance(body, bytes):
            return None
        return StoredResponse(int(data["s"]), headers, body, float(data["t"]), expires)
    except (ValueError, TypeError, KeyError, msgpack.UnpackException):
        return None
