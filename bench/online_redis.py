"""The Redis part of bench_online.py: page views/s into Redis per replica, the contexts cap, memory per context.

One :class:`precache.online.layer.OnlineLayer` (one replica) takes a 1M-request synthetic run page view by
page view (guard, local counts, aggregation) and flushes one pipeline of what it aggregated every
``FLUSH_SECONDS``, as its background task does; the rate counts everything from the first view to the last
flush acknowledged. The same views through the layer without Redis give the in-process rate beside it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console

from local_redis import start_redis
from precache.online.guards import ContributionGuard
from precache.online.layer import OnlineLayer
from precache.online.merge import MergeParams
from precache.online.redis_store import RedisCounts
from precache.traces.paths import is_page
from precache.traces.synthetic import SyntheticWorkload

FLUSH_SECONDS = 0.1  # ML_ONLINE_FLUSH_MS's default: what the layer's background task does
MAX_CONTEXTS = 12_800  # 100 per bucket; below the run's distinct contexts, so the cap has to evict
N_PAGES = 200_000


def page_views(n_requests: int) -> list[tuple[str, str, float]]:
    """(client, page, time) of the synthetic run's page views (assets left out, as the sessionizer does)."""
    return [(r.client, r.path, r.time) for r in SyntheticWorkload(n_requests, n_pages=N_PAGES).requests()
            if is_page(r)]


async def feed(url: str, views: list[tuple[str, str, float]]) -> dict[str, Any]:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.flushdb()
    base = await client.info("memory")
    store = RedisCounts(client, 86_400.0, max_contexts=MAX_CONTEXTS)
    layer = OnlineLayer(MergeParams(0.5, 5.0, 86_400.0), store=store, guard=ContributionGuard(),
                        max_contexts=MAX_CONTEXTS, clock=lambda: views[-1][2])
    last: dict[str, str] = {}
    commands = flushes = 0
    started = flushed = time.perf_counter()
    for i, (who, page, t) in enumerate(views):
        layer.observe(last.get(who), page, session=who, client=who, t=t)
        last[who] = page
        if i % 256 == 255 and time.perf_counter() - flushed >= FLUSH_SECONDS:
            commands += await layer.flush()
            flushes += 1
            flushed = time.perf_counter()
    commands += await layer.flush()
    seconds = time.perf_counter() - started
    local = local_rate(views)
    epoch = int(views[-1][2] // (64 * 86_400.0))
    before = await store.contexts(epoch)
    trimmed = await store.trim(epoch)
    after = await store.contexts(epoch)
    redis_bytes = await store.memory_bytes(epoch)
    used = (await client.info("memory"))["used_memory"] - base["used_memory"]
    await client.aclose()
    return {"page_views": len(views), "seconds": round(seconds, 2), "page_views_per_s": round(len(views) / seconds),
            "in_process_page_views_per_s": local, "flushes": flushes + 1,
            "redis_commands": commands, "learned": layer.stats["learned"], "refused": dict(layer.guard.refused)
            if layer.guard else {}, "contexts_before_trim": before, "trimmed": trimmed, "contexts_after_trim": after,
            "max_contexts": MAX_CONTEXTS, "local_contexts": len(layer.local),
            "redis_used_memory_bytes": used, "redis_memory_usage_bytes": redis_bytes,
            "redis_bytes_per_100k_contexts": round(redis_bytes / max(1, after) * 1e5),
            "local_bytes_per_100k_contexts": round(layer.local.approx_bytes() / max(1, len(layer.local)) * 1e5)}


def local_rate(views: list[tuple[str, str, float]]) -> int:
    layer = OnlineLayer(MergeParams(0.5, 5.0, 86_400.0), guard=ContributionGuard(), max_contexts=MAX_CONTEXTS)
    last: dict[str, str] = {}
    started = time.perf_counter()
    for who, page, t in views:
        layer.observe(last.get(who), page, session=who, client=who, t=t)
        last[who] = page
    return round(len(views) / (time.perf_counter() - started))


def redis_run(n_requests: int, console: Console) -> dict[str, Any]:
    views = page_views(n_requests)
    proc, url = start_redis()
    try:
        result = asyncio.run(feed(url, views))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    result.update(synthetic_requests=n_requests, synthetic_pages=N_PAGES, flush_seconds=FLUSH_SECONDS)
    console.print(f"redis: {result['page_views_per_s']:,} page views/s into Redis; contexts "
                  f"{result['contexts_before_trim']:,} -> {result['contexts_after_trim']:,} (cap {MAX_CONTEXTS:,})")
    return result
