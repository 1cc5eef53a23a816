"""Issue 26's diagnosis: the learned eviction against SIEVE and S3-FIFO on the validation protocol only.

    nice -n 10 .venv/bin/python bench/policy_diagnose.py [--traces nasa-jul-extract] [--fractions 0.1] [--seeds 5]

Never touches the evaluation half: as ``bench_policies.Validation``, the offline model is trained on the
training part before the validation slice (the first quarter of the trace), the slice (the second
quarter, warmed on as many requests before it) is replayed, and its measured part is scored, at the
point's own capacity (a fraction of the evaluation half's working set in bytes: the operator's cache
size, as in the benchmark). Prints one row per policy: byte miss ratio, then what it evicted (count,
share never read while resident, median requests idle at eviction, share whose next request comes
within LRU's median idle time, share never requested again in the slice); ``--seeds`` repeats the
learned policy with other sampling seeds (its noise). Each learned candidate runs twice: on a model whose rows
keep the distinct-objects count (``with count``, what ships) and on one whose rows write it as 0
(``without count``, issue 26's tried fix: FeatureTracker(stream_counts=False)). Writes
``bench/results/policy_diagnose.json`` (docs/policy.md quotes it).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from bisect import bisect_left
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_policies import CANDIDATES, cloudphysics_trace, replay  # noqa: E402
from policy_online import slice_trace, validation_slice  # noqa: E402
from precache.cache.clock import ManualClock  # noqa: E402
from precache.cache.policy import EntryInfo, EvictionPolicy, LRUPolicy, S3FIFOPolicy  # noqa: E402
from precache.models.optimizer.features import FeatureTracker  # noqa: E402
from precache.models.optimizer.heuristics import DoorkeeperPolicy, SievePolicy  # noqa: E402
from precache.models.optimizer.labels import CacheTrace, build_dataset, next_access_index  # noqa: E402
from precache.models.optimizer.model import OptimizerModel  # noqa: E402
from precache.models.optimizer.policy import LearnedPolicy  # noqa: E402
from precache.models.optimizer.train import TrainConfig, train  # noqa: E402
from shared_traces import NASA_AUG, NASA_JUL, trace_names  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TRACES = ("nasa-jul-extract", "nasa-1aug", "cloudphysics")


def load(name: str) -> CacheTrace:
    from precache.models.optimizer.labels import trace_from_requests
    from precache.traces import read_requests

    if name == "cloudphysics":
        return cloudphysics_trace()
    return trace_from_requests(read_requests({"nasa-jul-extract": NASA_JUL, "nasa-1aug": NASA_AUG}[name]))


class _ReadCounter:
    """Wraps a policy to count each resident's reads (what ``evictions`` reports of a victim)."""

    def __init__(self, policy: EvictionPolicy) -> None:
        self.policy = policy
        self.reads: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def on_hit(self, info: EntryInfo) -> None:
        self.reads[info.key] = self.reads.get(info.key, 0) + 1
        self.policy.on_hit(info)

    def on_insert(self, info: EntryInfo) -> None:
        self.reads[info.key] = 0
        self.policy.on_insert(info)


def evictions(policy: EvictionPolicy, trace: CacheTrace, warm: int, cap: int,
              clock: ManualClock | None = None) -> tuple[float, list[tuple[int, int, int, float]]]:
    """bench_policies.replay (evict, then insert), recording each measured eviction as (size, reads while
    resident, requests idle, requests to the key's next request or inf)."""
    keys, sizes = trace.keys, trace.sizes.tolist()
    nxt = next_access_index(keys)
    positions: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        positions.setdefault(k, []).append(i)
    counter = _ReadCounter(policy)
    out: list[tuple[int, int, int, float]] = []

    def record(i: int, key: str) -> None:
        reads = counter.reads.pop(key, 0)
        if i < warm:
            return
        seen = positions[key]
        last = seen[bisect_left(seen, i) - 1]  # the victim's last request before this one
        j = int(nxt[last])
        out.append((sizes[last], reads, i - last, float(j - i) if j > i else math.inf))

    result = replay(counter, trace, warm, cap, clock, on_evict=record)  # type: ignore[arg-type]
    return float(result["byte_miss_ratio"]), out


def describe(ev: list[tuple[int, int, int, float]], within: float) -> dict[str, float]:
    """What a policy evicted: count, share never read while resident, median requests idle at eviction,
    share whose next request comes within LRU's median idle time, share never requested again."""
    n = len(ev)
    if not n:
        return {"evictions": 0}
    return {"evictions": n, "unread": sum(e[1] == 0 for e in ev) / n,
            "median_idle_requests": float(statistics.median(e[2] for e in ev)),
            "returns_within_lru_idle": sum(e[3] <= within for e in ev) / n,
            "never_again": sum(math.isinf(e[3]) for e in ev) / n}


def validation_model(trace: CacheTrace, name: str, stream_counts: bool, tmp: Path) -> OptimizerModel:
    """The offline model of ``bench_policies.Validation``: trained on the training part before the slice.
    ``stream_counts=False`` writes the distinct-objects count as 0 (the fix tried in issue 26)."""
    start = len(trace) // 2  # bench_policies' --train-fraction 0.5
    horizon = max(60.0, float(trace.times[-1] - trace.times[0]) / 20.0)
    _, measured_from = validation_slice(start)
    rate = min(1.0, 300_000 / len(trace))
    data = build_dataset(trace, 0, measured_from, horizon=horizon, sample_rate=rate, delayed_rate=rate,
                         tracker=FeatureTracker(stream_counts=stream_counts))
    out = tmp / f"{name}-{stream_counts}"
    train(data, out, TrainConfig(n_estimators=80, seed=0), version=f"{name}-validation")
    return OptimizerModel.load(out)


