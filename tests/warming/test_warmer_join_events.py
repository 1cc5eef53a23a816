"""A user request that joins a preload in flight is a use of that preload, also when its access event is
delivered after the preload finished (the cache delivers events after the request)."""

from __future__ import annotations

import asyncio

from precache.cache import PredictiveCache
from precache.warming import MappingResolver, Warmer, WarmerConfig


class _Next:
    def predict(self, history: list[str], k: int) -> list[tuple[str, float]]:
        return [("/b", 0.9)]


async def test_a_join_reported_after_the_preload_counts_as_used() -> None:
    cache = PredictiveCache()

    async def load() -> bytes:
        await asyncio.sleep(0.1)
        return b"x" * 100

    warmer = Warmer(cache, MappingResolver(lambda page: load), cache.clock, predictor=_Next(),
                    config=WarmerConfig(threshold=0.5))
    cache.subscribe(warmer.handle_event)
    warmer.observe("s", "/a")
    assert await warmer.step() == 1
    await asyncio.sleep(0.02)
    assert await cache.get("/b", "s2") == b"x" * 100  # joins the preload while it runs
    await warmer.drain()
    await asyncio.sleep(0.05)  # the access event is delivered after the request
    assert (warmer.stats.used, warmer.stats.joined, warmer.stats.wasted_evicted) == (1, 1, 0)
    assert warmer.unused_bytes == 0
    await cache.close()


async def test_a_miss_after_the_preload_finished_is_not_a_use() -> None:
    cache = PredictiveCache()

    async def load() -> bytes:
        return b"y" * 10

    warmer = Warmer(cache, MappingResolver(lambda page: load), cache.clock, predictor=_Next(),
                    config=WarmerConfig(threshold=0.5))
    cache.subscribe(warmer.handle_event)
    warmer.observe("s", "/a")
    await warmer.step()
    await warmer.drain()
    await cache.delete("/b")  # evicted before anyone asked
    await asyncio.sleep(0.01)
    assert await cache.get("/b", "s2", loader=load) == b"y" * 10
    await asyncio.sleep(0.05)
    assert (warmer.stats.used, warmer.stats.joined, warmer.stats.wasted_evicted) == (0, 0, 1)
    await cache.close()
