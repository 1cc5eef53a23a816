"""Every background loop stops within its deadline, even when Redis hangs or a loop swallows its cancel (issue 28).

The failure this guards: one uvicorn worker stayed in "Waiting for application shutdown." for minutes because
``ExperimentHub.stop()`` awaited its task without a deadline. Here a real redis-server is frozen (SIGSTOP) while
the hub, the snapshot publisher and the alert loop talk to it, and their stops must still return in time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis

from conftest import RedisProcess
from precache.config import load_settings
from precache.experiments.hub import ExperimentHub
from precache.experiments.model import Arm, Experiment
from precache.monitoring.background import cancel_task
from precache.serve.monitoring import ServiceMonitoring


@pytest.fixture
def frozen_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGCONT)
    server.stop()


def _freeze(server: RedisProcess) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)


async def test_cancel_task_recancels_a_loop_that_swallows_one_cancel() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:  # what a broad except around a timed-out client call amounts to
                swallowed += 1
                if swallowed > 2:
                    raise

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await cancel_task(task, 2.0)
    assert swallowed == 3 and time.monotonic() - started < 1.0


async def test_cancel_task_abandons_a_loop_that_never_stops_at_the_deadline() -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.get_running_loop().create_task(deaf())
    await asyncio.sleep(0)
    started = time.monotonic()
    assert not await cancel_task(task, 0.5)
    assert 0.4 < time.monotonic() - started < 1.5
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)


async def test_hub_and_monitoring_stop_in_time_while_redis_is_frozen(frozen_redis: RedisProcess) -> None:
    client = aioredis.from_url(frozen_redis.url, socket_timeout=30, socket_connect_timeout=30)
    hub = ExperimentHub(client, prefix="t:", replica_id="r1", stream="precache:events", refresh_seconds=0.05,
                        poll_seconds=0.05)
    await hub.store.create(Experiment("exp1", "threshold", (Arm("control", 1, {}), Arm("low", 1, {"threshold": 0.1}))))
    settings = load_settings(ml_alert_webhook="http://127.0.0.1:9/hook")
    monitoring = ServiceMonitoring(settings, client, lambda: None, prefix="t:", share_interval=0.05)
    hub.start()
    monitoring.start()
    await asyncio.sleep(0.3)
    hub.handle_event(SimpleNamespace(session_id="s1", tier="l1", key="/a", context=None, latency=0.001, size=10,
                                     time=time.time()))  # something left for the final flush
    _freeze(frozen_redis)  # every Redis call now hangs (socket timeout 30 s)
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(hub.stop(within=1.0), monitoring.stop(within=1.0)), timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"stop took {elapsed:.1f} s with Redis frozen"
    # the client is not closed: closing waits on the frozen server; the fixture kills it


def test_shutdown_seconds_setting_defaults_to_10_and_is_validated() -> None:
    assert load_settings().shutdown_seconds == 10.0
    assert load_settings(shutdown_seconds=3).shutdown_seconds == 3.0
    with pytest.raises(ValueError, match="PRECACHE_SHUTDOWN_SECONDS"):
        load_settings(shutdown_seconds=0)
