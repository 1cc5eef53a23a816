"""Policy-driven staleness: a StalenessSource policy flags keys, the cache revalidates or drops them
off the hit path (MemoryL2 + ManualClock; the learned policy end to end is in tests/optimizer)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from precache.cache import (
    LRUPolicy,
    ManualClock,
    MemoryL2,
    MemoryTier,
    PredictiveCache,
    S3FIFOPolicy,
    StaleAction,
    StalenessSource,
)
from precache.cache.config import CacheConfig, StalenessConfig


class FlaggingPolicy(S3FIFOPolicy):
    """S3-FIFO plus a scripted staleness source: ``flag(key, action)`` queues a key for the cache."""

    def __init__(self) -> None:
        super().__init__()
        self.flagged: list[tuple[str, StaleAction]] = []
        self.polls = 0

    def flag(self, key: str, action: StaleAction = "revalidate") -> None:
        self.flagged.append((key, action))

    def stale_keys(self, limit: int) -> list[tuple[str, StaleAction]]:
        self.polls += 1
        out, self.flagged = self.flagged[:limit], self.flagged[limit:]
        return out


def make(clock: ManualClock, policy: object, **staleness: Any) -> PredictiveCache:
    """A cache over ``policy`` with ``StalenessConfig(**staleness)``."""
    l1 = MemoryTier(clock=clock, policy=policy)  # type: ignore[arg-type]
    return PredictiveCache(l1, MemoryL2(clock), clock, config=CacheConfig(staleness=StalenessConfig(**staleness)))


async def settle(cache: PredictiveCache) -> None:
    for _ in range(200):
        if not cache._flights.background and not cache._flights.running:
            return
        await asyncio.sleep(0)
    raise AssertionError("background loads did not finish")


class Origin:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    async def __call__(self) -> dict[str, int]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("origin down")
        return {"v": self.calls}


async def test_flagged_key_is_reloaded_in_the_background_never_on_a_hit() -> None:
    clock = ManualClock(100.0)
    policy = FlaggingPolicy()
    assert isinstance(policy, StalenessSource)
    cache = make(clock, policy, poll_interval=5.0)
    origin = Origin()
    assert await cache.get("k", loader=origin) == {"v": 1}
    polls = policy.polls
    policy.flag("k")
    clock.advance(10.0)
    # hits never poll the policy nor reload, however late it is on the clock
    for _ in range(50):
        assert await cache.get("k", loader=origin) == {"v": 1}
    assert policy.polls == polls and origin.calls == 1
    # a miss (any key) is where the cache polls: the reload runs in the background, not in that call
    assert await cache.get("other") is None
    assert policy.polls == polls + 1
    assert origin.calls == 1 or "k" in cache._flights.running
    await settle(cache)
    assert origin.calls == 2
    hits = cache.stats.l1_hits
    assert await cache.get("k") == {"v": 2}  # the new value, served from L1
    assert cache.stats.l1_hits == hits + 1
    assert await cache.l2.get("k") is not None  # type: ignore[union-attr]
    s = cache.stats
    assert (s.policy_revalidations, s.policy_evictions, s.early_refreshes) == (1, 0, 0)
    # at most one poll per interval on the injected clock
    policy.flag("k")
    assert await cache.get("other2") is None
    assert policy.polls == polls + 1 and policy.flagged
    clock.advance(5.0)
    assert await cache.get("other3") is None
    await settle(cache)
    assert policy.polls == polls + 2 and origin.calls == 3
    await cache.close()


async def test_evict_action_and_unknown_loader_drop_the_l1_copy() -> None:
    clock = ManualClock(0.0)
    policy = FlaggingPolicy()
    cache = make(clock, policy)
    origin = Origin()
    await cache.get("a", loader=origin)
    await cache.set("b", "written")  # no loader known for b
    policy.flag("a", "evict")
    policy.flag("b", "revalidate")
    policy.flag("absent", "evict")  # not resident: ignored
    assert await cache.poll_stale() == 2
    assert not cache.contains("a") and not cache.contains("b")
    s = cache.stats
    assert (s.policy_evictions, s.policy_revalidations) == (2, 0)
    assert origin.calls == 1
    # only the L1 copy went: L2 still serves them
    assert await cache.get("a") == {"v": 1} and await cache.get("b") == "written"
    await cache.close()


async def test_revalidation_with_a_failing_loader_keeps_serving_the_old_value() -> None:
    clock = ManualClock(0.0)
    policy = FlaggingPolicy()
    cache = make(clock, policy)
    origin = Origin()
    await cache.get("k", loader=origin)
    origin.fail = True
    policy.flag("k")
    policy.flag("k")  # a duplicate in one poll is acted on once
    assert await cache.poll_stale() == 1
    await settle(cache)
    s = cache.stats
    assert (s.policy_revalidations, s.load_errors, origin.calls) == (1, 1, 2)
    assert await cache.get("k", loader=origin) == {"v": 1}  # still the old copy, no error raised
    origin.fail = False
    policy.flag("k")
    await cache.poll_stale()
    await settle(cache)
    assert await cache.get("k") == {"v": 3}
    await cache.close()


async def test_a_policy_that_raises_does_not_break_the_cache() -> None:
    class Broken(FlaggingPolicy):
        def stale_keys(self, limit: int) -> list[tuple[str, StaleAction]]:
            raise RuntimeError("bug")

    clock = ManualClock(0.0)
    cache = make(clock, Broken())
    origin = Origin()
    assert await cache.get("k", loader=origin) == {"v": 1}
    assert await cache.poll_stale() == 0
    assert await cache.get("k") == {"v": 1}
    await cache.close()


async def test_background_poll_without_misses() -> None:
    clock = ManualClock(0.0)
    policy = FlaggingPolicy()
    cache = make(clock, policy, poll_interval=0.01, background=True)
    origin = Origin()
    await cache.get("k", loader=origin)
    policy.flag("k")
    clock.advance(1.0)
    for _ in range(300):
        if origin.calls == 2 and not cache._flights.background:
            break
        await asyncio.sleep(0.005)
    assert origin.calls == 2 and cache.stats.policy_revalidations == 1
    assert await cache.get("k") == {"v": 2}
    await cache.close()
    assert cache._stale.task is not None and cache._stale.task.done()


async def test_staleness_can_be_switched_off_and_is_deterministic_on_a_manual_clock() -> None:
    clock = ManualClock(0.0)
    policy = FlaggingPolicy()
    on = make(clock, policy)
    await on.get("x")
    assert on._stale.task is None  # ManualClock: no real-time background task (deterministic replay)
    await on.close()
    off = make(clock, policy, enabled=False)
    origin = Origin()
    await off.get("k", loader=origin)
    policy.flag("k")
    clock.advance(10.0)
    assert await off.get("x") is None and await off.poll_stale() == 0
    assert policy.polls == 1 and off._stale.loaders is None and off._stale.task is None  # polled by `on` only
    await off.close()


@pytest.mark.parametrize("policy", [S3FIFOPolicy(), LRUPolicy()], ids=["s3fifo", "lru"])
async def test_builtin_policies_are_unaffected(policy: object) -> None:
    assert not isinstance(policy, StalenessSource)
    clock = ManualClock(0.0)
    cache = make(clock, policy)
    origin = Origin()
    assert await cache.get("k", loader=origin) == {"v": 1}
    clock.advance(10.0)
    assert await cache.get("x") is None
    assert await cache.poll_stale() == 0
    assert cache._stale.task is None and cache._stale.loaders is None  # no loaders remembered, no task
    s = cache.stats
    assert (s.policy_revalidations, s.policy_evictions, origin.calls) == (0, 0, 1)
    await cache.close()


async def test_known_loaders_are_bounded() -> None:
    clock = ManualClock(0.0)
    policy = FlaggingPolicy()
    cache = make(clock, policy, max_known_loaders=2)
    origin = Origin()
    for key in ("a", "b", "c"):
        await cache.get(key, loader=origin)
    assert cache._stale.loaders is not None and list(cache._stale.loaders) == ["b", "c"]
    policy.flag("a")  # its loader was forgotten: dropped instead
    policy.flag("c")
    assert await cache.poll_stale() == 2
    await settle(cache)
    s = cache.stats
    assert (s.policy_evictions, s.policy_revalidations, origin.calls) == (1, 1, 4)
    assert not cache.contains("a") and cache.contains("c")
    with pytest.raises(ValueError):
        make(clock, policy, poll_interval=0.0)
    await cache.close()
