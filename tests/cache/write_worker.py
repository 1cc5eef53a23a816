"""One cache instance in a process of its own, driven over stdin/stdout by the interleaving property test
in ``test_cache_writes.py`` (not a test module). One JSON command per line, one JSON answer per line:
``reset`` (a fresh instance on a new key prefix), ``set``, ``delete``, ``get``, ``quit``."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from precache.cache import CacheConfig, CacheUnavailableError, CircuitBreaker, MemoryTier, PredictiveCache, RedisTier


def make(url: str, prefix: str) -> PredictiveCache:
    """The same instance as ``test_cache_writes.make`` (strict writes, 50 ms ops, a quick breaker)."""
    tier = RedisTier(url, prefix=prefix, op_timeout=0.05, connect_timeout=0.2)
    return PredictiveCache(MemoryTier(), tier, config=CacheConfig(write_mode="strict"),
                           breaker=CircuitBreaker(failure_threshold=3, reset_timeout=0.1))


async def serve(url: str) -> None:
    cache: PredictiveCache | None = None

    def answer(reply: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    try:
        while True:
            # read in a thread, so the instance's invalidation listener runs meanwhile
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                answer({"ok": True})
                return
            if op == "reset":
                if cache is not None:
                    await cache.close()
                cache = make(url, cmd["prefix"])
                await cache.start(wait=5.0)
                answer({"ok": True})
                continue
            assert cache is not None, "reset first"
            if op == "get":
                answer({"value": await cache.get(cmd["key"])})
                continue
            try:
                if op == "set":
                    await cache.set(cmd["key"], cmd["value"])
                else:
                    await cache.delete(cmd["key"])
            except CacheUnavailableError:
                answer({"unavailable": True})
            else:
                answer({"ok": True})
    finally:
        if cache is not None:
            await cache.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
