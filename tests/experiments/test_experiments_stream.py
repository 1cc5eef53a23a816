"""Per-arm statistics from the real access-event stream (one reader at a time, takeover without loss), and
the summary section the readouts travel in (merged over workers, never breaking the metrics)."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from precache.cache.events import AccessEvent
from precache.cache.stream import event_fields
from precache.experiments.assignment import assign
from precache.experiments.consume import StreamArmRecorder
from precache.experiments.model import Arm, Experiment
from precache.experiments.recorder import ExperimentRecorder
from precache.experiments.store import RedisExperimentStore
from precache.monitoring.monitor import Monitor
from precache.monitoring.snapshot import merge
from precache.monitoring.summary import summarize

PREFIX = "{test-stream:experiments}"
STREAM = "test-stream:events"


async def _add(client: Any, experiment: Experiment, sessions: range, t0: float) -> None:
    for i in sessions:
        sid = f"s{i}"
        on = assign(experiment, sid).name == "on"  # type: ignore[union-attr]
        for j in range(3):
            tier = "l1" if (on or j == 0) else "origin"
            event = AccessEvent(t0 + i, f"k{j}", sid, None, tier, 0.002, 100)  # type: ignore[arg-type]
            await client.xadd(STREAM, event_fields(event))


async def test_one_reader_at_a_time_and_a_takeover_keeps_the_counts(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.delete(STREAM, f"{PREFIX}:consumer", f"{PREFIX}:stats:ab", f"{PREFIX}:ids", f"{PREFIX}:def:ab")
        experiment = await RedisExperimentStore(client, PREFIX).create(
            Experiment("ab", "warming", (Arm("off", 1), Arm("on", 1))))
        first = StreamArmRecorder(client, STREAM, PREFIX, owner="a", session_gap=60, lease_ms=300)
        second = StreamArmRecorder(client, STREAM, PREFIX, owner="b", session_gap=60, lease_ms=300)
        assert await first.step([experiment], now=0) == 0  # takes the lease, creates the group at the end
        assert await second.step([experiment], now=0) == 0 and not second.leading
        await _add(client, experiment, range(0, 100), 1000.0)
        while await first.step([experiment], now=1000) > 0:
            pass
        assert await second.step([experiment], now=1000) == 0  # never reads while the other leads
        await first.flush()
        await asyncio.sleep(0.4)  # the first reader dies: its lease runs out
        await _add(client, experiment, range(100, 200), 2000.0)  # 1000 s later: the first sessions close
        while await second.step([experiment], now=2000) > 0:
            pass
        assert second.leading
        await second.flush()
        arms = await ExperimentRecorder(client, replica_id="reader", prefix=PREFIX).collect("ab")
        assert sum(a.sessions for a in arms.values()) == 200
        assert sum(a.hits.trials for a in arms.values()) == 600  # nothing lost or counted twice
        assert arms["on"].hits.successes == arms["on"].hits.trials  # every "on" access was a hit here
        assert arms["off"].hits.successes * 3 == arms["off"].hits.trials
        assert sum(a.session_hits.m for a in arms.values()) == 200  # closed and still open sessions both
        assert arms["off"].origin_requests.mean == 2.0
    finally:
        await client.aclose()


def test_sections_ride_in_snapshots_merge_freshest_and_never_break_the_summary() -> None:
    a, b = Monitor(), Monitor()
    a.add_section("experiments", lambda: {"at": 1.0, "experiments": ["old"]})
    b.add_section("experiments", lambda: {"at": 2.0, "experiments": ["new"]})
    b.add_section("broken", lambda: 1 / 0)
    merged = merge([a.snapshot(), b.snapshot()])
    assert merged.extras["experiments"]["experiments"] == ["new"] and b.section_errors == 1
    summary = summarize(merged, 60_000)
    assert summary["experiments"]["experiments"] == ["new"] and "broken" not in summary
    assert summary["accuracy"] is None  # the summary's own fields are untouched


def test_the_hub_counts_each_arms_preloads_for_an_embedded_warmer() -> None:
    from precache.experiments.hub import ExperimentHub

    hub = ExperimentHub(None, replica_id="app")
    experiment = Experiment("w", "warming", (Arm("off", 1), Arm("on", 1))).validate()
    hub.use([experiment])
    on = next(f"s{i}" for i in range(100) if assign(experiment, f"s{i}").name == "on")  # type: ignore[union-attr]
    hub.loaded(on, "/a", 100)
    hub.loaded(on, "/b", 100)
    hub.used(on, "/a")
    preloads = hub.recorder.stats("w", "on").preloads
    assert (preloads.successes, preloads.trials) == (1, 2)
    assert hub.recorder.stats("w", "on").sessions == 0  # assignments are counted by whoever records accesses


def test_a_route_can_read_a_sessions_arm_without_io() -> None:
    """What the service's prediction core asks per request (``ServiceState.session_arm``): the hub's arms,
    no I/O (the hub has no Redis here)."""
    from precache.experiments.hub import ExperimentHub

    hub = ExperimentHub(None)
    assert hub.params.for_session("s1") is None  # no experiment: defaults
    experiment = Experiment("w", "warming", (Arm("off", 1), Arm("on", 1))).validate()
    hub.use([experiment])
    arms = {hub.params.for_session(f"s{i}").warming for i in range(50)}  # type: ignore[union-attr]
    assert arms == {True, False}


async def test_an_embedded_replica_records_its_replica_arm_from_its_own_cache(redis_url: str, tmp_path: Any) -> None:
    """A cache-policy experiment: each replica builds its stack with its arm and records its own accesses."""
    from precache.cache.clock import ManualClock
    from precache.cache.layered import PredictiveCache
    from precache.cache.memory import MemoryTier
    from precache.config import load_settings
    from precache.experiments.hub import ExperimentHub
    from precache.experiments.readout import readout
    from precache.stack import build_stack

    settings = load_settings(model_storage_path=str(tmp_path / "models"))
    client = aioredis.from_url(redis_url)
    prefix = "{embedded:experiments}"
    try:
        for key in await client.keys(prefix + "*"):
            await client.delete(key)
        experiment = await RedisExperimentStore(client, prefix).create(
            Experiment("policy", "cache_policy", (Arm("s3fifo", 1), Arm("learned", 1))))
        arms_seen = set()
        for replica in ("replica-1", "replica-2", "replica-3", "replica-4"):
            hub = ExperimentHub(client, prefix=prefix, replica_id=replica)
            await hub.refresh()
            arm = hub.replica_arm()
            assert arm is not None and arm.experiment == "policy"
            arms_seen.add(arm.cache_policy)
            stack = build_stack(settings, l2=False, replica_arm=arm)  # no optimizer here: the learned arm says so
            assert stack.loaded["replica arm"].startswith(f"policy:{arm.arm}")
            clock = ManualClock(0.0)
            cache = PredictiveCache(l1=MemoryTier(clock=clock), clock=clock)
            cache.subscribe(hub.handle_event)
            async with cache:
                for i in range(30):
                    await cache.get(f"k{i % 10}", session_id=f"{replica}-s{i % 3}", loader=lambda: b"v")
                await asyncio.sleep(0.05)  # the event bus delivers off the request path
            await hub.stop()  # the final flush
        arms = await ExperimentRecorder(client, replica_id="reader", prefix=prefix).collect("policy")
        assert sum(a.hits.trials for a in arms.values()) == 120 and sum(a.hits.successes for a in arms.values()) == 80
        out = readout(experiment, arms)
        assert out["scope"] == "replica" and "spillover" in out
        assert arms_seen <= {"s3fifo", "learned"}
    finally:
        await client.aclose()