def diagnose_size(vt: CacheTrace, warm: int, cap: int, models: dict[str, OptimizerModel],
                  seeds: int) -> dict[str, Any]:
    """Every heuristic and learned candidate (each model variant) on the slice at one capacity."""
    lru_bmr, lru_ev = evictions(LRUPolicy(), vt, warm, cap)
    within = statistics.median(e[2] for e in lru_ev) if lru_ev else 1.0
    rows: dict[str, dict[str, float]] = {"lru": {"byte_miss_ratio": lru_bmr, **describe(lru_ev, within)}}
    heuristics: dict[str, Any] = {"sieve": SievePolicy(), "s3fifo": S3FIFOPolicy(capacity_bytes=cap),
                                  "doorkeeper+s3fifo": DoorkeeperPolicy(S3FIFOPolicy(capacity_bytes=cap)),
                                  "doorkeeper+sieve": DoorkeeperPolicy(SievePolicy())}
    for label, pol in heuristics.items():
        bmr, ev = evictions(pol, vt, warm, cap)
        rows[label] = {"byte_miss_ratio": bmr, **describe(ev, within)}
    seed_runs: dict[str, dict[str, float]] = {}
    for variant, model in models.items():
        for label, kwargs in CANDIDATES.items():
            clock = ManualClock(float(vt.times[0]))
            bmr, ev = evictions(LearnedPolicy(model, clock, **kwargs), vt, warm, cap, clock)
            rows[f"learned ({label}), {variant}"] = {"byte_miss_ratio": bmr, **describe(ev, within)}
        if seeds > 1:
            runs = []
            for seed in range(seeds):
                clock = ManualClock(float(vt.times[0]))
                runs.append(replay(LearnedPolicy(model, clock, seed=seed), vt, warm, cap, clock)["byte_miss_ratio"])
            seed_runs[f"learned (sampled), {variant}"] = {"seeds": seeds, "mean": statistics.mean(runs),
                                                         "sd": statistics.pstdev(runs)}
    return {"capacity_bytes": cap, "lru_median_idle_requests": float(within), "rows": rows, "seeds": seed_runs}


def diagnose(name: str, fractions: list[float], seeds: int, tmp: Path) -> dict[str, Any]:
    trace = load(name)
    start = len(trace) // 2
    begin, measured_from = validation_slice(start)
    models = {variant: validation_model(trace, name, variant == "with count", tmp)
              for variant in ("with count", "without count")}
    vt = slice_trace(trace, begin, start)
    warm = measured_from - begin
    working_set = sum(dict(zip(trace.keys[start:], trace.sizes[start:].tolist(), strict=True)).values())
    same_time = float(np.mean(np.diff(trace.times[:start]) == 0)) if start > 1 else 0.0
    out: dict[str, Any] = {"validation_requests": len(vt) - warm, "consecutive_same_timestamp": same_time,
                           "sizes": {}}
    for frac in fractions:
        out["sizes"][str(frac)] = point = diagnose_size(vt, warm, max(1, int(working_set * frac)), models, seeds)
        print(f"\n{name} {frac:.1%} (capacity {point['capacity_bytes']} bytes; LRU's median idle at eviction "
              f"{point['lru_median_idle_requests']:.0f} requests)")
        print(f"{'policy':42s} {'bmr':>7s} {'evicts':>6s} {'unread':>6s} {'idle':>6s} {'returns':>7s} {'never':>6s}")
        for label, r in point["rows"].items():
            print(f"{label:42s} {r['byte_miss_ratio']:7.4f} {r['evictions']:6.0f} {r.get('unread', 0):6.3f} "
                  f"{r.get('median_idle_requests', 0):6.0f} {r.get('returns_within_lru_idle', 0):7.3f} "
                  f"{r.get('never_again', 0):6.3f}")
        for label, r in point["seeds"].items():
            print(f"{label} over {r['seeds']} seeds: mean {r['mean']:.4f}, sd {r['sd']:.4f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traces", default=",".join(TRACES), help="comma-separated, of: " + ", ".join(TRACES))
    ap.add_argument("--fractions", type=lambda v: [float(x) for x in v.split(",")], default=[0.001, 0.01, 0.1])
    ap.add_argument("--seeds", type=int, default=5, help="sampling seeds of the learned policy (its noise)")
    ap.add_argument("--out", type=Path, default=RESULTS / "policy_diagnose.json")
    args = ap.parse_args()
    names = trace_names(ap, args.traces, TRACES)
    with tempfile.TemporaryDirectory(prefix="precache-diag-") as tmp:
        doc = {"traces": {name: diagnose(name, args.fractions, args.seeds, Path(tmp)) for name in names},
               "variants": {"with count": "rows with the distinct-objects count (what ships)",
                            "without count": "rows without it (FeatureTracker(stream_counts=False), tried)"}}
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
