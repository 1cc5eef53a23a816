"""The cache core's shape: light import, config objects and the deprecated keywords, injected clocks,
one hit accounting, error classification, the connection-slot semaphore without asyncio internals."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
import warnings

import pytest

from precache.cache import (
    CacheConfig,
    LeaseConfig,
    ManualClock,
    MemoryL2,
    MemoryTier,
    PredictiveCache,
    RedisTier,
    StalenessConfig,
    SystemClock,
)
from precache.cache.errors import L2Error, L2KeyError
from precache.cache.redis_tier import _Slots

HEAVY = ("numpy", "pydantic", "onnxruntime", "torch", "httpx", "redis")


@pytest.mark.parametrize(("statement", "heavy"), [
    ("import precache", HEAVY),
    ("import precache.cache", HEAVY),
    ("from precache import PredictiveCache, MemoryTier, MemoryL2, CacheConfig", HEAVY),
    ("from precache import *", ("onnxruntime", "torch")),  # every public name, but no inference engine
])
def test_import_is_light(statement: str, heavy: tuple[str, ...]) -> None:
    code = (f"import sys; {statement}; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"{statement} loaded {out.stdout.strip()}"


def test_lazy_names_resolve() -> None:
    import precache

    assert precache.RedisTier is RedisTier
    assert "InferenceEngine" not in precache.__all__ and "PredictiveCache" in precache.__all__
    with pytest.raises(AttributeError):
        _ = precache.NoSuchName  # type: ignore[attr-defined]


def test_deprecated_keywords_map_onto_config_and_warn() -> None:
    with pytest.warns(DeprecationWarning, match="lease_wait="):
        cache = PredictiveCache(default_ttl=10, grace=2, lease_wait=3.0, stale_poll_limit=5)
    cfg = cache.config
    assert (cfg.default_ttl, cfg.grace, cfg.lease.wait, cfg.lease.ttl, cfg.staleness.poll_limit) == (10, 2, 3.0, 5.0, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new form does not warn
        new = PredictiveCache(config=CacheConfig(default_ttl=10, grace=2, lease=LeaseConfig(wait=3.0),
                                                 staleness=StalenessConfig(poll_limit=5)))
    assert new.config == cfg
    with pytest.raises(TypeError, match="no_such"):
        PredictiveCache(no_such=1)
    with pytest.raises(ValueError):
        CacheConfig(default_ttl=0)
    with pytest.raises(ValueError):
        LeaseConfig(poll=0)


def test_injected_clocks_are_respected_never_overwritten() -> None:
    clock = ManualClock(50.0)
    l1 = MemoryTier(clock=clock)
    cache = PredictiveCache(l1, MemoryL2(clock))
    assert cache.clock is clock and l1.clock is clock
    other = ManualClock(0.0)
    with pytest.raises(ValueError, match="l1 runs on another clock"):
        PredictiveCache(MemoryTier(clock=other), None, clock)
    with pytest.raises(ValueError, match="l2 runs on another clock"):
        PredictiveCache(MemoryTier(clock=clock), MemoryL2(other), clock)
    system = PredictiveCache(MemoryTier(), MemoryL2(), SystemClock())  # system clocks all tell one time
    assert isinstance(system.l1.clock, SystemClock)


async def test_every_hit_site_accounts_the_same_way() -> None:
    clock = ManualClock()
    cache = PredictiveCache(MemoryTier(clock=clock), MemoryL2(clock), clock)
    hits: list[str] = []
    on_hit = cache.l1.policy.on_hit

    def spy(entry: object) -> None:
        hits.append(entry.key)  # type: ignore[attr-defined]
        on_hit(entry)  # type: ignore[arg-type]

    cache.l1._on_hit = spy  # the policy's hook, as the tier calls it
    for key in ("a", "b"):
        assert await cache.prefetch(key, lambda key=key: key)
    assert await cache.get("a") == "a"
    assert await cache.get_many(["b"]) == {"b": "b"}
    s = cache.stats
    assert hits == ["a", "b"] and s.l1_hits == 2 and s.preload_hits == 2
    assert cache.l1.peek("a").hits == 1 and not cache.l1.peek("b").preloaded  # type: ignore[union-attr]
    await cache.close()


class _RacingL2(MemoryL2):
    """An L2 read that is slow, while a prefetch of the same key completes meanwhile."""

    async def get(self, key: str) -> bytes | None:
        await asyncio.sleep(0.02)
        return None


async def test_a_load_finishing_during_the_l2_read_is_a_counted_hit() -> None:
    clock = ManualClock()
    cache = PredictiveCache(MemoryTier(clock=clock), _RacingL2(clock), clock)
    reader = asyncio.create_task(cache.get("k"))
    await asyncio.sleep(0.005)  # the get's inline L2 read is in flight
    cache.l1.set("k", "v", 1, preloaded=True)  # a prefetch stored it meanwhile
    assert await reader == "v"
    s = cache.stats
    assert (s.l1_hits, s.preload_hits, s.misses) == (1, 1, 0)
    assert cache.l1.peek("k").hits == 1  # type: ignore[union-attr]
    await cache.close()


async def test_connection_slots_fast_path_queue_and_cancellation() -> None:
    slots = _Slots(1)
    assert slots.try_acquire() and not slots.try_acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    assert not first.done() and not second.done()
    slots.release()  # handed straight to the oldest waiter
    first.cancel()  # ... which is cancelled before it runs: the slot must pass on, not leak
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1.0)
    assert slots.free == 0
    slots.release()
    assert slots.free == 1 and slots.try_acquire()


async def test_a_bad_key_is_that_keys_failure_not_redis_down(redis_url: str) -> None:
    from redis.asyncio import Redis

    pfx = f"c{uuid.uuid4().hex[:8]}:"
    tier = RedisTier(redis_url, prefix=pfx, op_timeout=1.0)
    cache = PredictiveCache(MemoryTier(), tier)
    admin = Redis.from_url(redis_url)
    await admin.hset(f"{pfx}hash", mapping={"a": "1"})  # WRONGTYPE for GET
    with pytest.raises(L2KeyError, match="WRONGTYPE"):
        await tier.get("hash")
    await cache.set("good", "value")
    cache.l1.clear()
    for _ in range(5):
        assert await cache.get("hash") is None
    s = cache.stats
    assert s.l2_key_errors == 5 and s.redis_errors == 0 and s.breaker_state == "closed"
    assert await cache.get("good") == "value" and cache.stats.l2_hits == 1  # still read from Redis
    await admin.aclose()
    await cache.close()


async def test_an_unreachable_server_is_an_l2_error(redis_url: str) -> None:
    from conftest import free_port

    tier = RedisTier(f"redis://127.0.0.1:{free_port()}/0", op_timeout=0.5, connect_timeout=0.2)
    with pytest.raises((L2Error, OSError, TimeoutError)):
        await tier.get("k")
    await tier.close()
