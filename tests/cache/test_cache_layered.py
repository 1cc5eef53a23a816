"""PredictiveCache semantics on MemoryL2 + ManualClock (what the replay uses; no Redis needed)."""

from __future__ import annotations

import asyncio

import pytest

from precache.cache import (
    AccessEvent,
    ManualClock,
    MemoryL2,
    MemoryTier,
    PredictiveCache,
    SyncCache,
    UnserializableValueError,
    cached,
)
from precache.cache.config import CacheConfig, EventConfig


def make(clock: ManualClock, l2: MemoryL2 | None = None, config: CacheConfig | None = None) -> PredictiveCache:
    return PredictiveCache(MemoryTier(clock=clock), l2 if l2 is not None else MemoryL2(clock), clock,
                           config=config)


async def test_get_goes_l1_l2_loader_and_fills_back() -> None:
    clock = ManualClock(1000.0)
    l2 = MemoryL2(clock)
    cache = make(clock, l2)
    events: list[AccessEvent] = []
    cache.subscribe(events.append)
    calls = 0

    async def loader() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"v": calls}

    assert await cache.get("k", session_id="s", context="/p", loader=loader) == {"v": 1}
    assert await cache.get("k", loader=loader) == {"v": 1}
    cache.l1.delete("k")
    assert await cache.get("k", loader=loader) == {"v": 1}
    assert await cache.get("absent") is None
    await asyncio.sleep(0)
    assert [e.tier for e in events] == ["origin", "l1", "l2", "miss"]
    assert events[0].session_id == "s" and events[0].context == "/p" and events[0].time == 1000.0
    s = cache.stats
    assert (s.loads, s.l1_hits, s.l2_hits, s.misses) == (1, 1, 1, 2)
    await cache.close()


async def test_expiry_stale_while_revalidate_uses_the_clock() -> None:
    clock = ManualClock()
    cache = make(clock, config=CacheConfig(default_ttl=10, grace=5))
    version = 0

    async def loader() -> int:
        nonlocal version
        version += 1
        return version

    assert await cache.get("k", loader=loader) == 1
    clock.advance(11)  # expired, within grace: served stale, refreshed in the background
    assert await cache.get("k", loader=loader) == 1
    await asyncio.sleep(0.01)
    assert await cache.get("k", loader=loader) == 2
    clock.advance(100)  # beyond grace everywhere: a plain miss and a load
    assert await cache.get("k", loader=loader) == 3
    assert cache.stats.stale_hits == 1
    await cache.close()


async def test_xfetch_refreshes_hot_key_early() -> None:
    clock = ManualClock()
    cache = make(clock, config=CacheConfig(default_ttl=10, xfetch_beta=1.0))

    async def slow() -> str:
        await asyncio.sleep(0.02)  # delta ~ 0.02 s
        return "v"

    await cache.get("k", loader=slow)
    clock.advance(10 - 1e-4)  # a hair before expiry: refresh is almost certain
    for _ in range(20):
        await cache.get("k", loader=slow)
    assert cache.stats.early_refreshes >= 1
    await cache.close()


async def test_prefetch_marks_preloaded_and_first_hit_counts() -> None:
    clock = ManualClock()
    cache = make(clock)
    events: list[AccessEvent] = []
    cache.subscribe(events.append)

    async def loader() -> str:
        return "page"

    assert await cache.prefetch("p", loader) is True
    assert cache.contains("p")
    assert await cache.prefetch("p", loader) is False  # already cached
    assert await cache.get("p") == "page"
    assert await cache.get("p") == "page"
    await asyncio.sleep(0)
    assert [e.preloaded_hit for e in events] == [True, False]
    assert cache.stats.preloads == 1 and cache.stats.preload_hits == 1
    await cache.close()


async def test_get_joins_a_running_prefetch() -> None:
    cache = make(ManualClock())
    calls = 0

    async def loader() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "v"

    prefetch = asyncio.create_task(cache.prefetch("k", loader))
    await asyncio.sleep(0.01)
    assert await cache.get("k", loader=loader) == "v"
    assert await prefetch is True
    assert calls == 1
    await cache.close()


async def test_two_instances_on_one_memory_l2_invalidate_each_other() -> None:
    clock = ManualClock()
    l2 = MemoryL2(clock)
    a, b = make(clock, l2), make(clock, l2)
    await a.start()
    await b.start()
    await a.set("k", "one")
    assert await b.get("k") == "one"
    await a.set("k", "two")
    assert await b.get("k") == "two"
    await a.delete("k")
    assert await b.get("k") is None
    await a.close()
    await b.close()


