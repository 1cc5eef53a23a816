"""What metrics cost on the hot path: L1-hit throughput with monitoring on vs off, in one run.

"On" = a :class:`~precache.monitoring.Monitor` watching the cache, sampling 10 times a second (ten times
the default) and a Prometheus scrape rendered every second, both on the same event loop as the gets;
"off" = the same cache with no monitor. Rounds alternate (off, on, off, on, ...) so machine noise hits
both equally; the ratio of medians is the figure. Both loops yield to the event loop every 100 gets, as a
server does between requests, so the sampler and the scrape really run. Also reported: the cost of one
``Monitor.record_prediction`` call (the only call monitoring adds to a served prediction).

Used by ``bench/bench_cache.py --metrics``; writes ``bench/results/cache_metrics.json``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from precache.cache import PredictiveCache
from precache.monitoring.exposition import render_prometheus
from precache.monitoring.monitor import Monitor, watch_cache

RESULTS = Path(__file__).resolve().parent / "results" / "cache_metrics.json"
KEYS = [f"page:{i}" for i in range(1000)]


async def _hits_per_second(cache: PredictiveCache, seconds: float) -> float:
    get = cache.get
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for key in KEYS[:100]:
            await get(key)
        done += 100
        await asyncio.sleep(0)
    return done / seconds


async def _scraper(monitor: Monitor) -> None:
    while True:
        render_prometheus(monitor.snapshot())
        await asyncio.sleep(1.0)


async def run(rounds: int = 6, seconds: float = 1.5) -> dict[str, Any]:
    cache = PredictiveCache()
    for key in KEYS:
        await cache.set(key, {"id": key, "body": "x" * 200})
    monitor = Monitor(watch_cache(cache))
    off: list[float] = []
    on: list[float] = []
    for _ in range(rounds):
        off.append(await _hits_per_second(cache, seconds))
        monitor.start(interval=0.1)
        scraper = asyncio.get_running_loop().create_task(_scraper(monitor))
        on.append(await _hits_per_second(cache, seconds))
        scraper.cancel()
        await monitor.stop()
    assert cache.stats.misses == 0, "the benchmark must measure hits only"
    n, started = 200_000, time.perf_counter()
    for i in range(n):
        monitor.record_prediction(0.0004, session_id=f"s{i % 5000}", pages=("/a", "/b"), model_version="v1")
    record_us = (time.perf_counter() - started) / n * 1e6
    await cache.close()
    off_med, on_med = statistics.median(off), statistics.median(on)
    return {
        "l1_hits_per_s": {"metrics_off": off_med, "metrics_on": on_med, "rounds_off": off, "rounds_on": on},
        "slowdown": 1 - on_med / off_med,
        "goal_max_slowdown": 0.10,
        "met": 1 - on_med / off_med <= 0.10,
        "record_prediction_us": record_us,
        "config": {"rounds": rounds, "seconds_per_round": seconds, "sample_hz": 10, "scrape_hz": 1},
    }


def main(out: Path = RESULTS) -> dict[str, Any]:
    result = asyncio.run(run())
    table = Table(title="L1-hit throughput, metrics off vs on (same run, alternating rounds)")
    for col in ("metrics", "hits/s (median)", "slowdown", "goal"):
        table.add_column(col, justify="right")
    hits = result["l1_hits_per_s"]
    table.add_row("off", f"{hits['metrics_off']:,.0f}", "", "")
    table.add_row("on", f"{hits['metrics_on']:,.0f}", f"{result['slowdown']:.1%}",
                  "≤ 10%: " + ("met" if result["met"] else "MISSED"))
    Console().print(table)
    Console().print(f"Monitor.record_prediction: {result['record_prediction_us']:.2f} µs per call")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    Console().print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
