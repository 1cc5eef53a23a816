"""Benchmark of precache's request path against cashews, cachetools and raw redis.asyncio.

Run: ``.venv/bin/python bench/bench_cache.py`` (starts its own redis-server on a free loopback port).
Writes ``bench/results/cache.json`` and prints a table. All cases run in one process, one event loop,
same machine, back to back; per-op latency is measured around each await with ``perf_counter_ns``
(the same instrumentation overhead for every contender).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cachetools import TTLCache
from cashews import Cache as CashewsCache
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from precache.cache import MemoryTier, PredictiveCache, RedisTier

RESULTS = Path(__file__).resolve().parent / "results" / "cache.json"
VALUE = {"title": "Home", "links": [f"/p/{i}" for i in range(20)], "html": "x" * 512}
SCALE = float(os.environ.get("PRECACHE_BENCH_SCALE", "1.0"))


def n(count: int) -> int:
    return max(50, int(count * SCALE))


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")


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


async def run(url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    raw = Redis.from_url(url, max_connections=80)

    # -- L1 hit ----------------------------------------------------------------------------------
    ours = PredictiveCache(MemoryTier(), RedisTier(url, prefix="b1:"))
    await ours.set("home", VALUE)
    cashews = CashewsCache()
    cashews.setup("mem://")
    await cashews.set("home", VALUE, expire=300)
    ttl: TTLCache[str, Any] = TTLCache(maxsize=100_000, ttl=300)
    ttl["home"] = VALUE

    async def ttl_get(key: str) -> Any:
        return ttl.get(key)

    results["l1_hit/precache"] = await measure(lambda i: ours.get("home"), n(100_000))
    results["l1_hit/cashews_mem"] = await measure(lambda i: cashews.get("home"), n(100_000))
    results["l1_hit/cachetools_ttl"] = await measure(lambda i: ttl_get("home"), n(100_000))
    events = 0

    def count(_: object) -> None:
        nonlocal events
        events += 1

    ours.subscribe(count)
    results["l1_hit/precache+events"] = await measure(lambda i: ours.get("home"), n(100_000))
    await ours.close()

    # -- L2 hit (L1 holds one item, keys rotate: every get misses L1, hits Redis, fills L1) ------
    keys = [f"k{i}" for i in range(1000)]
    l2c = PredictiveCache(MemoryTier(max_items=1), RedisTier(url, prefix="b2:"))
    for k in keys:
        await l2c.set(k, VALUE)
    encoded = await raw.get("b2:k0")
    for k in keys:
        await raw.set(f"raw:{k}", encoded)
    results["l2_hit/precache"] = await measure(lambda i: l2c.get(keys[i % 1000]), n(10_000))
    results["l2_hit/raw_redis_get"] = await measure(lambda i: raw.get(f"raw:{keys[i % 1000]}"), n(10_000))

    # -- get_many of 100 keys (all from L2) vs raw MGET ------------------------------------------
    batches = [keys[j : j + 100] for j in range(0, 1000, 100)]
    raw_batches = [[f"raw:{k}" for k in b] for b in batches]
    results["get_many100/precache"] = await measure(lambda i: l2c.get_many(batches[i % 10]), n(2_000))
    results["get_many100/raw_mget"] = await measure(lambda i: raw.mget(raw_batches[i % 10]), n(2_000))
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
    results["concurrent64/precache"] = {
        "ops_per_s": len(stream) / total, "p50_us": lat[len(lat) // 2] / 1000,
        "p99_us": lat[int(len(lat) * 0.99)] / 1000, "mean_us": statistics.fmean(lat) / 1000, "n": len(stream),
        "l1_hit_ratio": s.l1_hits / len(stream), "l2_hits": s.l2_hits, "loads": s.loads,
    }
    await conc.close()
    await raw.aclose()
    return results


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float | bool]]:
    def r(a: str, b: str, goal: float) -> dict[str, float | bool]:
        value = results[a]["p50_us"] / results[b]["p50_us"]
        thr = results[b]["ops_per_s"] / results[a]["ops_per_s"]
        return {"p50_ratio": round(value, 3), "throughput_ratio": round(thr, 3), "goal": goal,
                "met": value <= goal}

    return {
        "l1_hit precache/cashews": r("l1_hit/precache", "l1_hit/cashews_mem", 1.0),
        "l1_hit precache/cachetools": r("l1_hit/precache", "l1_hit/cachetools_ttl", float("inf")),
        "l2_hit precache/raw GET": r("l2_hit/precache", "l2_hit/raw_redis_get", 1.25),
        "get_many100 precache/raw MGET": r("get_many100/precache", "get_many100/raw_mget", 1.3),
    }


def main() -> None:
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
    rt = Table(title="ratios (p50; goal met?)")
    for col in ("comparison", "p50 ratio", "throughput ratio", "goal", "met"):
        rt.add_column(col)
    for name, v in rat.items():
        rt.add_row(name, f"{v['p50_ratio']:.3f}", f"{v['throughput_ratio']:.3f}", f"≤ {v['goal']}", str(v["met"]))
    console.print(rt)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "results": results,
               "ratios": {k: {**v, "goal": v["goal"] if v["goal"] != float("inf") else None}
                          for k, v in rat.items()}}
    RESULTS.write_text(json.dumps(payload, indent=2))
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
