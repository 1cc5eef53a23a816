"""Issue 10's measuring stick: bounded L2, common random numbers, the true oracle, preload accounting."""

from __future__ import annotations

import asyncio
import random

import pytest

from precache.cache.clock import ManualClock
from precache.cache.l2 import MemoryL2
from precache.models import build_predictor
from precache.sim.experiment import ExperimentConfig, SizePair, run_experiment
from precache.sim.metrics import ReplayResult
from precache.sim.origin import LatencyModel, SimOrigin, jitter_table
from precache.sim.policies import lru
from precache.sim.replay import JOINED_USER, Mode, ReplayConfig, replay
from precache.sim.workload import prepare
from precache.traces.model import Request
from precache.traces.paths import normalize_path
from precache.warming.assets import AssetModel


def _site(n_sessions: int, seed: int = 0) -> list[Request]:
    """Sessions walk a small site with per-page assets; sizes vary so byte and object rates differ."""
    rng = random.Random(seed)
    out: list[Request] = []
    for s in range(n_sessions):
        u = s * 7.0 + rng.random()
        client = f"c{s % 50}"
        page = "/home"
        for _ in range(rng.randint(2, 6)):
            out.append(Request(u, client, page, size=3000 + 97 * (hash(page) % 50)))
            out.append(Request(u + 1 + rng.random(), client, f"{page}/img.png", size=20_000))
            page = f"/p{rng.randint(0, 40)}" if rng.random() < 0.5 else f"/p{rng.randint(0, 6)}"
            u += 20 + rng.random() * 40
    out.sort(key=lambda r: r.time)
    return out


def test_memory_l2_byte_budget_evicts_least_recently_used() -> None:
    async def run() -> MemoryL2:
        l2 = MemoryL2(ManualClock(0.0), max_bytes=300)
        for k in ("a", "b", "c"):
            await l2.set(k, bytes(99), None)  # 100 bytes each with the key
        assert await l2.get("a") is not None  # a is now the most recent
        await l2.set("d", bytes(99), None)  # evicts b, the least recently used
        assert await l2.get("b") is None and await l2.get("a") is not None
        assert l2.bytes == 300 and l2.evictions == 1
        await l2.set("huge", bytes(1000), None)  # larger than the budget: refused, nothing evicted
        assert await l2.get("huge") is None and len(l2) == 3
        await l2.delete(["a"])
        assert l2.bytes == 200
        return l2

    asyncio.run(run())


def test_latency_draws_are_a_function_of_the_request_not_of_call_order() -> None:
    model = LatencyModel(sigma=0.5)
    jitter = jitter_table(100, model.sigma, seed=3)
    a, b = SimOrigin(model, jitter), SimOrigin(model, jitter)
    forward = [a.latency(1000, i) for i in range(100)]
    backward = [b.latency(1000, i) for i in reversed(range(100))][::-1]
    assert forward == backward and len(set(forward)) == 100
    assert a.latency(1000, -1) == model.mean(1000)  # a fetch serving no request costs the mean
    assert list(jitter_table(100, model.sigma, seed=3)) == list(jitter)


def _by_index(result: ReplayResult) -> dict[int, tuple[int, float]]:
    return {i: (o, lat) for i, o, lat in zip(result.indices, result.outcomes, result.latencies, strict=True)}


def test_no_request_costs_more_than_its_no_cache_latency_plus_lookups() -> None:
    """Common random numbers: a request's own origin fetch costs exactly its no-cache draw, and a join of a
    preload never waits longer (a preload uses the draw of the request it serves and starts before it):
    warming never delays a user request. A request that joins *another user's* fetch (single-flight)
    waits for that fetch's draw instead, which is what a real cache does; it is excluded and counted."""
    reqs = _site(400, seed=1)
    trace = prepare(reqs, "site", train_fraction=0.5, warmup_fraction=0.1)
    predictor = build_predictor("markov")
    predictor.fit(trace.train, trace.validation)
    assets = AssetModel(normalize=normalize_path).fit(trace.train)
    config = ReplayConfig(l1_bytes=120_000, l2_bytes=400_000,
                          latency=LatencyModel.calibrated(trace.page_sizes, target=0.12), seed=5)
    nocache = _by_index(replay(trace, Mode("no-cache", cache=False), config))
    lookups = config.latency.l1_latency + config.latency.l2_latency
    checked = 0
    for mode in (Mode("lru", policy=lru), Mode("heuristic"), Mode("full", warming="predictor", threshold=0.1),
                 Mode("oracle", warming="oracle")):
        result = replay(trace, mode, config, predictor, assets)
        for i, (outcome, lat) in _by_index(result).items():
            if outcome == JOINED_USER:
                continue
            assert lat <= nocache[i][1] + lookups + 1e-9, (mode.name, i, outcome, lat, nocache[i][1])
            checked += 1
        if mode.name == "full":
            assert result.preloads_fetched == result.origin_preload_requests > 0
            assert 0 < result.preloads_used <= result.preloads_fetched
    assert checked > 3 * len(nocache)


@pytest.mark.slow
def test_oracle_is_an_upper_bound_on_full_at_every_size() -> None:
    reqs = _site(500, seed=2)
    sizes = (SizePair("s", 0.02, 0.1), SizePair("m", 0.1, 0.3))
    exp = run_experiment(reqs, "site", ExperimentConfig(predictor="markov", learned_policy=False, sweep=(),
                                                        sizes=sizes, default_size="m"),
                         modes=("no-cache", "lru-ttl", "heuristic", "learned", "full-offline", "full", "oracle"))
    assert set(exp.sizes) == {"s", "m"}
    for run in exp.sizes.values():
        rows = {r["mode"]: r for r in run.table()}
        full, oracle = rows["full"], rows["oracle"]
        assert oracle["hit_rate"] >= rows["full-offline"]["hit_rate"]
        assert oracle["avg_load_ms"] <= rows["full-offline"]["avg_load_ms"]
        assert oracle["hit_rate"] >= full["hit_rate"]
        assert oracle["byte_hit_rate"] >= full["byte_hit_rate"]
        assert oracle["avg_load_ms"] <= full["avg_load_ms"]
        assert full["hit_or_joined_rate"] >= full["hit_rate"]
        assert oracle["preload_efficiency"] == 1.0
        assert full["net_extra_origin_requests"] == full["origin_requests"] - rows["learned"]["origin_requests"]
    data = exp.as_json()
    assert data["meta"]["l1_bytes"] == exp.sizes["m"].meta["l1_bytes"] and data["meta"]["l2_bytes"]
    assert {"mode", "hit_rate", "byte_hit_rate", "avg_load_ms", "preload_efficiency"} <= set(data["table"][0])
    assert set(data["sizes"]) == {"s", "m"} and data["sizes"]["s"]["meta"]["l1_bytes"] < data["meta"]["l1_bytes"]
    vs = data["meta"]["vs_best_heuristic"]
    assert vs["best_heuristic"] in ("lru-ttl", "heuristic") and vs["load_gap_closed"] is not None
    assert vs["full_offline"]["origin_misses"] == {r["mode"]: r for r in data["table"]}["full-offline"]["cold_starts"]
