"""Where the online layer's cost on ``/api/ml/predict`` goes, measured in process (issue 25's p99 goal).

Run: ``nice -n 10 .venv/bin/python bench/profile_online.py`` (about 1 minute; its own redis-server). Writes
``bench/results/online_profile.json`` and prints a table.

``bench/bench_service.py`` measures the layer's cost end to end (p99 with the layer on and off, interleaved
rounds); this one says where it comes from, with numbers that do not depend on how busy the machine is (CPU
time of this thread, Redis's own ``INFO commandstats``): the same request sequence as ``bench_service`` (NASA
1 Aug test sessions, 200 interleaved, PPM trained on the 80% split) goes through the service's online hook --
``observe`` (guard, local counts, aggregation for Redis) and ``rerank`` (merge of PPM's top 50 with the live
row) -- with the layer's background task (flush every 100 ms, row refresh) running against the redis-server,
paced at about 1,000 views per second. Reported per view: the hook's CPU (p50, p99), the background task's
CPU and its longest synchronous step (a step blocks the event loop), Redis's time for the online commands
(the flush script runs as one uninterrupted stretch in Redis, which the requests' own history writes wait
behind: its per-call time is reported too), and the garbage collections during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Coroutine, Generator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_service import request_sequence  # noqa: E402
from local_redis import start_redis  # noqa: E402
from shared_traces import NASA_AUG  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "online_profile.json"


class StepTimer:
    """Awaits a coroutine and records the CPU time of each of its steps (each is one stretch on the loop)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], steps: list[float]) -> None:
        self.coro, self.steps = coro, steps

    def __await__(self) -> Generator[Any, Any, Any]:
        it = self.coro.__await__()
        value: Any = None
        while True:
            started = time.thread_time()
            try:
                yielded = it.send(value)
            except StopIteration as done:
                self.steps.append(time.thread_time() - started)
                return done.value
            self.steps.append(time.thread_time() - started)
            value = yield yielded


