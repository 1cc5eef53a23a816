"""How the warmer turns a predicted *page* into something the cache can load.

The predictor speaks in page ids (normalised paths); the cache speaks in keys and loaders. A resolver is
the one place that knows how a page maps to a cache key and how to fetch it from the origin, so the
warmer stays independent of where content lives (HTTP origin, database, the replay's simulated origin).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import httpx

from precache.warming.allow import AllowRule

Loader = Callable[[], Awaitable[bytes | memoryview]]
"""A zero-argument coroutine function that fetches one value from the origin (the simulator returns
read-only views of a shared zero buffer; the cache encodes a view exactly as the bytes it shows)."""


@runtime_checkable
class Resolver(Protocol):
    """Maps a page id to ``(cache key, loader)``; ``None`` when the page cannot be preloaded."""

    def resolve(self, page: str) -> tuple[str, Loader] | None: ...


class OriginError(RuntimeError):
    """The origin answered with an error status (the warmer backs off on these)."""


class NotPreloadable(Exception):
    """A loader's way to say the page exists but must not be cached (HTTP said ``private``, ``no-store``…):
    the warmer skips it (``stats.skipped["not_preloadable"]``) without backing off, unlike an origin error."""


class HttpOriginResolver:
    """Fetch pages from an HTTP origin with one shared ``httpx.AsyncClient``.

    The cache key is ``key_prefix + page`` so it matches the keys the application uses for the same
    page. Only pages ``rule`` allows are resolved (:class:`~precache.warming.allow.AllowRule`: no query
    string, no action word in a path segment, the application's marks), so the warmer never requests a URL
    whose ``GET`` changes state. Only 2xx bodies are returned; anything else raises :class:`OriginError`,
    which the warmer counts and backs off on, instead of caching an error page as if it were content.
    """

    def __init__(
        self,
        base_url: str,
        *,
        key_prefix: str = "",
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        max_connections: int = 16,
        rule: AllowRule | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.rule = rule if rule is not None else AllowRule()
        self.key_prefix = key_prefix
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            headers={"user-agent": "precache-warmer/0.1", **(headers or {})},
            limits=httpx.Limits(max_connections=max_connections),
        )

    def url_for(self, page: str) -> str:
        return self.base_url + (page if page.startswith("/") else "/" + page)

    def resolve(self, page: str) -> tuple[str, Loader] | None:
        if not page or "://" in page:
            return None
        if not self.rule.allows(page if page.startswith("/") else "/" + page):
            return None
        url = self.url_for(page)

        async def load() -> bytes:
            response = await self._client.get(url)
            if not 200 <= response.status_code < 300:
                raise OriginError(f"origin answered {response.status_code} for {url}")
            return response.content

        return self.key_prefix + page, load

    async def aclose(self) -> None:
        """Close the HTTP client if this resolver created it."""
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> HttpOriginResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class MappingResolver:
    """Resolve pages through a plain function ``page -> loader`` (tests, simple apps, the replay)."""

    def __init__(self, make_loader: Callable[[str], Loader | None], key_prefix: str = "") -> None:
        self._make_loader = make_loader
        self.key_prefix = key_prefix

    def resolve(self, page: str) -> tuple[str, Loader] | None:
        loader = self._make_loader(page)
        if loader is None:
            return None
        return self.key_prefix + page, loader
