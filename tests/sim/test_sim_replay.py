"""The replay: latency model, eager stepping, and small end-to-end runs through the real cache."""

from __future__ import annotations

import asyncio
import random

import pytest

from conftest import shared_file
from precache.sim.eager import start_eager
from precache.sim.experiment import ExperimentConfig, SizePair, run_experiment
from precache.sim.origin import LatencyModel, SimOrigin, jitter_table
from precache.sim.replay import Mode, ReplayConfig, replay
from precache.sim.report import write_report
from precache.sim.workload import prepare
from precache.traces.model import Request


def test_latency_model_is_calibrated_to_the_target() -> None:
    sizes = [random.Random(i).randint(1000, 20000) for i in range(500)]
    model = LatencyModel.calibrated(sizes, target=0.120)
    assert sum(model.mean(s) for s in sizes) / len(sizes) == pytest.approx(0.120)

    many = sizes * 20
    origin = SimOrigin(model, jitter_table(len(many), model.sigma, seed=1))
    mean = sum(origin.latency(s, i) for i, s in enumerate(many)) / len(many)
    assert mean == pytest.approx(0.120, rel=0.05)  # jitter has mean 1


def test_huge_objects_raise_bandwidth_instead_of_negative_base() -> None:
    model = LatencyModel.calibrated([10_000_000], target=0.12, bandwidth=1e6)
    assert model.base > 0 and model.mean(10_000_000) == pytest.approx(0.12)


async def test_start_eager_returns_at_once_or_continues_in_a_task() -> None:
    async def quick() -> int:
        return 1

    assert start_eager(quick()) == (True, 1)
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def slow() -> int:
        return await fut + 1

    done, task = start_eager(slow())
    assert not done
    fut.set_result(41)
    assert await task == 42  # type: ignore[misc]


def _site_requests(n: int, seed: int = 0) -> list[Request]:
    """Tiny deterministic site: sessions walk /home -> /a -> /b with an asset each."""
    rng = random.Random(seed)
    out: list[Request] = []
    t = 0.0
    for s in range(n):
        t += rng.expovariate(1 / 20)
        client = f"c{s % 40}"
        u = t
        path = ["/home", f"/sec{rng.randint(0, 3)}", f"/item{rng.randint(0, 30)}"]
        for page in path:
            out.append(Request(u, client, page, size=5000))
            out.append(Request(u + 1, client, f"{page}/logo.gif", size=2000))
            u += 30 + rng.random() * 30
    out.sort(key=lambda r: r.time)
    return out


def test_replay_preload_remainder_and_counters() -> None:
    trace = prepare(_site_requests(600), "tiny", train_fraction=0.5, warmup_fraction=0.1)
    config = ReplayConfig(l1_bytes=60_000, l2_bytes=None)
    nocache = replay(trace, Mode("no-cache", cache=False), config).summary()
    heuristic = replay(trace, Mode("heuristic"), config).summary()
    oracle = replay(trace, Mode("oracle", warming="oracle"), config).summary()
    assert nocache["hit_rate"] == 0 and nocache["avg_load_ms"] > 100
    assert heuristic["hit_rate"] > 0.2
    assert oracle["hit_rate"] > heuristic["hit_rate"]
    assert oracle["avg_load_ms"] < heuristic["avg_load_ms"]
    assert oracle["extra_origin_requests"] > 0 and oracle["preload_efficiency"] == 1.0


@pytest.mark.slow
def test_experiment_full_beats_no_warming_and_writes_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reqs = _site_requests(800, seed=3)
    exp = run_experiment(reqs, "tiny", ExperimentConfig(learned_policy=False, sweep=(0.3, 0.9),
                                                            sizes=(SizePair("one", 0.2, 0.5),), default_size="one"),
                         modes=("no-cache", "lru-ttl", "learned", "full"))
    table = {row["mode"]: row for row in exp.table()}
    assert table["full"]["hit_rate"] >= table["learned"]["hit_rate"]
    assert table["full"]["online_hr5"] is not None and table["full"]["online_hr5"] > 0.3
    assert [row["threshold"] for row in exp.sweep] == [0.3, 0.9]
    assert exp.sweep[0]["extra_origin_requests"] >= exp.sweep[1]["extra_origin_requests"]
    html = write_report([exp], tmp_path / "report")
    text = html.read_text()
    assert "data:image/png;base64" in text and "preload efficiency" in text


@pytest.mark.realdata
def test_nasa_replay_with_warming_removes_misses() -> None:
    from precache.traces.reader import read_requests

    reqs = list(read_requests(shared_file("nasa-http/NASA_access_log_small.gz")))
    config = ExperimentConfig(learned_policy=False, sweep=(), sizes=(SizePair("m", 0.05, 0.3),), default_size="m")
    exp = run_experiment(reqs, "nasa-jul-10k", config,
                         modes=("heuristic", "full"))
    table = {row["mode"]: row for row in exp.table()}
    assert table["full"]["hit_rate"] > table["heuristic"]["hit_rate"]
    assert table["full"]["preload_efficiency"] > 0.5


def test_miss_breakdown_classes_and_removed_misses() -> None:
    from precache.sim.analysis import classify_events, miss_breakdown

    trace = prepare(_site_requests(600, seed=5), "tiny", train_fraction=0.5, warmup_fraction=0.1)
    classes = classify_events(trace)
    assert len(classes) == len(trace.events)
    ev = trace.events
    # an asset one second after its page is "later"; the first sighting of a key is compulsory
    assert {c for c, page in zip(classes, ev.pages, strict=True) if not page} <= {
        "first_ever", "asset_later", "asset_no_page", "asset_same_instant"}
    config = ReplayConfig(l1_bytes=60_000, l2_bytes=None)
    without = replay(trace, Mode("heuristic"), config)
    oracle = replay(trace, Mode("oracle", warming="oracle"), config)
    assert sorted(oracle.indices) == list(range(trace.warmup, len(ev)))
    assert oracle.summary()["replayed_per_second"] > 0
    bd = miss_breakdown(trace, without, oracle)
    assert bd["misses"] == sum(r["misses"] for r in bd["rows"]) == without.summary()["cold_starts"] + \
        without.summary()["joined_preloads"] + without.summary()["joined_other_requests"] + \
        sum(1 for o in without.outcomes if o == 5)
    assert bd["removed"] == bd["removed_pages"] + bd["removed_assets"] + bd["removed_first_ever"]
    assert bd["removed"] > 0 and 0 < bd["removed_of_all_misses"] <= 1
