"""PredictiveCache against a real redis-server: stampedes, faults, slowness, invalidation, poison."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cache_workers import stampede_worker
from redis.asyncio import Redis

from conftest import RedisProcess
from precache.cache import AccessEvent, CacheUnavailableError, CircuitBreaker, MemoryTier, PredictiveCache, RedisTier
from precache.cache.config import CacheConfig, EventConfig


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


def make(url: str, pfx: str, **kw: Any) -> PredictiveCache:
    op_timeout = kw.pop("op_timeout", 0.05)
    return PredictiveCache(MemoryTier(), RedisTier(url, prefix=pfx, op_timeout=op_timeout), **kw)


@pytest.mark.parametrize("op_timeout", [0.05, 1.0])
async def test_1000_concurrent_gets_call_the_loader_once(private_redis: RedisProcess, op_timeout: float) -> None:
    # At the default 50 ms op timeout a loaded CI machine may time some Redis calls out: the single
    # loader call and the values must hold anyway. Zero Redis errors is only asserted at 1 s.
    # A server of its own: on the session-wide one, what earlier tests left running made this flaky.
    # The generous case is generous for connects too: the burst opens the pool's connections while the
    # loop runs 1,000 tasks, and on a loaded machine a 0.5 s connect allowance expired (loop lag, not Redis).
    connect_timeout = 2.0 if op_timeout >= 1.0 else 0.5
    cache = PredictiveCache(MemoryTier(), RedisTier(private_redis.url, prefix=prefix(), op_timeout=op_timeout,
                                                    connect_timeout=connect_timeout))
    calls = 0

    async def loader() -> dict[str, str]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"page": "home"}

    values = await asyncio.gather(*[cache.get("hot", loader=loader) for _ in range(1000)])
    assert calls == 1
    assert all(v == {"page": "home"} for v in values)
    if op_timeout >= 1.0:
        assert cache.stats.redis_errors == 0
    await cache.close()


def test_4_processes_share_one_load(redis_url: str, tmp_path: Path) -> None:
    """Four processes miss one key at once: exactly one loader call among them (a Redis lease).

    Each worker holds its load until all four have their gets in flight, so separate loads would show
    as 2-4 calls whatever the processes' start-up times."""
    ctx = multiprocessing.get_context("spawn")
    (tmp_path / "ready").mkdir()
    (tmp_path / "loads").mkdir()
    pfx, key = prefix(), "shared-hot"
    with ctx.Pool(4) as pool:  # bounded: a wedged worker fails the test instead of hanging the run
        pending = pool.starmap_async(stampede_worker, [(redis_url, pfx, key, str(tmp_path), 4, 250)] * 4)
        results = pending.get(timeout=90)
    calls = len(list((tmp_path / "loads").iterdir()))
    assert len(list((tmp_path / "ready").iterdir())) == 4
    assert all(v == "origin-value" for values in results for v in values)
    assert calls == 1, f"loader ran {calls} times across 4 processes"


