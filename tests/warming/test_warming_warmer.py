"""The warmer against the real PredictiveCache on a ManualClock: threshold, budgets, back-off, joins."""

from __future__ import annotations

import asyncio

from precache.cache.clock import ManualClock
from precache.cache.layered import PredictiveCache
from precache.cache.memory import MemoryTier
from precache.resilience import Backoff, TokenBucket
from precache.traces.model import Request, Session
from precache.warming import AssetModel, MappingResolver, Warmer, WarmerConfig


class FixedPredictor:
    name = "fixed"

    def __init__(self, table: dict[str, list[tuple[str, float]]]) -> None:
        self.table = table
        self.batches: list[int] = []

    def predict(self, history, k):  # type: ignore[no-untyped-def]
        return self.table.get(history[-1], [])[:k]

    def predict_batch(self, histories, k):  # type: ignore[no-untyped-def]
        self.batches.append(len(histories))
        return [self.predict(h, k) for h in histories]


def make(table, config=None, fail=(), assets=None):  # type: ignore[no-untyped-def]
    clock = ManualClock(1000.0)
    cache = PredictiveCache(l1=MemoryTier(max_bytes=10_000_000, clock=clock), clock=clock)
    loads: list[str] = []

    def make_loader(page: str):  # type: ignore[no-untyped-def]
        async def load() -> bytes:
            loads.append(page)
            if page in fail:
                raise RuntimeError("origin down")
            return b"x" * 100

        return load

    warmer = Warmer(cache, MappingResolver(make_loader), clock, FixedPredictor(table), config or WarmerConfig(),
                    assets=assets)
    return clock, cache, warmer, loads


async def test_preloads_only_predictions_above_threshold_and_counts_use() -> None:
    _clock, cache, warmer, loads = make({"/a": [("/b", 0.9), ("/c", 0.5)]})
    warmer.observe("s1", "/a")
    assert await warmer.step() == 1
    await warmer.drain()
    assert loads == ["/b"]
    assert cache.contains("/b") and not cache.contains("/c")
    await cache.get("/b")
    warmer.record_hit("/b")
    assert warmer.stats.used == 1 and warmer.stats.predictive_hits == 1
    assert warmer.stats.efficiency == 1.0
    assert cache.stats.preload_hits == 1


async def test_one_batch_per_step_and_already_cached_is_skipped() -> None:
    _clock, cache, warmer, loads = make({"/a": [("/b", 0.9)], "/x": [("/b", 0.95)]})
    await cache.set("/b", b"cached")
    warmer.observe("s1", "/a")
    warmer.observe("s2", "/x")
    assert await warmer.step() == 0
    assert warmer.predictor.batches == [2]  # type: ignore[union-attr]
    assert loads == [] and warmer.stats.skipped["cached"] == 1


async def test_item_budget_per_session_and_global() -> None:
    table = {"/a": [(f"/p{i}", 0.9) for i in range(5)]}
    _clock, _cache, warmer, loads = make(table, WarmerConfig(max_items=3, max_items_per_session=2, top_k=5))
    warmer.observe("s1", "/a")
    await warmer.step()
    await warmer.drain()
    assert len(loads) == 2 and warmer.stats.skipped["max_items_per_session"] == 3
    warmer.observe("s2", "/a")
    await warmer.step()
    await warmer.drain()
    assert len(loads) == 3  # global cap of 3 unused preloads
    assert warmer.stats.skipped["max_items"] >= 1


async def test_byte_budget_blocks_preloads() -> None:
    table = {"/a": [(f"/p{i}", 0.9) for i in range(4)]}
    _clock, _cache, warmer, _loads = make(table, WarmerConfig(budget_bytes=250, top_k=4))
    warmer._avg_size = 100.0
    warmer.observe("s1", "/a")
    await warmer.step()
    await warmer.drain()
    # started preloads are not yet "unused bytes" until they complete, so all 4 start in one step...
    warmer.observe("s2", "/a")
    table["/a"] = [(f"/q{i}", 0.9) for i in range(4)]
    await warmer.step()
    assert warmer.stats.skipped["budget_bytes"] >= 1
    assert warmer.unused_bytes <= 400


async def test_backoff_after_origin_errors_stops_preloading() -> None:
    clock, _cache, warmer, _loads = make({"/a": [("/bad", 0.9)], "/b": [("/good", 0.9)]}, fail={"/bad"})
    warmer.observe("s1", "/a")
    await warmer.step()
    await warmer.drain()
    assert warmer.stats.failed == 1 and warmer.backoff.paused
    warmer.observe("s1", "/b")
    assert await warmer.step() == 0
    assert warmer.stats.skipped["backoff"] == 1
    clock.advance(5.0)
    warmer.observe("s1", "/b")
    assert await warmer.step() == 1


