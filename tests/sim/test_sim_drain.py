"""The replay's loop drain is exact on any event loop (asyncio's and uvloop's), via public API only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop
from test_sim_replay import _site_requests

from precache.sim.replay import Mode, ReplayConfig, counting_loop_factory, drain_loop, replay
from precache.sim.workload import prepare


def _policies() -> list[Any]:
    return [asyncio.DefaultEventLoopPolicy(), uvloop.EventLoopPolicy()]


async def _chains(depth: int, width: int) -> list[int]:
    """``width`` chains of ``depth`` hops mixing future callbacks, shields, gathers and task wake-ups."""
    loop = asyncio.get_running_loop()
    reached = [0] * width

    async def hop(i: int, d: int) -> None:
        reached[i] = d
        if d == depth:
            return
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_result, None)
        await asyncio.shield(fut)
        inner = loop.create_task(hop(i, d + 1))
        await asyncio.gather(inner)

    tasks = [loop.create_task(hop(i, 0)) for i in range(width)]
    await drain_loop()
    assert all(task.done() for task in tasks)
    return reached


@pytest.mark.parametrize("policy", _policies(), ids=["asyncio", "uvloop"])
def test_drain_runs_every_ready_callback_on_any_loop(policy: Any) -> None:
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(policy)
    try:
        with asyncio.Runner(loop_factory=counting_loop_factory()) as runner:
            assert runner.run(_chains(depth=60, width=5)) == [60] * 5
            probe = policy.new_event_loop()
            assert isinstance(runner.get_loop(), type(probe))  # the policy's own loop class, counted
            probe.close()
    finally:
        asyncio.set_event_loop_policy(old)


def test_drain_refuses_a_loop_it_cannot_see() -> None:
    with pytest.raises(RuntimeError, match="counting_loop_factory"):
        asyncio.run(drain_loop())


def test_replay_gives_the_same_result_under_uvloop() -> None:
    trace = prepare(_site_requests(300, seed=2), "tiny", train_fraction=0.5, warmup_fraction=0.1)
    config = ReplayConfig(l1_bytes=60_000, l2_bytes=None)
    results = []
    old = asyncio.get_event_loop_policy()
    try:
        for policy in _policies():
            asyncio.set_event_loop_policy(policy)
            result = replay(trace, Mode("oracle", warming="oracle"), config)
            results.append((result.outcomes, result.summary()["hit_rate"], result.cache_stats))
    finally:
        asyncio.set_event_loop_policy(old)
    assert results[0][0] == results[1][0] and results[0][1:] == results[1][1:]