async def test_redis_killed_mid_load_no_errors_and_recovery(private_redis: Any) -> None:
    pfx = prefix()
    cache = make(private_redis.url, pfx, breaker=CircuitBreaker(failure_threshold=3, reset_timeout=0.2))
    await cache.start()

    async def loader_for(i: int) -> Any:
        async def load() -> str:
            await asyncio.sleep(0.001)
            return f"value-{i}"
        return load

    errors: list[BaseException] = []
    wrong: list[tuple[int, Any]] = []
    stop = asyncio.Event()

    async def client(c: int) -> None:
        n = 0
        while not stop.is_set():
            i = (c * 7 + n) % 50
            n += 1
            try:
                value = await cache.get(f"k{i}", loader=await loader_for(i), ttl=0.5)
            except BaseException as exc:
                errors.append(exc)
                continue
            if value != f"value-{i}":
                wrong.append((i, value))
            await asyncio.sleep(0.002)

    async def eventually(check: Any, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if check():
                return True
            await asyncio.sleep(0.05)
        return bool(check())

    clients = [asyncio.create_task(client(c)) for c in range(16)]
    await asyncio.sleep(0.3)
    await asyncio.to_thread(private_redis.stop)
    # the clients keep running: L1 entries (ttl 0.5 s) expire and reloads try to write to Redis
    assert await eventually(lambda: cache.stats.redis_errors > 0
                            and cache.stats.breaker_state in ("open", "half_open"), 10.0), cache.stats
    await asyncio.sleep(0.3)
    await asyncio.to_thread(private_redis.start)
    returned = time.monotonic()
    admin = Redis.from_url(private_redis.url)
    names = [f"{pfx}k{i}" for i in range(50)]
    # Redis is used again: the breaker closes and reloads write values to the (empty) restarted server
    used_again = False
    while time.monotonic() - returned < 10.0:
        await asyncio.sleep(0.05)
        if cache.stats.breaker_state == "closed" and await admin.exists(*names) > 0:
            used_again = True
            break
    recovery = time.monotonic() - returned
    stop.set()
    await asyncio.gather(*clients)
    assert errors == [] and wrong == []
    assert used_again, f"Redis not used again within 10 s of its return (stats: {cache.stats})"
    # and reads are served from it: a value that only Redis holds comes back from L2
    served = None
    for _ in range(200):
        hits = cache.stats.l2_hits
        try:  # a write during recovery may be refused (the write-path contract): try again
            await cache.set("probe", "p")
        except CacheUnavailableError:
            await asyncio.sleep(0.05)
            continue
        cache.l1.clear()
        served = await cache.get("probe")
        if served == "p" and cache.stats.l2_hits > hits:
            break
        await asyncio.sleep(0.05)
    assert served == "p" and cache.stats.l2_hits > 0, cache.stats
    assert recovery < 10.0
    await admin.aclose()
    await cache.close()


async def test_slow_redis_gets_return_within_the_timeout_bound(private_redis: Any) -> None:
    cache = make(private_redis.url, prefix(), op_timeout=0.05)
    await cache.set("k", "v")
    cache.l1.clear()
    admin = Redis.from_url(private_redis.url)
    await admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
    try:
        durations = []
        for i in range(10):
            t0 = time.perf_counter()
            value = await cache.get(f"missing{i}", loader=lambda: "from-origin")
            durations.append(time.perf_counter() - t0)
            assert value == "from-origin"
        # a get pays a few op timeouts at most (read, lease, write; skipped once the breaker opens);
        # the bound is generous for a loaded 2-core CI machine (the benchmark has the real figures)
        assert max(durations) < 10 * 0.05 + 1.0, durations
        assert cache.stats.redis_errors >= 1
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        await cache.close()


async def _until(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    for _ in range(1_000_000):
        if check() or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.005)


async def test_two_instances_see_each_others_set(redis_url: str) -> None:
    pfx = prefix()
    # generous op timeout: this test is about invalidation, not about timeouts on a busy machine
    a, b = make(redis_url, pfx, op_timeout=1.0), make(redis_url, pfx, op_timeout=1.0)
    await a.start(wait=10.0)
    await b.start(wait=10.0)
    await a.set("user:1", {"name": "ada"})
    # let b see a's invalidation of this set first: a read racing it would (rightly) not fill b's L1
    await _until(lambda: b.stats.invalidations_received >= 1)
    assert await b.get("user:1") == {"name": "ada"}  # b now holds it in L1
    assert b.contains("user:1")
    await a.set("user:1", {"name": "grace"})
    await _until(lambda: not b.contains("user:1"))  # the invalidation arrives over pub/sub
    assert await b.get("user:1") == {"name": "grace"}
    await a.delete("user:1")
    await _until(lambda: not b.contains("user:1"))
    assert await b.get("user:1") is None
    assert b.stats.invalidations_received >= 3
    assert a.stats.redis_errors == 0 and b.stats.redis_errors == 0
    await a.close()
    await b.close()


async def test_poisoned_redis_value_is_a_miss_and_reported(redis_url: str, caplog: Any) -> None:
    pfx = prefix()
    # generous op timeout: a GET timing out on a loaded machine would hide the poisoned read
    tier = RedisTier(redis_url, prefix=pfx, op_timeout=1.0)
    cache = PredictiveCache(MemoryTier(), tier)

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("touch /tmp/precache-pwned",))

    await tier.put_raw("pickled", pickle.dumps(Boom()))
    await tier.put_raw("random", os.urandom(40))
    assert await cache.get("pickled") is None
    assert await cache.get("random", loader=lambda: "good") == "good"
    assert await cache.get("random") == "good"
    assert cache.stats.poisoned == 2
    assert "poisoned" in caplog.text
    assert not await asyncio.to_thread(os.path.exists, "/tmp/precache-pwned")
    await cache.close()


async def test_get_many_tags_and_event_stream(redis_url: str) -> None:
    pfx = prefix()
    stream = f"{pfx}events"
    cache = make(redis_url, pfx, op_timeout=1.0,
                 config=CacheConfig(events=EventConfig(stream=stream, stream_maxlen=1000)))
    seen: list[AccessEvent] = []
    cache.subscribe(seen.append)
    for i in range(10):
        await cache.set(f"k{i}", i, tags=("even",) if i % 2 == 0 else ("odd",))
    cache.l1.clear()
    got = await cache.get_many([f"k{i}" for i in range(12)])
    assert got == {f"k{i}": i for i in range(10)}
    assert await cache.invalidate_tags(["even"]) == 5
    assert await cache.get_many([f"k{i}" for i in range(10)]) == {f"k{i}": i for i in range(1, 10, 2)}
    admin = Redis.from_url(redis_url)
    deadline = time.monotonic() + 10.0  # the sink flushes in the background
    for _ in range(1_000_000):
        if await admin.xlen(stream) >= len(seen) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.02)
    assert await admin.xlen(stream) == len(seen) > 0
    assert cache.stats.redis_errors == 0
    await admin.aclose()
    await cache.close()


@pytest.mark.parametrize("direct", [True, False])
async def test_reads_after_a_timed_out_read_get_their_own_reply(private_redis: RedisProcess, direct: bool) -> None:
    """GET and MGET take a direct pooled path (hiredis-packed) on a plain client and ``execute_command``
    otherwise (here: a single-connection client). On both, a read cancelled by its deadline while its
    reply is still on the wire must not leave that reply for the next read, and the two paths agree."""
    pfx = prefix()
    if direct:
        tier = RedisTier(private_redis.url, prefix=pfx, op_timeout=0.05)
    else:
        client = Redis.from_url(private_redis.url, single_connection_client=True, socket_timeout=None)
        tier = RedisTier(client=client, prefix=pfx, op_timeout=0.05)
    assert tier.direct_reads is direct
    await tier.set("a", b"A", None)
    await tier.set("b", b"\x00B\xff", None)
    assert await tier.get("a") == b"A"
    admin = Redis.from_url(private_redis.url)
    await admin.execute_command("CLIENT", "PAUSE", "400", "ALL")
    with pytest.raises(TimeoutError):
        await tier.get("a")
    with pytest.raises(TimeoutError):
        await tier.get_many(["a", "b"])
    await asyncio.sleep(0.5)  # the pause ends; the cancelled replies arrive on dropped connections
    assert await tier.get("b") == b"\x00B\xff"
    assert await tier.get_many(["b", "missing", "a"]) == [b"\x00B\xff", None, b"A"]
    assert await tier.get("missing") is None
    await admin.aclose()
    await tier.close()