async def test_user_request_joins_inflight_preload() -> None:
    clock = ManualClock(0.0)
    cache = PredictiveCache(l1=MemoryTier(clock=clock), clock=clock)
    gate: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    calls = 0

    def make_loader(page: str):  # type: ignore[no-untyped-def]
        async def load() -> bytes:
            nonlocal calls
            calls += 1
            return await gate

        return load

    warmer = Warmer(cache, MappingResolver(make_loader), clock, FixedPredictor({"/a": [("/b", 0.8)]}))
    warmer.observe("s", "/a")
    await warmer.step()
    await asyncio.sleep(0)
    assert warmer.is_inflight("/b")
    warmer.record_miss("/b")

    async def user_loader() -> bytes:
        raise AssertionError("the user must join the preload, not load again")

    user = asyncio.create_task(cache.get("/b", loader=user_loader))
    await asyncio.sleep(0)
    gate.set_result(b"v")
    assert await user == b"v"
    await warmer.drain()
    assert calls == 1 and warmer.stats.joined == 1 and warmer.stats.used == 1


async def test_assets_follow_their_page_in_benefit_order() -> None:
    sessions = [
        Session(str(i), "c", float(i * 100), ["/p"], [float(i * 100)],
                [Request(i * 100 + 1.0, "c", "/logo.gif"),
                 *([Request(i * 100 + 2.0, "c", "/rare.gif")] if i < 3 else [])])
        for i in range(10)
    ]
    assets = AssetModel().fit(sessions)
    assert assets.assets_of("/p") == [("/logo.gif", 1.0), ("/rare.gif", 0.3)]
    _clock, _cache, warmer, loads = make({"/a": [("/p", 0.9)]}, WarmerConfig(threshold=0.7), assets=assets)
    warmer.observe("s", "/a")
    await warmer.step()
    await warmer.drain()
    assert loads == ["/p", "/logo.gif"]  # 0.9 and 0.9*1.0; the rare asset (0.27) stays out


def test_token_bucket_and_backoff_use_the_injected_clock() -> None:
    clock = ManualClock(0.0)
    bucket = TokenBucket(clock, rate=2.0, burst=2.0)
    assert bucket.try_take() and bucket.try_take() and not bucket.try_take()
    clock.advance(0.5)
    assert bucket.try_take() and not bucket.try_take()
    backoff = Backoff(clock, initial=1.0, maximum=4.0)
    for _ in range(5):
        backoff.failure()
    assert backoff.delay == 4.0 and backoff.paused
    clock.advance(4.0)
    assert not backoff.paused


def test_config_from_settings_takes_the_default_threshold() -> None:
    from precache.config import load_settings

    cfg = WarmerConfig.from_settings(load_settings())
    assert cfg.threshold == 0.7 and cfg.max_items == 50 and cfg.budget_bytes == 100 * 1024 * 1024


def test_asset_probability_ignores_views_where_the_session_already_had_it() -> None:
    # every session views /p twice; the logo is fetched once (the browser caches it) -> P = 1 at risk, not 0.5
    sessions = [
        Session(str(i), "c", float(i * 100), ["/p", "/p"], [float(i * 100), float(i * 100 + 50)],
                [Request(i * 100 + 1.0, "c", "/logo.gif")])
        for i in range(10)
    ]
    assert AssetModel().fit(sessions).assets_of("/p") == [("/logo.gif", 1.0)]


async def test_custom_spawn_runs_preloads_eagerly() -> None:
    clock = ManualClock(0.0)
    cache = PredictiveCache(l1=MemoryTier(max_bytes=1_000_000, clock=clock), clock=clock)
    spawned: list[object] = []

    def make_loader(page: str):  # type: ignore[no-untyped-def]
        async def load() -> bytes:
            return b"v"

        return load

    def spawn(coro):  # type: ignore[no-untyped-def]
        spawned.append(coro)
        return asyncio.get_running_loop().create_task(coro)

    warmer = Warmer(cache, MappingResolver(make_loader), clock, FixedPredictor({"/a": [("/b", 0.9)]}),
                    WarmerConfig(threshold=0.5), spawn=spawn)
    warmer.observe("s", "/a")
    assert await warmer.step() == 1
    await warmer.drain()
    assert len(spawned) == 1 and cache.contains("/b") and warmer.stats.completed == 1