def quantiles_us(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    n = len(ordered)
    return {"n": n, "p50_us": round(ordered[n // 2] * 1e6, 1), "p99_us": round(ordered[int(n * 0.99)] * 1e6, 1),
            "max_us": round(ordered[-1] * 1e6, 1), "mean_us": round(statistics.fmean(ordered) * 1e6, 2)}


async def run(redis_url: str, sequence: list[tuple[str, str]], model: Any) -> dict[str, Any]:
    import redis.asyncio as aredis

    from precache.online.hook import OnlineHook
    from precache.online.layer import OnlineLayer
    from precache.online.redis_store import RedisCounts
    from precache.online.settings import load_online_settings
    from precache.types import RequestContext

    s = load_online_settings()
    client = aredis.Redis.from_url(redis_url)
    store = RedisCounts(client, s.half_life, max_contexts=s.max_contexts, max_successors=s.max_successors)
    layer = OnlineLayer(s.merge_params(), store=store, guard=s.guard(), max_contexts=s.max_contexts,
                        max_successors=s.max_successors, flush_seconds=s.flush_ms / 1000,
                        refresh_seconds=s.refresh_ms / 1000, calibrator=s.calibrator())
    hook = OnlineHook(layer)  # as the service builds it: the online calibrator on, the model's top 50 merged
    steps: list[float] = []
    background = asyncio.get_running_loop().create_task(_timed(layer, steps))
    histories: dict[str, list[str]] = {}
    predict, observe, rerank = [], [], []
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["t"] = time.thread_time()
        else:
            pauses[info["generation"]].append(time.thread_time() - started.get("t", time.thread_time()))

    gc.collect()
    gc.freeze()  # as the service does after start-up
    gc.callbacks.append(on_gc)
    visitor = RequestContext()
    try:
        for i, (sid, page) in enumerate(sequence):
            history = histories.setdefault(sid, [])
            history.append(page)
            del history[:-50]
            t0 = time.thread_time()
            ranked = model.predict(history, hook.depth)
            t1 = time.thread_time()
            await hook.observe(sid, [page], history, visitor)
            t2 = time.thread_time()
            await hook.rerank(sid, history, list(ranked), 5)
            t3 = time.thread_time()
            predict.append(t1 - t0)
            observe.append(t2 - t1)
            rerank.append(t3 - t2)
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # ~1,000 views/s: the background task runs as in the service
    finally:
        gc.callbacks.remove(on_gc)
        background.cancel()
        await asyncio.gather(background, return_exceptions=True)
        await layer.close()
    await client.aclose()
    views = len(sequence)
    return {
        "views": views, "learned": layer.stats["learned"], "refused": layer.stats["refused"],
        "flushes": layer.stats["flushes"], "contexts": len(layer.local),
        "cpu": {"model_predict": quantiles_us(predict), "hook_observe": quantiles_us(observe),
                "hook_rerank": quantiles_us(rerank), "background_step": quantiles_us(steps),
                "background_us_per_view": round(sum(steps) / views * 1e6, 2)},
        "gc": {f"gen{g}": {"collections": len(p), **quantiles_us(p)} for g, p in pauses.items()},
    }


async def _timed(layer: Any, steps: list[float]) -> None:
    await StepTimer(layer.run(), steps)


def redis_costs(redis_url: str, views: int, flushes: int) -> dict[str, Any]:
    import redis

    stats = redis.Redis.from_url(redis_url).info("commandstats")
    out: dict[str, Any] = {}
    for name, row in stats.items():
        command = name.removeprefix("cmdstat_")
        if command in ("evalsha", "hincrbyfloat", "zadd", "ttl", "expire", "hgetall", "hdel", "zcard", "zpopmin"):
            out[command] = {"calls": row["calls"], "usec": row["usec"], "usec_per_call": row["usec_per_call"],
                            "usec_per_view": round(row["usec"] / views, 3)}
    script = out.get("evalsha", {})
    out["flush_script_calls_per_flush"] = round(script.get("calls", 0) / flushes, 2) if flushes else None
    out["redis_usec_per_view"] = round(sum(v["usec"] for k, v in out.items() if k in ("evalsha", "hgetall", "hdel"))
                                       / views, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=30_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from precache.evaluation import time_split
    from precache.models import build_predictor
    from precache.traces import read_sessions

    if not NASA_AUG.exists():
        raise SystemExit(f"trace {NASA_AUG} is not here (../shared/data absent)")
    split = time_split(read_sessions(NASA_AUG))
    model = build_predictor("ppm")
    model.fit(split.train, split.validation)
    sequence = request_sequence(split.test, args.views)
    proc, url = start_redis()
    try:
        result = asyncio.run(run(url, sequence, model))
        result["redis"] = redis_costs(url, result["views"], result["flushes"])
    finally:
        proc.kill()
        proc.wait(timeout=10)
    cpu, red = result["cpu"], result["redis"]
    print(f"{'per view (CPU of the serving thread)':<40} {'p50 us':>8} {'p99 us':>8} {'max us':>9}")
    for name in ("model_predict", "hook_observe", "hook_rerank", "background_step"):
        row = cpu[name]
        print(f"{name:<40} {row.get('p50_us', '-')!s:>8} {row.get('p99_us', '-')!s:>8} {row.get('max_us', '-')!s:>9}")
    print(f"background task: {cpu['background_us_per_view']} us CPU per view; {result['flushes']} flushes")
    print(f"Redis: {red['redis_usec_per_view']} us per view for the online commands; flush script "
          f"{red.get('evalsha', {}).get('usec_per_call')} us per call, {red['flush_script_calls_per_flush']} calls "
          "per flush")
    for g, row in result["gc"].items():
        print(f"gc {g}: {row['collections']} collections, p50 {row.get('p50_us')} us, max {row.get('max_us')} us")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "nice -n 10 .venv/bin/python bench/profile_online.py",
                                    "trace": NASA_AUG.name, **result}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
