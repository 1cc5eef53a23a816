"""The benchmark's latency emulation (``examples/site/latency.py``) really delays: a request through the
delaying proxy takes at least one emulated round trip (two on a new connection), and the bytes arrive
unchanged."""

from __future__ import annotations

import time
from typing import Any

import httpx
from examples.site.harness import serving
from examples.site.latency import delayed


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b"x" * 200_000
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_requests_through_the_proxy_pay_the_emulated_round_trip() -> None:
    with serving(_app) as base, delayed(base, 60.0) as slow, httpx.Client(timeout=20) as client:
        t0 = time.perf_counter()
        direct = client.get(base + "/")
        direct_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = client.get(slow + "/")  # new connection: handshake round trip + request round trip
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = client.get(slow + "/")  # keep-alive: one round trip
        again_s = time.perf_counter() - t0
    assert direct.content == first.content == again.content and len(again.content) == 200_000
    assert first_s >= 0.120 and again_s >= 0.060, (first_s, again_s)
    assert direct_s < 0.060
