"""Sticky, independent assignment and definitions shared through a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from precache.experiments.assignment import assign
from precache.experiments.model import Arm, Experiment, ExperimentError
from precache.experiments.stats import sample_ratio_mismatch
from precache.experiments.store import RedisExperimentStore


def _exp(eid: str, weights: tuple[float, float] = (1, 1), holdout: float = 0.0) -> Experiment:
    return Experiment(eid, "warming", (Arm("off", weights[0]), Arm("on", weights[1], {"warming": True})),
                      holdout=holdout).validate()


def test_assignment_is_sticky_weighted_and_independent_across_experiments() -> None:
    a, b = _exp("exp-a", (1, 3), holdout=0.1), _exp("exp-b")
    sessions = [f"s{i}" for i in range(20_000)]
    first = [assign(a, s) for s in sessions]
    assert first == [assign(a, s) for s in sessions]  # sticky
    held = sum(arm is None for arm in first)
    on = sum(arm is not None and arm.name == "on" for arm in first)
    off = len(sessions) - held - on
    assert abs(held / len(sessions) - 0.1) < 0.01
    srm = sample_ratio_mismatch([off, on], [1, 3])
    assert srm is not None and not srm.mismatch  # the split matches the weights
    # Independent: being "on" in A says nothing about B.
    b_on_given_a_on = [assign(b, s).name == "on" for s, arm in zip(sessions, first, strict=True)
                       if arm is not None and arm.name == "on"]
    assert abs(sum(b_on_given_a_on) / len(b_on_given_a_on) - 0.5) < 0.03


async def test_definitions_live_in_redis_and_cannot_change_mid_run(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        await client.flushdb()
        store, other_replica = RedisExperimentStore(client), RedisExperimentStore(client)
        created = await store.create(_exp("warm-1"))
        assert created.created > 0
        seen = await other_replica.get("warm-1")
        assert seen is not None and seen.arms == created.arms
        assert [assign(seen, f"s{i}") for i in range(50)] == [assign(created, f"s{i}") for i in range(50)]
        with pytest.raises(ExperimentError, match="immutable"):
            await store.create(_exp("warm-1", (1, 2)))
        with pytest.raises(ExperimentError, match="mid-run"):
            await store.change_weights("warm-1", {"off": 1, "on": 2})
        stopped = await other_replica.stop("warm-1")
        assert stopped.status == "stopped" and (await store.get("warm-1")).status == "stopped"  # type: ignore[union-attr]
        assert [e.id for e in await store.list()] == ["warm-1"]
        await client.set("{precache:experiments}:def:broken", b"{not json")
        with pytest.raises(ExperimentError, match="malformed"):
            await store.get("broken")
    finally:
        await client.aclose()


async def test_racing_creates_of_one_kind_leave_exactly_one_running(redis_url: str) -> None:
    import asyncio

    client = aioredis.from_url(redis_url)
    try:
        store = RedisExperimentStore(client, "{race:experiments}")
        for key in await client.keys("{race:experiments}*"):
            await client.delete(key)
        outcomes = await asyncio.gather(*(store.create(_exp(f"race-{i}")) for i in range(12)),
                                        return_exceptions=True)
        won = [o for o in outcomes if isinstance(o, Experiment)]
        assert len(won) == 1 and all(isinstance(o, ExperimentError) for o in outcomes if o not in won)
        running = [e for e in await store.list() if e.status == "running"]
        assert [e.id for e in running] == [won[0].id]
        await store.stop(won[0].id)  # frees the kind
        assert (await store.create(_exp("race-next"))).status == "running"
    finally:
        await client.aclose()


async def test_the_store_works_on_redis_cluster(redis_cluster: str) -> None:
    """Every key of a store shares one hash slot, so its transactions run on a cluster too."""
    from redis.asyncio.cluster import RedisCluster

    client = RedisCluster.from_url(redis_cluster)
    try:
        store = RedisExperimentStore(client, "{cluster:experiments}")
        created = await store.create(_exp("on-cluster"))
        with pytest.raises(ExperimentError, match="running"):
            await store.create(_exp("second"))
        assert (await store.stop(created.id)).status == "stopped"
        assert (await store.create(_exp("second"))).status == "running"
        assert sorted(e.id for e in await store.list()) == ["on-cluster", "second"]
    finally:
        await client.aclose()
