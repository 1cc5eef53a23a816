"""Safe value encoding for L2 (and honest size accounting for L1). Never pickle.

A record on the wire is a 16-byte header followed by the payload::

    b"PC" | version (1) | type tag (1) | soft expiry (float64, 0 = none) | recompute delta (float32)

The type tag makes reads unambiguous (raw bytes vs str vs JSON vs msgpack); the soft expiry and the
recompute time travel with the value so stale-while-revalidate and XFetch work after an L2 hit.
Anything that does not parse is a :class:`PoisonedValueError`, which the cache turns into a miss.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson

from precache.cache.config import SerializerName
from precache.cache.errors import PoisonedValueError, UnserializableValueError

__all__ = ["HEADER_SIZE", "Codec", "Record", "SerializerName", "decode_parts"]

_HEADER = struct.Struct("<2sBBdf")
HEADER_SIZE = _HEADER.size
_unpack_header = _HEADER.unpack_from
_MAGIC = b"PC"
_VERSION = 1
TAG_BYTES = 1
TAG_STR = 2
TAG_JSON = 3
TAG_MSGPACK = 4
_TAGS = frozenset((TAG_BYTES, TAG_STR, TAG_JSON, TAG_MSGPACK))
_JSON_PREFIX = _MAGIC + bytes((_VERSION, TAG_JSON))
_unpack_meta = struct.Struct("<df").unpack_from
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


@dataclass(slots=True)
class Record:
    """A decoded L2 value with its freshness metadata (times on the cache's injected clock)."""

    value: Any
    expires_at: float | None
    delta: float
    size: int


class Codec:
    """Encodes values with a type tag; ``serializer`` picks JSON (orjson) or msgpack for structures.

    ``bytes`` are stored as given and ``str`` as UTF-8 whatever the serializer, so a round trip returns
    the same type. Other values must be JSON/msgpack-able (dict, list, int, float, bool, None ...);
    anything else raises :class:`UnserializableValueError` at the call site.
    """

    __slots__ = ("_tag", "serializer")

    def __init__(self, serializer: SerializerName = "json") -> None:
        if serializer not in ("json", "msgpack"):
            raise ValueError(f"unknown serializer {serializer!r}; expected 'json' or 'msgpack'")
        self.serializer: SerializerName = serializer
        self._tag = TAG_JSON if serializer == "json" else TAG_MSGPACK

    def payload(self, value: Any) -> tuple[int, bytes]:
        """(type tag, payload bytes) for a value; refuses what a safe serializer cannot represent."""
        if isinstance(value, bytes | bytearray | memoryview):
            return TAG_BYTES, bytes(value)
        if isinstance(value, str):
            return TAG_STR, value.encode("utf-8")
        try:
            if self._tag == TAG_JSON:
                return TAG_JSON, orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
            return TAG_MSGPACK, msgpack.packb(value, use_bin_type=True)
        except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError) as exc:
            raise UnserializableValueError(
                f"cannot cache a value of type {type(value).__name__} with the {self.serializer} "
                f"serializer ({exc}); store bytes, str or JSON/msgpack-able data (precache never pickles)"
            ) from None

    def encode(self, value: Any, expires_at: float | None = None, delta: float = 0.0) -> bytes:
        """Header + payload, ready for Redis."""
        tag, body = self.payload(value)
        return _HEADER.pack(_MAGIC, _VERSION, tag, expires_at or 0.0, delta) + body

    @staticmethod
    def decode(raw: bytes) -> Record:
        """Parse a record; raises :class:`PoisonedValueError` on anything unexpected (never executes)."""
        value, expires_at, delta = decode_parts(raw)
        return Record(value, expires_at, delta, len(raw))


def decode_parts(raw: bytes) -> tuple[Any, float | None, float]:
    """``(value, expires_at or None, delta)`` of a record, without building a :class:`Record` (the
    batch path). Raises :class:`PoisonedValueError` on anything unexpected; never executes input."""
    value: Any
    if raw.startswith(_JSON_PREFIX):  # the common record: one prefix compare, no header tuple
        try:
            value = _loads(raw[HEADER_SIZE:])  # a bytes slice parses faster than a memoryview (measured)
        except _JSONDecodeError:
            raise PoisonedValueError("record payload is not valid JSON") from None
        soft, delta = _unpack_meta(raw, 4)
        return value, (soft if soft > 0.0 else None), delta
    try:
        magic, version, tag, expires_at, delta = _unpack_header(raw)
    except struct.error:
        raise PoisonedValueError(f"record of {len(raw)} bytes is shorter than the header") from None
    if magic != _MAGIC or version != _VERSION:
        raise PoisonedValueError(f"not a precache record (header {bytes(raw[:4])!r})")
    try:
        if tag == TAG_JSON:  # the common case first; orjson reads the memoryview without a copy
            value = orjson.loads(memoryview(raw)[HEADER_SIZE:])
        elif tag == TAG_BYTES:
            value = bytes(raw[HEADER_SIZE:])
        elif tag == TAG_STR:
            value = bytes(raw[HEADER_SIZE:]).decode("utf-8")
        elif tag == TAG_MSGPACK:
            value = msgpack.unpackb(memoryview(raw)[HEADER_SIZE:], raw=False, strict_map_key=False)
        else:
            raise PoisonedValueError(f"not a precache record (type tag {tag})")
    except PoisonedValueError:
        raise
    except Exception as exc:  # any parse failure of foreign bytes is a poisoned record
        raise PoisonedValueError(f"record payload does not decode ({type(exc).__name__}: {exc})") from None
    return value, (expires_at if expires_at > 0.0 else None), delta
