"""Issue 26: content changes in the replay (stale serves, the invalidated share), the change-rate TTL,
the fixed-TTL frontier, and the oracle still bounding ``full`` when content changes."""

from __future__ import annotations

import random

import pytest

from precache.cache.change_rate import ChangeRateConfig, ChangeRateTTL
from precache.models.optimizer.labels import content_changes
from precache.sim.experiment import ExperimentConfig, SizePair, run_experiment
from precache.sim.freshness import invalidation_mask
from precache.sim.frontier import frontier_at, interpolated_frontier, ttl_mode, versus_frontier
from precache.sim.replay import Mode, ReplayConfig, replay
from precache.sim.workload import Events, PreparedTrace
from precache.traces.model import Request


def _trace(updates: list[tuple[float, str]]) -> PreparedTrace:
    """One key requested at t = 0, 10, 20, 30, 40 (first request unmeasured warm-up)."""
    times = [0.0, 10.0, 20.0, 30.0, 40.0]
    ev = Events(times, ["/a"] * 5, [1000] * 5, [f"s{i}" for i in range(5)], [True] * 5)
    return PreparedTrace("t", [], [], ev, 1, {"/a": 1000}, updates)


@pytest.mark.parametrize(("share", "ttl", "stale", "origin"), [
    (0.0, None, 3, 0),  # a change at 15 nobody announces: the copy of t=0 serves 20, 30, 40 stale
    (1.0, None, 0, 1),  # announced: deleted at 15, refetched at 20, fresh after
    # a 12 s TTL: expired copies are served while a background refresh runs (the cache's grace,
    # stale-while-revalidate): t=20 gets the old copy (stale) and refreshes it; 30 and 40 are fresh
    (0.0, 12.0, 1, 0),
])
def test_a_hit_on_a_copy_older_than_the_origin_is_a_stale_serve(share: float, ttl: float | None, stale: int,
                                                                 origin: int) -> None:
    r = replay(_trace([(15.0, "/a")]), Mode("m", ttl=ttl), ReplayConfig(invalidate_share=share, l1_bytes=10**6))
    s = r.summary()
    assert s["stale_serves"] == stale and s["stale_rate"] == stale / 4
    assert s["cold_starts"] == origin


def test_invalidation_draws_are_shared_and_follow_the_share() -> None:
    a, b = invalidation_mask(10_000, 0.5, 3), invalidation_mask(10_000, 0.5, 3)
    assert a == b and 0.47 < sum(a) / len(a) < 0.53
    assert not any(invalidation_mask(50, 0.0, 1)) and all(invalidation_mask(50, 1.0, 1))
    with pytest.raises(ValueError):
        invalidation_mask(3, 1.5, 0)


def test_change_rate_ttl_learns_per_key_rates_within_bounds() -> None:
    cfg = ChangeRateConfig(min_ttl=60, max_ttl=86400, stale_share=0.01)
    ttl = ChangeRateTTL(cfg)
    for i in range(100):  # /hot changes at every refresh (every 600 s), /cold never (same validator)
        ttl.fetched("/hot", i * 600.0, i)
        ttl.fetched("/cold", i * 600.0, 0)
    assert ttl.ttl("/hot") < 60 * 1.01  # ~1 change per 600 s: 2 * 0.01 * 600 = 12 s, clamped to min_ttl
    assert ttl.ttl("/cold") > 10 * ttl.ttl("/hot")
    assert cfg.min_ttl <= ttl.ttl("/never-seen") <= cfg.max_ttl
    told = ChangeRateTTL(cfg)  # every change announced: TTLs only cost misses, so the longest allowed
    for i in range(100):
        told.fetched("/hot", i * 600.0 + 1, 0)
        told.invalidated("/hot", i * 600.0 + 300)
    assert told.unannounced_share() < 0.01 and told.ttl("/hot") > 20 * ttl.ttl("/hot")
    with pytest.raises(ValueError):
        ChangeRateConfig(min_ttl=10, max_ttl=5)


