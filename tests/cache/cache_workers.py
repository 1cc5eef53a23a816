"""Worker for the cross-process stampede test (imported by spawned processes; not a test module)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def wait_for_files(folder: Path, count: int, within: float) -> None:
    """Block until ``folder`` holds ``count`` files or ``within`` seconds passed (a cross-process barrier)."""
    deadline = time.monotonic() + within
    while len(list(folder.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def stampede_worker(url: str, prefix: str, key: str, run_dir: str, workers: int, n: int) -> list[str]:
    """Run ``n`` concurrent gets of one missing key; each loader call drops a file in ``run_dir/loads``.

    The load is held until every one of the ``workers`` processes has its gets in flight (a file each in
    ``run_dir/ready``), so the processes overlap whatever their start-up times: without a working
    cross-process lease each of them would call its own loader."""
    from precache.cache import CacheConfig, LeaseConfig, MemoryTier, PredictiveCache, RedisTier

    ready, loads = Path(run_dir, "ready"), Path(run_dir, "loads")

    async def main() -> list[str]:
        # Generous timeouts: on a loaded machine a Redis call that times out would make this process load
        # the key itself, which is the degraded path, not the one under test.
        lease = LeaseConfig(ttl=60.0, wait=60.0, poll=0.005)
        cache = PredictiveCache(MemoryTier(), RedisTier(url, prefix=prefix, op_timeout=5.0, connect_timeout=5.0),
                                config=CacheConfig(lease=lease))
        await cache.start()

        async def loader() -> str:
            await asyncio.to_thread(Path(loads, f"{os.getpid()}-{time.monotonic_ns()}").touch)
            await asyncio.to_thread(wait_for_files, ready, workers, 30.0)
            return "origin-value"

        async with asyncio.timeout(60):  # a worker never outlives the test's own bound
            gets = [asyncio.create_task(cache.get(key, loader=loader)) for _ in range(n)]
            await asyncio.sleep(0.2)  # every get has looked at L1 and L2 and is loading or waiting
            await asyncio.to_thread(Path(ready, str(os.getpid())).touch)
            values = await asyncio.gather(*gets)
        await cache.close()
        return list(values)

    return asyncio.run(main())
