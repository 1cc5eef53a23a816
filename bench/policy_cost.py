"""Cost per request of each cache policy in the L1 tier (issue 26): S3-FIFO, LRU, the offline-trained
learned policy and the online-trained one, on the same request stream, in one run.

The stream: 120,000 requests over 20,000 keys (Zipf 0.9 popularity, sizes 1-64 KiB, one request every
10 ms of virtual time), against a :class:`~precache.cache.memory.MemoryTier` holding 10% of the bytes:
``lookup`` then ``hit`` on a hit, ``set`` (admission, TTL choice, evictions) on a miss, which is what the
cache does per request. Per policy: CPU microseconds per request (``process_time``, less sensitive to
other load than the wall clock), wall microseconds, and the miss ratio (so a cheap policy that misses
more is visible). The offline model is trained first on a separate stream of the same kind (its
training time is reported, not counted). The online policy's retraining *is* counted: it happens on the
request path (every ``batch`` labelled samples), as it would in the server.

Used by ``bench/bench_cache.py --policy-cost``; writes the ``policy_cost`` entry of ``bench/results/cache.json``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from precache.cache.clock import ManualClock
from precache.cache.memory import MemoryTier
from precache.cache.policy import EvictionPolicy, LRUPolicy, S3FIFOPolicy
from precache.traces.model import Request

RESULTS = Path(__file__).resolve().parent / "results" / "cache.json"
N_KEYS = 20_000


def stream(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, N_KEYS + 1, dtype=np.float64)
    p = ranks ** -0.9
    ids = rng.choice(N_KEYS, size=n, p=p / p.sum())
    sizes = np.random.default_rng(seed + 1).integers(1024, 65536, N_KEYS)
    return [f"/obj/{i}.html" for i in ids], [int(sizes[i]) for i in ids]


def run(make: Callable[[ManualClock], EvictionPolicy], keys: list[str], sizes: list[int]) -> dict[str, float]:
    clock = ManualClock(0.0)
    budget = int(sum(dict(zip(keys, sizes, strict=True)).values()) * 0.1)
    tier = MemoryTier(max_bytes=budget, max_items=10_000_000, policy=make(clock), clock=clock)
    misses = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for i, (k, s) in enumerate(zip(keys, sizes, strict=True)):
        clock.set(i * 0.01)
        e = tier.lookup(k)
        if e is not None:
            tier.hit(e)
            continue
        misses += 1
        tier.set(k, b"", s)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return {"cpu_us_per_request": 1e6 * cpu / len(keys), "wall_us_per_request": 1e6 * wall / len(keys),
            "miss_ratio": misses / len(keys)}


def main(n: int = 120_000, out: Path = RESULTS) -> dict[str, Any]:
    from precache.models.optimizer.labels import trace_from_requests
    from precache.models.optimizer.online import OnlineConfig, OnlineLearnedPolicy
    from precache.models.optimizer.switcher import SwitchingPolicy
    from precache.sim.policies import train_learned_policy

    keys, sizes = stream(n, seed=0)
    tk, ts = stream(60_000, seed=1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        make_learned, _ = train_learned_policy(trace_from_requests(
            Request(i * 0.01, "c", k, size=s) for i, (k, s) in enumerate(zip(tk, ts, strict=True))), tmp)
        train_s = time.perf_counter() - t0
        online = OnlineConfig(window=20_000, batch=4096)
        policies: dict[str, Callable[[ManualClock], EvictionPolicy]] = {
            "s3fifo": lambda clock: S3FIFOPolicy(), "lru": lambda clock: LRUPolicy(),
            "switch (shipped default)": lambda clock: SwitchingPolicy(),
            "learned (offline)": make_learned(adaptive_ttl=False),
            "learned (online)": lambda clock: OnlineLearnedPolicy(clock, online)}
        results = {name: run(make, keys, sizes) for name, make in policies.items()}
    entry = {"requests": n, "keys": N_KEYS, "cache_share_of_bytes": 0.1, "offline_train_seconds": train_s,
             "online_config": {"window": online.window, "batch": online.batch, "sample_rate": online.sample_rate},
             "results": results}
    for name, r in results.items():
        print(f"  {name:18} cpu {r['cpu_us_per_request']:7.1f} µs/request  wall {r['wall_us_per_request']:7.1f} "
              f"µs/request  miss ratio {r['miss_ratio']:.4f}")
    data = json.loads(out.read_text()) if out.exists() else {}
    data["policy_cost"] = entry
    out.write_text(json.dumps(data, indent=2))
    print(f"wrote policy_cost into {out}")
    return entry