def test_content_changes_follow_the_size_change_rule() -> None:
    reqs = [Request(0, "c", "/a", size=1000), Request(1, "c", "/a", size=900),  # aborted? no: >= half
            Request(2, "c", "/a", size=100),  # an aborted transfer: not a version
            Request(3, "c", "/a", size=900), Request(4, "c", "/a", status=304, size=0),
            Request(5, "c", "/b?x=1", size=50), Request(6, "c", "/b?x=1", size=60)]
    assert content_changes(reqs) == [(1, "/a"), (6, "/b?x=1")]
    assert content_changes(reqs, key=lambda p: p.split("?")[0]) == [(1, "/a"), (6, "/b")]


def test_frontier_judges_a_row_against_the_best_fixed_ttl_no_staler() -> None:
    rows = [{"mode": ttl_mode(60.0), "avg_load_ms": 80.0, "stale_rate": 0.01},
            {"mode": ttl_mode(3600.0), "avg_load_ms": 40.0, "stale_rate": 0.03},
            {"mode": ttl_mode(None), "avg_load_ms": 30.0, "stale_rate": 0.05},
            {"mode": "adaptive-ttl", "avg_load_ms": 50.0, "stale_rate": 0.02},
            {"mode": "full", "avg_load_ms": 45.0, "stale_rate": 0.04}]
    assert frontier_at(rows, 0.02)["mode"] == "heuristic-ttl-60"  # type: ignore[index]
    assert frontier_at(rows, 0.001) is None
    assert interpolated_frontier(rows, 0.02) == pytest.approx(60.0)
    vs = versus_frontier(rows)
    assert vs["fastest_fixed_ttl"] == "heuristic-ttl-none"
    assert vs["rows"]["adaptive-ttl"]["below"] and vs["rows"]["adaptive-ttl"]["below_interpolated"]
    assert not vs["rows"]["full"]["below"]  # 45 ms at 4% stale: the 3600 s TTL loads faster, no staler


def _site(n_sessions: int, seed: int) -> tuple[list[Request], list[tuple[float, str]]]:
    rng = random.Random(seed)
    out: list[Request] = []
    for s in range(n_sessions):
        u = s * 7.0 + rng.random()
        page = "/home"
        for _ in range(rng.randint(2, 6)):
            out.append(Request(u, f"c{s % 50}", page, size=3000))
            out.append(Request(u + 1, f"c{s % 50}", f"{page}/img.png", size=20_000))
            page = f"/p{rng.randint(0, 30)}"
            u += 20 + rng.random() * 40
    out.sort(key=lambda r: r.time)
    end = out[-1].time
    updates = sorted((rng.uniform(0, end), f"/p{rng.randint(0, 5)}") for _ in range(80))
    return out, updates


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_oracle_bounds_full_and_every_row_reports_staleness_when_content_changes(share: float) -> None:
    reqs, updates = _site(400, seed=5)
    cfg = ExperimentConfig(predictor="markov", learned_policy=False, sweep=(), invalidate_share=share,
                           sizes=(SizePair("m", 0.1, 0.3),), default_size="m", ttl_grid=(60.0, 3600.0, None))
    exp = run_experiment(reqs, "site", cfg, updates=updates)
    rows = {r["mode"]: r for r in exp.sizes["m"].table()}
    assert {"heuristic-ttl-60", "heuristic-ttl-3600", "heuristic-ttl-none", "adaptive-ttl", "full"} <= set(rows)
    assert all(0.0 <= r["stale_rate"] <= 1.0 for r in rows.values())
    assert rows["heuristic-ttl-none"]["stale_rate"] > 0  # unannounced changes make long-lived copies stale
    assert rows["heuristic-ttl-60"]["stale_rate"] <= rows["heuristic-ttl-none"]["stale_rate"]
    assert rows["oracle"]["avg_load_ms"] <= rows["full"]["avg_load_ms"]
    assert rows["oracle"]["hit_rate"] >= rows["full"]["hit_rate"]
    meta = exp.sizes["m"].as_json()["meta"]
    assert meta["shipped"]["chosen"] in ("s3fifo", "lru") and meta["vs_frontier"]["rows"]["full"]
