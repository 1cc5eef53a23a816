"""Worker for the cross-process stampede test (imported by spawned processes; not a test module)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def stampede_worker(url: str, prefix: str, key: str, start_at: float, count_dir: str, n: int) -> list[str]:
    """Run ``n`` concurrent gets of one missing key; each loader call drops a file in ``count_dir``."""
    from precache.cache import MemoryTier, PredictiveCache, RedisTier

    async def main() -> list[str]:
        cache = PredictiveCache(MemoryTier(), RedisTier(url, prefix=prefix, op_timeout=0.5), lease_poll=0.005)
        await cache.start()

        async def loader() -> str:
            await asyncio.to_thread(Path(count_dir, f"{time.monotonic_ns()}-{id(cache)}").touch)
            await asyncio.sleep(0.2)
            return "origin-value"

        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        async with asyncio.timeout(30):  # a worker never outlives the test's own bound
            values = await asyncio.gather(*[cache.get(key, loader=loader) for _ in range(n)])
        await cache.close()
        return list(values)

    return asyncio.run(main())
