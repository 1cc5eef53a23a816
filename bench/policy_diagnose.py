"""Issue 26's diagnosis: the learned eviction against SIEVE and S3-FIFO on the validation protocol only.

    nice -n 10 .venv/bin/python bench/policy_diagnose.py --trace nasa-jul-extract --fractions 0.1

Never touches the evaluation half: as ``bench_policies.Validation``, the offline model is trained on the
training part before the validation slice (the first quarter of the trace), the slice (the second
quarter, warmed on as many requests before it) is replayed, and its measured part is scored, at the
point's own capacity (a fraction of the evaluation half's working set in bytes: the operator's cache
size, as in the benchmark). Prints one row per policy: byte miss ratio, then what it evicted (count,
share never read while resident, median requests idle at eviction, share whose next request comes
within LRU's median idle time, share never requested again in the slice); ``--seeds`` repeats the
learned policy with other sampling seeds (its noise). Writes nothing.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_policies import CANDIDATES, cloudphysics_trace, replay  # noqa: E402
from policy_online import slice_trace, validation_slice  # noqa: E402
from precache.cache.clock import ManualClock  # noqa: E402
from precache.cache.policy import EntryInfo, EvictionPolicy, LRUPolicy, S3FIFOPolicy  # noqa: E402
from precache.models.optimizer.heuristics import DoorkeeperPolicy, SievePolicy  # noqa: E402
from precache.models.optimizer.labels import CacheTrace, build_dataset, next_access_index  # noqa: E402
from precache.models.optimizer.model import OptimizerModel  # noqa: E402
from precache.models.optimizer.policy import LearnedPolicy  # noqa: E402
from precache.models.optimizer.train import TrainConfig, train  # noqa: E402
from shared_traces import NASA_AUG, NASA_JUL  # noqa: E402


def load(name: str) -> CacheTrace:
    from precache.models.optimizer.labels import trace_from_requests
    from precache.traces import read_requests

    if name == "cloudphysics":
        return cloudphysics_trace()
    return trace_from_requests(read_requests({"nasa-jul-extract": NASA_JUL, "nasa-1aug": NASA_AUG}[name]))


def evictions(policy: EvictionPolicy, trace: CacheTrace, warm: int, cap: int,
              clock: ManualClock | None = None) -> tuple[float, list[tuple[int, int, int, float]]]:
    """bench_policies.replay's loop (evict, then insert), recording each measured eviction as
    (size, reads while resident, requests idle, requests to the key's next request or inf)."""
    keys, sizes, times = trace.keys, trace.sizes.tolist(), trace.times.tolist()
    nxt = next_access_index(keys)
    resident: dict[str, EntryInfo] = {}
    seen: dict[str, list[int]] = {}  # key -> [reads while resident, last request index]
    used = req_b = miss_b = 0
    out: list[tuple[int, int, int, float]] = []
    for i, k in enumerate(keys):
        if clock is not None:
            clock.set(times[i])
        s = sizes[i]
        req_b += s if i >= warm else 0
        e = resident.get(k)
        if e is not None:
            policy.on_hit(e)
            seen[k][0] += 1
            seen[k][1] = i
            continue
        miss_b += s if i >= warm else 0
        if s > cap:
            continue
        info = EntryInfo(key=k, size=s, inserted_at=times[i])
        policy.ttl_for(info, None)
        if not policy.admit(info):
            continue
        while used + s > cap:
            v = policy.victim()
            if v is None:
                break
            used -= resident.pop(v).size
            reads, last = seen.pop(v)
            j = int(nxt[last])
            if i >= warm:
                out.append((sizes[last], reads, i - last, float(j - i) if j > i else math.inf))
        resident[k] = info
        used += s
        seen[k] = [0, i]
        policy.on_insert(info)
    return miss_b / max(req_b, 1), out


def describe(ev: list[tuple[int, int, int, float]], within: float) -> str:
    if not ev:
        return "no evictions"
    n = len(ev)
    return (f"{n:6d} {sum(e[1] == 0 for e in ev) / n:6.3f} {statistics.median(e[2] for e in ev):8.0f} "
            f"{sum(e[3] <= within for e in ev) / n:7.3f} {sum(math.isinf(e[3]) for e in ev) / n:6.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", choices=("nasa-jul-extract", "nasa-1aug", "cloudphysics"), required=True)
    ap.add_argument("--fractions", type=lambda v: [float(x) for x in v.split(",")], default=[0.001, 0.01, 0.1])
    ap.add_argument("--seeds", type=int, default=1, help="sampling seeds of the learned policy (its noise)")
    args = ap.parse_args()
    trace = load(args.trace)
    n = len(trace)
    start = n // 2  # bench_policies' --train-fraction 0.5
    horizon = max(60.0, float(trace.times[-1] - trace.times[0]) / 20.0)
    begin, measured_from = validation_slice(start)
    rate = min(1.0, 300_000 / n)
    with tempfile.TemporaryDirectory(prefix="precache-diag-") as tmp:
        data = build_dataset(trace, 0, measured_from, horizon=horizon, sample_rate=rate, delayed_rate=rate)
        train(data, Path(tmp), TrainConfig(n_estimators=80, seed=0), version=f"{args.trace}-validation")
        model = OptimizerModel.load(Path(tmp))
    vt = slice_trace(trace, begin, start)
    warm = measured_from - begin
    working_set = sum(dict(zip(trace.keys[start:], trace.sizes[start:].tolist(), strict=True)).values())
    print(f"{args.trace}: validation slice {len(vt)} requests, {len(vt) - warm} measured; horizon {horizon:.0f}s")
    for frac in args.fractions:
        cap = max(1, int(working_set * frac))
        lru_bmr, lru_ev = evictions(LRUPolicy(), vt, warm, cap)
        within = statistics.median(e[2] for e in lru_ev) if lru_ev else 1.0
        print(f"\n{frac:.1%} (capacity {cap} bytes; LRU's median idle at eviction {within:.0f} requests)")
        print(f"{'policy':32s} {'bmr':>7s} {'evicts':>6s} {'unread':>6s} {'idle':>8s} {'returns':>7s} {'never':>6s}")
        rows: list[tuple[str, float, str]] = [("lru", lru_bmr, describe(lru_ev, within))]
        heuristics: dict[str, Any] = {"sieve": SievePolicy(), "s3fifo": S3FIFOPolicy(capacity_bytes=cap),
                                      "doorkeeper+s3fifo": DoorkeeperPolicy(S3FIFOPolicy(capacity_bytes=cap)),
                                      "doorkeeper+sieve": DoorkeeperPolicy(SievePolicy())}
        for label, pol in heuristics.items():
            bmr, ev = evictions(pol, vt, warm, cap)
            rows.append((label, bmr, describe(ev, within)))
        for label, kwargs in CANDIDATES.items():
            clock = ManualClock(float(vt.times[0]))
            bmr, ev = evictions(LearnedPolicy(model, clock, **kwargs), vt, warm, cap, clock)
            rows.append((f"learned ({label})", bmr, describe(ev, within)))
        for label, bmr, text in rows:
            print(f"{label:32s} {bmr:7.4f} {text}")
        if args.seeds > 1:
            runs = []
            for seed in range(args.seeds):
                clock = ManualClock(float(vt.times[0]))
                runs.append(replay(LearnedPolicy(model, clock, seed=seed), vt, warm, cap, clock)["byte_miss_ratio"])
            print(f"learned (sampled) over {args.seeds} seeds: mean {statistics.mean(runs):.4f}, "
                  f"sd {statistics.pstdev(runs):.4f}")


if __name__ == "__main__":
    main()
