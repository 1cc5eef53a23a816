"""Benchmark of precache's request path against cashews, cachetools and raw redis.asyncio.

Run: ``.venv/bin/python bench/bench_cache.py`` (starts its own redis-server on a free loopback port;
``--help`` for the options). Writes ``bench/results/cache.json`` and prints a table. All cases run in one
process, one event loop, same machine; per-op latency is measured around each await with ``perf_counter_ns`` (the same
instrumentation overhead for every contender). Contenders that are compared in a ratio run
*interleaved* (alternating blocks of ``BLOCK`` ops), so a noisy neighbour on a shared machine hits
both sides alike instead of whichever happened to run second.

Fairness notes (also printed with the table and stored in the JSON):

* The raw Redis contenders decode what they read (``orjson.loads`` of the same JSON value): a user
  of raw redis-py must deserialize too, and precache's numbers include its decode.
* Two raw clients: ``raw_redis_tuned`` ("same options") uses exactly RedisTier's connection options
  (``socket_timeout=None``, no ``CLIENT SETINFO``, no retries, no health checks): the goals are judged
  against it, so the ratio is precache's own layer overhead. ``raw_redis`` is ``Redis.from_url(url)`` with
  redis-py's defaults (a ``wait_for`` per command): reported too, since it is what a user gets.
* L1 hit: precache without an event subscriber, precache with one (a separate cache instance), cashews and
  cachetools run interleaved. The L2 phases assert zero misses and zero Redis errors (a timed-out read
  would make precache look faster, as a miss costs no decode).
* ``import_ms``: time of ``import precache`` / ``import precache.cache`` in a fresh interpreter
  (median of 5).
* get_many: the default ``fill_l1="deferred"`` (L1 check, MGET, decode; the L1 fill of the batch via
  ``loop.call_soon`` right after returning). In this back-to-back loop the deferred fill runs inside the
  next measured call, while it waits for its MGET reply: its CPU stays in the measurement, overlapped with
  Redis' work (on an idle machine Redis has the other core). ``precache_inline_fill`` (``fill_l1="inline"``,
  the fill before returning, the default until this release) is shown beside it: the fill's own cost.
* L2-hit and get_many cases: L1 holds 100 items and 20,000 keys rotate beyond it, so reads miss L1,
  hit Redis, and fill a *full* L1 (one eviction per fill): the steady state of a real cache. (S3-FIFO
  is scan-resistant: its main queue keeps ~90 keys through a scan, so a few reads per lap hit L1;
  ``l1_hit_share`` reports that residue.) An L1 of 1 item would make every fill evict too, but is
  not a cache anyone runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import hiredis
import orjson
from cachetools import TTLCache
from cashews import Cache as CashewsCache
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from rich.console import Console
from rich.table import Table

from local_redis import start_redis
from precache.cache import MemoryTier, PredictiveCache, RedisTier

RESULTS = Path(__file__).resolve().parent / "results" / "cache.json"
VALUE = {"title": "Home", "links": [f"/p/{i}" for i in range(20)], "html": "x" * 512}
SCALE = 1.0  # --scale (default: $PRECACHE_BENCH_SCALE or 1)
BLOCK = 500
NOTES = [
    "raw Redis contenders decode the value they read (orjson.loads), as any raw user must",
    "raw_redis_tuned = the same connection options as RedisTier (socket_timeout=None, no CLIENT SETINFO, "
    "no retries, no health checks): the goals are judged against it; raw_redis = redis-py defaults "
    "(a wait_for per command), reported too",
    "RedisTier sends GET and MGET on a pooled connection packed by hiredis, without execute_command "
    "(redis-py's async packer is Python); raw_direct (info) is the same client taking the same shortcut, "
    "i.e. what is left of precache's overhead once the client side is equal",
    "L1 cases (precache, precache with an event subscriber on its own instance, cashews, cachetools) run "
    "interleaved; the L2 phases assert zero misses and zero Redis errors",
    "L2 hit / get_many: L1 holds 100 items, 20,000 keys rotate beyond it: reads miss L1 and fill a full "
    "L1 (one eviction per fill); l1_hit_share shows the residue (S3-FIFO keeps ~90 keys of a scan)",
    "ratio pairs run interleaved in blocks of 500 ops",
    "get_many100/precache = the default fill_l1='deferred': L1 check of 100 keys + one MGET + header check "
    "and decode of 100 records; the L1 fill of the batch (entries, one S3-FIFO batch insert, one batch "
    "eviction pass) runs right after the call returns (loop.call_soon), i.e. during the next call's MGET "
    "wait, so in this closed loop its CPU stays in the measured calls; precache_inline_fill (info) = "
    "fill_l1='inline': the same fill before the call returns",
]


def n(count: int) -> int:
    return max(50, int(count * SCALE))


async def measure(op: Callable[[int], Awaitable[Any]], count: int, warmup: int = 200) -> dict[str, float]:
    for i in range(warmup):
        await op(i)
    lat = []
    clock = time.perf_counter_ns
    t_start = clock()
    for i in range(count):
        t0 = clock()
        await op(i)
        lat.append(clock() - t0)
    total = (clock() - t_start) / 1e9
    lat.sort()
    return {
        "ops_per_s": count / total,
        "p50_us": lat[len(lat) // 2] / 1000,
        "p99_us": lat[int(len(lat) * 0.99)] / 1000,
        "mean_us": statistics.fmean(lat) / 1000,
        "n": count,
    }


async def measure_interleaved(ops: dict[str, Callable[[int], Awaitable[Any]]], count: int,
                              warmup: int = 200) -> dict[str, dict[str, float]]:
    """Like ``measure`` for several contenders, alternating blocks of ``BLOCK`` ops between them."""
    for op in ops.values():
        for i in range(warmup):
            await op(i)
    lat: dict[str, list[int]] = {name: [] for name in ops}
    busy: dict[str, int] = dict.fromkeys(ops, 0)
    clock = time.perf_counter_ns
    done = 0
    while done < count:
        block = min(BLOCK, count - done)
        for name, op in ops.items():
            sink = lat[name]
            t_block = clock()
            for i in range(done, done + block):
                t0 = clock()
                await op(i)
                sink.append(clock() - t0)
            busy[name] += clock() - t_block
        done += block
    out = {}
    for name, values in lat.items():
        values.sort()
        out[name] = {
            "ops_per_s": count / (busy[name] / 1e9),
            "p50_us": values[len(values) // 2] / 1000,
            "p99_us": values[int(len(values) * 0.99)] / 1000,
            "mean_us": statistics.fmean(values) / 1000,
            "n": count,
        }
    return out


def check_l2_phase(cache: PredictiveCache, misses0: int, errors0: int, phase: str) -> None:
    """Every read of the L2 phases must be a hit: a timed-out read (a miss, no decode) would flatter us."""
    s = cache.stats
    misses, errors = s.misses - misses0, s.redis_errors - errors0
    if misses or errors or s.l2_busy:
        raise SystemExit(f"{phase}: {misses} misses, {errors} Redis errors, {s.l2_busy} busy during the L2 phase; "
                         "the figures would not be comparable (machine overloaded?)")


def import_times() -> dict[str, float]:
    """Median wall time (ms) of each import in a fresh interpreter."""
    out = {}
    for module in ("precache", "precache.cache"):
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        runs = sorted(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout) for _ in range(5))
        out[module] = round(runs[2] * 1000, 2)
    return out


async def run(url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    raw = Redis.from_url(url, max_connections=80)
    tuned = Redis.from_url(url, max_connections=80, socket_timeout=None, driver_info=None,
                           retry=Retry(NoBackoff(), 0), health_check_interval=0)

    # -- L1 hit (interleaved; the subscriber case on its own instance) ----------------------------
    ours = PredictiveCache(MemoryTier(), RedisTier(url, prefix="b1:", op_timeout=1.0))
    await ours.set("home", VALUE)
    with_events = PredictiveCache(MemoryTier(), RedisTier(url, prefix="b1e:", op_timeout=1.0))
    await with_events.set("home", VALUE)
    events = 0

    def count(_: object) -> None:
        nonlocal events
        events += 1

    with_events.subscribe(count)
    cashews = CashewsCache()
    cashews.setup("mem://")
    await cashews.set("home", VALUE, expire=300)
    ttl: TTLCache[str, Any] = TTLCache(maxsize=100_000, ttl=300)
    ttl["home"] = VALUE

    async def ttl_get(key: str) -> Any:
        return ttl.get(key)

    results.update({f"l1_hit/{name}": m for name, m in (await measure_interleaved({
        "precache": lambda i: ours.get("home"),
        "precache+events": lambda i: with_events.get("home"),
        "cashews_mem": lambda i: cashews.get("home"),
        "cachetools_ttl": lambda i: ttl_get("home"),
    }, n(100_000))).items()})
    await asyncio.sleep(0)  # deliver the queued events
    assert events > 0 and with_events.stats.dropped_events + events >= n(100_000)
    await ours.close()
    await with_events.close()

    # -- L2 hit (L1 holds 100 items, 20,000 keys rotate beyond it: gets miss L1, hit Redis) -------
    nkeys = 20_000
    keys = [f"k{i}" for i in range(nkeys)]
    # op_timeout 1 s: the same code path as the 50 ms default (one deadline timer per operation), but a
    # shared, loaded machine cannot turn a slow reply into a miss (which the phase check would refuse)
    l2c = PredictiveCache(MemoryTier(max_items=100), RedisTier(url, prefix="b2:", op_timeout=1.0))
    await l2c.start()
    for k in keys:
        await l2c.set(k, VALUE)
    plain = orjson.dumps(VALUE)  # what a raw user stores: the same JSON, without precache's header
    raw_keys = [f"raw:{k}" for k in keys]
    pipe = raw.pipeline(transaction=False)
    for rk in raw_keys:
        pipe.set(rk, plain)
    await pipe.execute()
    hits0, l2hits0 = l2c.stats.l1_hits, l2c.stats.l2_hits
    misses0, errors0 = l2c.stats.misses, l2c.stats.redis_errors

    async def raw_get(i: int) -> Any:
        return orjson.loads(await raw.get(raw_keys[i % nkeys]))

    async def tuned_get(i: int) -> Any:
        return orjson.loads(await tuned.get(raw_keys[i % nkeys]))

    async def direct_get(i: int) -> Any:
        return orjson.loads(await direct(tuned, "GET", raw_keys[i % nkeys]))

    results.update({f"l2_hit/{name}": m for name, m in (await measure_interleaved({
        "precache": lambda i: l2c.get(keys[i % nkeys]),
        "raw_redis_get": raw_get,
        "raw_redis_tuned_get": tuned_get,
        "raw_direct_get": direct_get,
    }, n(10_000))).items()})
    l1h, l2h = l2c.stats.l1_hits - hits0, l2c.stats.l2_hits - l2hits0
    results["l2_hit/precache"]["l1_hit_share"] = round(l1h / (l1h + l2h), 4)
    check_l2_phase(l2c, misses0, errors0, "l2_hit")

    # -- get_many of 100 keys (all from L2) vs raw MGET ------------------------------------------
    batches = [keys[j : j + 100] for j in range(0, nkeys, 100)]
    raw_batches = [raw_keys[j : j + 100] for j in range(0, nkeys, 100)]
    nb = len(batches)
    hits0, l2hits0 = l2c.stats.l1_hits, l2c.stats.l2_hits
    misses0, errors0 = l2c.stats.misses, l2c.stats.redis_errors

    async def raw_mget(i: int) -> Any:
        loads = orjson.loads
        return [None if v is None else loads(v) for v in await raw.mget(raw_batches[i % nb])]

    async def tuned_mget(i: int) -> Any:
        loads = orjson.loads
        return [None if v is None else loads(v) for v in await tuned.mget(raw_batches[i % nb])]

    async def direct_mget(i: int) -> Any:
        loads = orjson.loads
        return [None if v is None else loads(v) for v in await direct(tuned, "MGET", *raw_batches[i % nb])]

    results.update({f"get_many100/{name}": m for name, m in (await measure_interleaved({
        "precache": lambda i: l2c.get_many(batches[i % nb]),
        "precache_inline_fill": lambda i: l2c.get_many(batches[i % nb], fill_l1="inline"),
        "raw_mget": raw_mget,
        "raw_tuned_mget": tuned_mget,
        "raw_direct_mget": direct_mget,
    }, n(2_000))).items()})
    l1h, l2h = l2c.stats.l1_hits - hits0, l2c.stats.l2_hits - l2hits0
    results["get_many100/precache"]["l1_hit_share"] = round(l1h / (l1h + l2h), 4)
    check_l2_phase(l2c, misses0, errors0, "get_many100")
    await l2c.close()

    # -- miss -> loader -> fill (unique keys) -----------------------------------------------------
    miss = PredictiveCache(MemoryTier(), RedisTier(url, prefix="b3:"))

    async def loader() -> dict[str, Any]:
        return VALUE

    results["miss_load_fill/precache"] = await measure(lambda i: miss.get(f"m{i}", loader=loader), n(5_000))
    await miss.close()

    # -- 64 concurrent clients, skewed keys, L1 holds ~20% of the key space ----------------------
    conc = PredictiveCache(MemoryTier(max_items=2_000), RedisTier(url, prefix="b4:"))
    rng = random.Random(7)
    space = 10_000
    weights = [1.0 / (r + 1) ** 0.9 for r in range(space)]
    stream = rng.choices(range(space), weights=weights, k=n(60_000))

    async def origin() -> dict[str, Any]:
        await asyncio.sleep(0.001)  # a 1 ms origin
        return VALUE

    lat: list[int] = []

    async def client(c: int) -> None:
        clock = time.perf_counter_ns
        for j in range(c, len(stream), 64):
            t0 = clock()
            await conc.get(f"page{stream[j]}", loader=origin)
            lat.append(clock() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*[client(c) for c in range(64)])
    total = time.perf_counter() - t0
    lat.sort()
    s = conc.stats
    tier = conc.l2
    assert isinstance(tier, RedisTier)
    results["concurrent64/precache"] = {
        "ops_per_s": len(stream) / total, "p50_us": lat[len(lat) // 2] / 1000,
        "p99_us": lat[int(len(lat) * 0.99)] / 1000, "mean_us": statistics.fmean(lat) / 1000, "n": len(stream),
        "l1_hit_ratio": s.l1_hits / len(stream), "l2_hits": s.l2_hits, "loads": s.loads,
        "redis_errors": s.redis_errors, "l2_busy": s.l2_busy, "breaker_opened": conc.breaker.opened,
        "late_replies": tier.late_replies, "queued_for_slot": tier.queued,
    }
    await conc.close()
    await raw.aclose()
    await tuned.aclose()
    return results


async def direct(client: Redis, *args: str) -> Any:
    """A read the way ``RedisTier`` sends GET/MGET: a pooled connection, the command packed by hiredis,
    no ``execute_command``. The (info) contender that gets the same client-side shortcut as precache."""
    pool = client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await conn.send_packed_command(hiredis.pack_command(args))  # type: ignore[arg-type]
        return await conn.read_response()
    finally:
        await pool.release(conn)


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float | bool]]:
    def r(a: str, b: str, goal: float) -> dict[str, float | bool]:
        value = results[a]["p50_us"] / results[b]["p50_us"]
        thr = results[b]["ops_per_s"] / results[a]["ops_per_s"]
        return {"p50_ratio": round(value, 3), "throughput_ratio": round(thr, 3), "goal": goal,
                "met": value <= goal}

    inf = float("inf")
    return {
        "l1_hit precache/cashews": r("l1_hit/precache", "l1_hit/cashews_mem", 0.2),
        "l1_hit+events precache/cashews": r("l1_hit/precache+events", "l1_hit/cashews_mem", 0.6),
        "l1_hit precache/cachetools": r("l1_hit/precache", "l1_hit/cachetools_ttl", inf),
        "l2_hit precache/same-options GET+decode": r("l2_hit/precache", "l2_hit/raw_redis_tuned_get", 1.25),
        "get_many100 precache/same-options MGET+decode": r("get_many100/precache", "get_many100/raw_tuned_mget",
                                                          1.3),
        "l2_hit precache/raw GET+decode": r("l2_hit/precache", "l2_hit/raw_redis_get", inf),
        "get_many100 precache/raw MGET+decode": r("get_many100/precache", "get_many100/raw_mget", inf),
        "(info) l2_hit precache/direct hiredis GET+decode": r("l2_hit/precache", "l2_hit/raw_direct_get", inf),
        "(info) get_many100 precache/direct hiredis MGET+decode": r(
            "get_many100/precache", "get_many100/raw_direct_mget", inf),
        "(info) get_many100 precache inline fill/same-options MGET+decode": r(
            "get_many100/precache_inline_fill", "get_many100/raw_tuned_mget", inf),
    }


def main() -> None:
    global SCALE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=float(os.environ.get("PRECACHE_BENCH_SCALE", "1.0")),
                        help="multiply every operation count (default: $PRECACHE_BENCH_SCALE or 1.0)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the results (default {RESULTS})")
    parser.add_argument("--metrics", action="store_true",
                        help="only measure the cost of monitoring on L1 hits (metrics on vs off, same run); "
                             "writes bench/results/cache_metrics.json")
    parser.add_argument("--policy-cost", action="store_true",
                        help="only measure each cache policy's cost per request in the L1 tier (S3-FIFO, LRU, "
                             "learned offline and online); writes the policy_cost entry of bench/results/cache.json")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be > 0")
    if args.policy_cost:
        import policy_cost

        policy_cost.main(n=max(10_000, int(120_000 * args.scale)), out=args.json)
        return
    if args.metrics:
        import metrics_cost

        metrics_cost.main()
        return
    SCALE = args.scale
    imports = import_times()
    proc, url = start_redis()
    try:
        results = asyncio.run(run(url))
    finally:
        proc.kill()
        proc.wait()
    rat = ratios(results)
    console = Console()
    table = Table(title="precache request path (one process, loopback Redis)")
    for col in ("case", "ops/s", "p50 µs", "p99 µs"):
        table.add_column(col, justify="right" if col != "case" else "left")
    for name, m in results.items():
        table.add_row(name, f"{m['ops_per_s']:,.0f}", f"{m['p50_us']:.2f}", f"{m['p99_us']:.2f}")
    console.print(table)
    console.print("import time (ms, fresh interpreter, median of 5): "
                  + ", ".join(f"{k} {v}" for k, v in imports.items()))
    rt = Table(title="ratios (p50; goal met?)")
    for col in ("comparison", "p50 ratio", "throughput ratio", "goal", "met"):
        rt.add_column(col)
    for name, v in rat.items():
        goal = "-" if v["goal"] == float("inf") else f"≤ {v['goal']}"
        met = "-" if v["goal"] == float("inf") else str(v["met"])
        rt.add_row(name, f"{v['p50_ratio']:.3f}", f"{v['throughput_ratio']:.3f}", goal, met)
    console.print(rt)
    c64 = results["concurrent64/precache"]
    console.print("concurrent64: " + ", ".join(f"{k}={c64[k]}" for k in (
        "redis_errors", "l2_busy", "breaker_opened", "late_replies", "queued_for_slot", "loads", "l2_hits")))
    for note in NOTES:
        console.print(f"note: {note}")
    out: Path = args.json
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "results": results,
               "import_ms": imports,
               "ratios": {k: {**v, "goal": v["goal"] if v["goal"] != float("inf") else None}
                          for k, v in rat.items()},
               "notes": NOTES}
    if out.exists():  # the policy cost is measured by its own run (--policy-cost): keep it
        kept = json.loads(out.read_text()).get("policy_cost")
        if kept is not None:
            payload["policy_cost"] = kept
    out.write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
