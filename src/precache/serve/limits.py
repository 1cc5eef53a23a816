"""Bounded input: a request-body size limit (ASGI middleware) and the per-replica token buckets for events.

Why middleware for the size: FastAPI reads the whole body before validation, so a limit checked in a
handler comes too late; this one refuses a too-large ``Content-Length`` before reading and reads a
chunked body only up to the limit, answering ``413 {error, detail}``.
"""

from __future__ import annotations

from collections import OrderedDict

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from precache.cache.clock import SystemClock
from precache.resilience import TokenBucket


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with ``413``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
                except ValueError:
                    too_large = False
                if too_large:
                    await self._refuse(send)
                    return
        if any(name == b"content-length" for name, _ in scope.get("headers", ())):
            await self.app(scope, receive, send)  # declared length within the limit (uvicorn enforces it)
            return
        # no declared length (chunked): read up to the limit first, then hand the body on
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps({"error": "payload_too_large",
                             "detail": f"request body larger than {self.max_bytes} bytes"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """One token bucket per caller (hashed token), at most ``max_callers`` remembered (LRU).

    Per replica: the fallback of :class:`~precache.serve.ratelimit.SharedRateLimiter` while Redis is away
    (then N replicas allow N times the rate in total, which still bounds the load each one takes)."""

    def __init__(self, rate: float, burst: int, max_callers: int = 10_000) -> None:
        self.rate, self.burst, self.max_callers = rate, burst, max_callers
        self._clock = SystemClock()
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.refused = 0

    def allow(self, caller: str, n: int) -> bool:
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = TokenBucket(self._clock, self.rate, float(self.burst))
            self._buckets[caller] = bucket
            while len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
        ok = bucket.try_take(float(n))
        if not ok:
            self.refused += 1
        return ok

    def retry_after(self, n: int) -> int:
        return max(1, int(n / self.rate) + 1)


