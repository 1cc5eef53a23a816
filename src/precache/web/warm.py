"""Warming through the application in process: a predicted page is rendered by calling the ASGI app with an
anonymous ``GET`` (no cookies, no credentials, no network hop) shaped like the last anonymous page view.

Why here and not in :mod:`precache.warming`: only the middleware knows the application, its origin and how
its responses are stored. The warmer asks :class:`AppResolver` for a key and a loader; the resolver refuses
whatever the middleware's prefetch policy refuses, so warming and browser prefetch follow one rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Scope

from precache.warming.resolver import NotPreloadable

HeaderList = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Template:
    """How an in-process warming request looks: the last anonymous page view's origin and headers."""

    scheme: str
    host: str
    server: Any
    root_path: str
    http_version: str
    headers: HeaderList
    state: Any = None

    def scope(self, page: str) -> dict[str, Any]:
        path, _, query = page.partition("?")
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": self.http_version,
            "method": "GET", "scheme": self.scheme, "path": path, "raw_path": quote(path).encode(),
            "query_string": query.encode("latin-1"), "root_path": self.root_path,
            "headers": list(self.headers), "client": None, "server": self.server,
        }
        if self.state is not None:
            scope["state"] = dict(self.state)
        return scope


class WarmingHost(Protocol):
    """What the resolver needs of the middleware."""

    @property
    def template(self) -> Template | None: ...

    def prefetch_allowed(self, page: str) -> bool: ...

    def key_for(self, scheme: str, host: str, path: str, query: str) -> str: ...

    async def render_for_cache(self, page: str) -> bytes: ...


async def collect(app: ASGIApp, scope: Scope, limit: int) -> tuple[int, HeaderList, bytes]:
    """Call an ASGI app and gather its whole answer (body beyond ``limit`` bytes is dropped, which makes
    its Content-Length disagree and so it is not stored)."""
    sent = False
    done = asyncio.Event()
    status = 500
    headers: HeaderList = []
    chunks: list[bytes] = []
    size = 0

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers, size
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            size += len(body)
            if size <= limit:
                chunks.append(body)
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    body = b"".join(chunks)
    if size > limit:
        headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
    return status, headers, body


class AppResolver:
    """The warmer's resolver: a predicted page -> (its cache key, a loader calling the app in process);
    None for a page the prefetch policy refuses or before any page view showed the origin."""

    def __init__(self, host: WarmingHost) -> None:
        self._host = host

    def resolve(self, page: str) -> tuple[str, Callable[[], Awaitable[bytes]]] | None:
        host = self._host
        template = host.template
        if template is None or not host.prefetch_allowed(page):
            return None
        path, _, query = page.partition("?")
        key = host.key_for(template.scheme, template.host, path, query)

        async def load() -> bytes:
            return await host.render_for_cache(page)

        return key, load


__all__ = ["AppResolver", "NotPreloadable", "Template", "WarmingHost", "collect"]