async def test_tags_invalidate_l1_and_l2() -> None:
    clock = ManualClock()
    cache = make(clock)
    await cache.set("a", 1, tags=("user:1",))
    await cache.set("b", 2, tags=("user:1", "x"))
    await cache.set("c", 3, tags=("x",))
    assert await cache.invalidate_tags(["user:1"]) == 2
    assert await cache.get_many(["a", "b", "c"]) == {"c": 3}
    await cache.close()


async def test_unserializable_value_refused_and_poison_is_a_miss() -> None:
    clock = ManualClock()
    l2 = MemoryL2(clock)
    cache = make(clock, l2)
    with pytest.raises(UnserializableValueError):
        await cache.set("k", {1, 2, 3})
    l2.put_raw("p", b"\x80\x04garbage")
    assert await cache.get("p", loader=lambda: "fresh") == "fresh"
    assert cache.stats.poisoned == 1
    await cache.close()


async def test_event_queue_is_bounded_and_drops_are_counted() -> None:
    cache = PredictiveCache(config=CacheConfig(events=EventConfig(queue_size=5)))
    cache.subscribe(lambda e: None)
    await cache.set("k", "v")
    for _ in range(20):
        await cache.get("k")  # no await on the hit path: the drain has not run yet
    assert cache.stats.dropped_events == 15
    await cache.close()


async def test_cached_decorator_and_bad_input() -> None:
    cache = PredictiveCache()
    calls = 0

    @cached(cache, ttl=60)
    async def square(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * x

    assert [await square(3), await square(3), await square(4)] == [9, 9, 16]
    assert calls == 2
    with pytest.raises(TypeError, match="async functions"):
        cached(cache)(lambda: 1)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="key="):
        await square(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keys are str"):
        await cache.get(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", 1, ttl=-1)
    await cache.close()


async def test_loader_error_reaches_caller_and_is_counted() -> None:
    cache = PredictiveCache()

    async def broken() -> None:
        raise RuntimeError("origin down")

    results = await asyncio.gather(*[cache.get("k", loader=broken) for _ in range(10)], return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.stats.loads == 1 and cache.stats.load_errors == 1
    await cache.close()


def test_sync_facade_for_wsgi() -> None:
    with SyncCache(lambda: PredictiveCache(l2=MemoryL2())) as cache:
        assert cache.get("k", loader=lambda: "v") == "v"
        cache.set("j", [1, 2])
        assert cache.get_many(["k", "j", "z"]) == {"k": "v", "j": [1, 2]}
        cache.delete("k")
        assert cache.get("k") is None


async def test_get_many_fill_modes_and_a_racing_invalidation() -> None:
    clock = ManualClock()
    l2 = MemoryL2(clock)
    writer = make(clock, l2)
    cache = PredictiveCache(MemoryTier(max_items=8, clock=clock), l2, clock)
    await writer.start()
    await cache.start()
    for i in range(20):
        await writer.set(f"k{i}", i)
    keys = [f"k{i}" for i in range(20)]
    want = {k: i for i, k in enumerate(keys)}
    assert await cache.get_many(keys, fill_l1="skip") == want
    await asyncio.sleep(0)
    assert len(cache.l1) == 0
    assert await cache.get_many(keys[:4], fill_l1="inline") == {k: want[k] for k in keys[:4]}
    assert all(cache.contains(k) for k in keys[:4])  # before any loop iteration
    cache.l1.clear()
    assert await cache.get_many(keys, fill_l1="deferred") == want  # L1 fills right after
    await asyncio.sleep(0)
    assert 0 < len(cache.l1) <= 8 and cache.l1.bytes <= cache.l1.max_bytes
    assert all(cache.l1.get(k) == want[k] for k in list(cache.l1.data))
    cache.l1.clear()
    assert await cache.get_many(["k1"], fill_l1="deferred") == {"k1": 1}
    await writer.set("k1", "changed")  # another instance writes before the deferred fill runs
    await asyncio.sleep(0)
    assert not cache.contains("k1") and cache.stats.fills_skipped == 1
    assert await cache.get("k1") == "changed"
    with pytest.raises(ValueError, match="fill_l1"):
        await cache.get_many(keys, fill_l1="later")  # type: ignore[arg-type]
    await writer.close()
    await cache.close()
