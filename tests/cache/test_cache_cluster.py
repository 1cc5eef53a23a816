"""The cache against a real local 3-node Redis Cluster (started by the ``redis_cluster`` fixture)."""

from __future__ import annotations

import asyncio

from precache.cache import MemoryTier, PredictiveCache, RedisTier


async def test_get_set_tags_and_invalidation_on_cluster(redis_cluster: str) -> None:
    a = PredictiveCache(MemoryTier(), RedisTier(redis_cluster, cluster=True, prefix="c:", op_timeout=2.0))
    b = PredictiveCache(MemoryTier(), RedisTier(redis_cluster, cluster=True, prefix="c:", op_timeout=2.0))
    await a.start(wait=10.0)
    await b.start(wait=10.0)
    keys = [f"page/{i}" for i in range(30)]  # spread over all three nodes' slots
    for i, key in enumerate(keys):
        await a.set(key, {"i": i}, tags=("site",) if i % 3 else ("site", "third"))
    assert await b.get_many(keys) == {k: {"i": i} for i, k in enumerate(keys)}
    assert await b.get("page/1", loader=lambda: "never") == {"i": 1}
    assert await a.invalidate_tags(["third"]) == 10
    for _ in range(1000):  # the invalidation arrives over pub/sub (generous bound for a loaded machine)
        if not b.contains("page/0"):
            break
        await asyncio.sleep(0.01)
    assert await b.get("page/0") is None
    assert await b.get("page/1") == {"i": 1}
    calls = 0

    async def loader() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return "loaded"

    assert set(await asyncio.gather(*[a.get("fresh", loader=loader) for _ in range(100)])) == {"loaded"}
    assert calls == 1
    assert a.stats.redis_errors == 0 and b.stats.redis_errors == 0
    await a.close()
    await b.close()
