"""The middleware's side of the cache: keys, lookup through ``Vary``, storing, and RFC 9111 §4.4 invalidation.

Why a module of its own: both the request path and in-process warming store responses, and an unsafe
method must drop what either stored. Varying responses are stored as a :class:`VaryMarker` under the URL's
key plus one entry per variant; variant keys carry the marker's *generation*, so deleting the marker
(invalidation) makes every old variant unreachable at once, without knowing which request-header values
were ever stored.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from urllib.parse import quote, urljoin, urlsplit

from precache.cache.errors import CacheError
from precache.cache.layered import PredictiveCache
from precache.web import stored as codec
from precache.web.config import WebConfig
from precache.web.rules import HOP_BY_HOP, make_etag, variant_suffix, vary_names
from precache.web.stored import StoredResponse, VaryMarker

HeaderList = list[tuple[bytes, bytes]]
KEY_SAFE = "/-._~!$&'()*+,;=:@%"


class ResponseCache:
    """Stored responses in a :class:`~precache.cache.PredictiveCache`, under ``key_prefix + URL`` keys."""

    def __init__(self, cache: PredictiveCache, config: WebConfig, stats: Counter[str]) -> None:
        self.cache = cache
        self.config = config
        self.stats = stats

    def key_for(self, scheme: str, host: str, path: str, query: str) -> str:
        target = quote(path, safe=KEY_SAFE) + ("?" + query if query else "")
        return f"{self.config.key_prefix}{scheme}://{host.lower()}{target}"

    async def lookup(self, key: str, headers: dict[str, str], session_id: str | None = None,
                     context: object = None) -> tuple[StoredResponse | None, str | None]:
        """The fresh stored response for this request (its variant), and the generation of the ``Vary``
        marker met on the way (None: no marker), which a store of another variant reuses."""
        now = time.time()
        generation = None
        try:
            value = codec.decode(await self.cache.get(key, session_id, context))
            if isinstance(value, VaryMarker):
                if now >= value.expires_at:
                    return None, None
                generation = value.generation
                value = codec.decode(await self.cache.get(self.variant_key(key, value, headers)))
        except CacheError:
            self.stats["lookup_errors"] += 1
            return None, None
        if isinstance(value, StoredResponse) and value.fresh(now):
            return value, generation
        return None, generation

    @staticmethod
    def variant_key(key: str, marker: VaryMarker, headers: dict[str, str]) -> str:
        return f"{key}|{marker.generation}|{variant_suffix(marker.names, headers)}"

    def response(self, status: int, raw: HeaderList, body: bytes, ttl: float) -> StoredResponse:
        """What is stored: hop-by-hop headers dropped, a strong ``ETag`` added when configured."""
        now = time.time()
        headers = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in raw]
        headers = [(n, v) for n, v in headers if n not in HOP_BY_HOP]
        if self.config.etag and not any(n == "etag" for n, _ in headers):
            headers.append(("etag", make_etag(body)))
        return StoredResponse(status, headers, body, now, now + ttl)

    async def value_for_key(self, key: str, request_headers: dict[str, str], response: StoredResponse,
                            ttl: float, generation: str | None = None) -> bytes:
        """Store ``response``'s variant when it varies (under ``generation``, a new one when None) and
        return what belongs under ``key`` itself."""
        names = vary_names(response.header("vary"))
        if not names:
            return codec.encode(response)
        marker = VaryMarker(tuple(names), response.expires_at, generation or secrets.token_hex(6))
        await self.cache.set(self.variant_key(key, marker, request_headers), codec.encode(response), ttl=ttl)
        return codec.encode(marker)

    async def invalidate(self, keys: list[str]) -> None:
        """Drop the stored responses of ``keys`` (every variant: their marker goes)."""
        for key in dict.fromkeys(keys):
            try:
                await self.cache.delete(key)
                self.stats["invalidated"] += 1
            except CacheError:
                self.stats["invalidate_errors"] += 1


def invalidation_targets(scheme: str, host: str, path: str, query: str,
                         response_headers: dict[str, str]) -> list[tuple[str, str]]:
    """RFC 9111 §4.4: the target URI and the same-origin ``Location`` / ``Content-Location`` of a non-error
    response to an unsafe method, as ``(path, query)`` pairs (other origins are never touched)."""
    base = f"{scheme}://{host}{quote(path, safe=KEY_SAFE)}" + ("?" + query if query else "")
    targets = [(path, query)]
    for name in ("location", "content-location"):
        value = response_headers.get(name)
        if not value:
            continue
        try:
            url = urlsplit(urljoin(base, value.split(",")[0].strip()))
        except ValueError:
            continue
        if url.scheme.lower() == scheme.lower() and url.netloc.lower() == host.lower() and url.path:
            targets.append((url.path, url.query))
    return targets


def unsafe_method(method: str) -> bool:
    """Methods RFC 9110 §9.2.1 does not define as safe."""
    return method not in ("GET", "HEAD", "OPTIONS", "TRACE")
