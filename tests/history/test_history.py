"""The one session-history store: bounds, expiry, Redis failover, and one write per page view."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from examples.site.harness import serving
from redis.asyncio import Redis
from tests.conftest import RedisProcess

from precache.cache import PredictiveCache
from precache.history import (
    FailoverHistories,
    HistoryStore,
    LocalHistory,
    MemoryHistories,
    RedisHistories,
)
from precache.web import HintConfig, PrecacheMiddleware, WebConfig


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_caps_pages_sessions_and_time() -> None:
    clock = Clock()
    store = MemoryHistories(max_sessions=2, max_history=3, ttl=10.0, clock=clock)
    assert isinstance(store, LocalHistory) and isinstance(store, HistoryStore)
    assert store.add("a", ["/1", "/2", "/3", "/4"]) == ["/2", "/3", "/4"]
    store.add("b", ["/x"])
    store.add("c", ["/y"])  # a is the least recently used: evicted
    assert store.read("a") == [] and store.evicted == 1 and len(store) == 2
    clock.now = 10.0  # b's and c's ttl ends: expired entries read as empty and start afresh
    assert store.read("b") == [] and store.add("c", ["/z"]) == ["/z"]
    store.forget("c")
    assert store.read("c") == [] and store.writes == 4
    with pytest.raises(ValueError):
        MemoryHistories(ttl=0)


async def test_async_face_is_the_same_store() -> None:
    store = MemoryHistories(max_history=2)
    assert await store.append("s", ["/a", "/b", "/c"]) == ["/b", "/c"]
    assert await store.get("s") == store.read("s") == ["/b", "/c"]


async def test_failover_uses_memory_while_redis_is_down(private_redis: RedisProcess) -> None:
    client = Redis.from_url(private_redis.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    prefix = f"h-{uuid.uuid4().hex[:6]}:"
    store = FailoverHistories(RedisHistories(client, prefix, 3, 60.0), MemoryHistories(10, 3, 60.0))
    try:
        assert await store.append("s", ["/a", "/b", "/c", "/d"]) == ["/b", "/c", "/d"]
        assert await client.pttl(store.redis.key("s")) > 50_000 and store.where == "redis"  # type: ignore[union-attr]
        private_redis.stop()
        assert await store.append("s", ["/e"]) == ["/e"]  # this replica's memory: only what it saw
        assert store.failures == 1 and store.where.startswith("redis, with memory fallback")
        assert await store.get("s") == ["/e"] and store.failures == 1  # no Redis timeout paid meanwhile
    finally:
        await client.aclose()


class CountingStore:
    """A store shared between processes that counts the writes it receives."""

    def __init__(self) -> None:
        self.inner = MemoryHistories()
        self.appends: list[tuple[str, list[str]]] = []

    async def append(self, session_id: str, pages: list[str]) -> list[str]:
        self.appends.append((session_id, list(pages)))
        return await self.inner.append(session_id, pages)

    async def get(self, session_id: str) -> list[str]:
        return await self.inner.get(session_id)


class FixedPredictor:
    def predict(self, history: Any, k: int) -> list[tuple[str, float]]:
        return [("/b", 0.9)][:k]


async def page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b"<p>page</p>"
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/html"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"max-age=60")]})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("shared", [False, True])
def test_each_page_view_is_written_once_per_process(shared: bool) -> None:
    """Middleware, hints and warmer share one in-process store: N page views are N writes to it (and, with a
    store shared between processes, N appends there); the warmer reads the same histories."""
    counting = CountingStore() if shared else None
    local = MemoryHistories()
    mw = PrecacheMiddleware(page, PredictiveCache(), predictor=FixedPredictor(), histories=counting or local,
                            config=WebConfig(hints=HintConfig(mode="link", threshold=0.5)))
    assert mw.warmer is not None and mw.warmer.history is mw.history
    assert (mw.history is local) is (not shared)
    views = ["/a", "/c", "/d", "/a"]
    with serving(mw) as base, httpx.Client(base_url=base, timeout=20) as visitor:
        for path in views:
            assert visitor.get(path).status_code == 200
        visitor.get("/style.css")  # an asset: not a page view
        sid = visitor.cookies["precache_sid"]
    history = mw.history
    assert isinstance(history, MemoryHistories)
    assert history.writes == len(views) and history.read(sid) == views
    if counting is not None:
        deadline = time.monotonic() + 10
        while len(counting.appends) < len(views):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert counting.appends == [(sid, [v]) for v in views]
        assert asyncio.run(counting.get(sid)) == views
    assert mw.stats["views"] == len(views)
