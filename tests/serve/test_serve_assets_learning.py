"""Asset lists keep learning (issue 28), against a real redis-server: the first keys a page reported used to
keep their slots for ever, so a page whose assets carry cache-busting versions never learned a new one.
Now a new asset on a full page evicts the one seen least recently, and an asset's probability counts only
the views since it first appeared."""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis.asyncio as aioredis

from conftest import free_port
from precache.serve.assets import AssetCounts


async def test_cache_busting_keys_churn_stable_assets_stay_and_new_ones_are_learned(redis_server: Any) -> None:
    client = aioredis.from_url(redis_server.url)
    assets = AssetCounts(client, f"t{free_port()}:", retention=3600, max_tracked=4)
    try:
        for view in range(300):  # each view: the stable logo, and a script whose name changes every time
            await assets.add(Counter({"/p": 1}), Counter({("/p", "/logo.png"): 1, ("/p", f"/app.{view}.js"): 1}))
        for _ in range(50):  # a new stylesheet, on every view from now on
            await assets.add(Counter({"/p": 1}), Counter({("/p", "/logo.png"): 1, ("/p", "/new.css"): 1}))
        table = await client.hgetall(assets.key("/p"))
        names = {k.decode() for k in table} - {""}
        assert len(names) <= 4  # bounded
        assert "/logo.png" in names and "/new.css" in names
        assert "/app.0.js" not in names  # the stale versions were evicted
        [listed] = await assets.of_pages([("/p", 1.0)], threshold=0.0)
        shown = dict(listed)
        assert shown["/logo.png"] == 1.0
        assert shown["/new.css"] == 1.0  # every view since it appeared fetched it: not diluted by 300 older views
        assert not any(a.startswith("/app.") for a in shown)  # a once-per-view version is below the floor
    finally:
        await client.aclose()
