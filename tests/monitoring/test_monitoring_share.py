"""Two workers publish snapshots to a real Redis; a scrape from either sums both."""

from __future__ import annotations

import redis.asyncio as aioredis

from precache.monitoring.monitor import Monitor
from precache.monitoring.share import RedisSnapshotShare
from precache.monitoring.snapshot import series_key
from precache.monitoring.summary import summarize


async def test_a_scrape_sums_the_live_workers(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.flushdb()
        a, b = Monitor(), Monitor()
        for monitor, n in ((a, 3), (b, 5)):
            for _ in range(n):
                monitor.record_prediction(0.001, session_id="s", pages=["/x"], model_version="v1")
                monitor.record_page_view("s", "/x")
        share_a = RedisSnapshotShare(client, a, worker_id="a", interval=5)
        share_b = RedisSnapshotShare(client, b, worker_id="b", interval=5)
        await share_a.publish()
        merged, workers = await share_b.collect()
        assert workers == 2
        assert merged.values[series_key("precache_predictions_total", {"type": "page"})] == 8
        assert summarize(merged, 60_000)["accuracy"] == 1.0
        await client.set("{precache:metrics}:worker:a", b"\x80not json")
        merged, workers = await share_b.collect()
        assert workers == 1 and share_b.errors == 1  # a malformed entry is skipped, never trusted
    finally:
        await client.aclose()
