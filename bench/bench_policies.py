"""Cache-policy benchmark: libCacheSim heuristics, Belady, precache's default and the learned policy.

    .venv/bin/python bench/bench_policies.py [--synthetic-requests 1000000] [--quick]

For every trace: time split (train the optimizer on the first ``--train-fraction``, evaluate on the
rest); every cache, baseline or learned, first replays the training part uncounted (warm-up), then the
evaluation part is measured, at 0.1%, 1% and 10% of the evaluation part's working set (bytes). One
insertion order for all (evict, then insert, as libCacheSim); a policy declines an object only through
``admit``. libCacheSim policies (heuristics, size-aware GDSF/LHD/LFUDA, and admissioners in front of
LRU, S3-FIFO and GDSF) run in C on an oracleGeneral file written here (Belady needs its next-access
field); precache's policies (the cache area's S3-FIFO default and LRU, and the learned policy) run
through this file's own Python replay, ``replay()``, which drives the ``EvictionPolicy`` protocol. Its
soundness check: precache LRU through ``replay()`` must give libCacheSim's LRU numbers on the same trace
(``harness_check`` in the JSON). Belady and BeladySize are references (offline), not bounds.

Object size = the largest successful response size of the URL (aborted transfers do not shrink it;
never-sized objects count 1 byte), for every simulator alike.

Writes ``bench/results/policies.json`` and ``bench/results/policies_ttl.png``.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import sys
import tempfile
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policy_meta import meta  # noqa: E402
from policy_online import (  # noqa: E402
    ONLINE_CANDIDATES,
    Hints,
    online_config,
    predictor_hints,
    run_online,
    slice_trace,
    validation_slice,
)
from policy_ttl import plot_ttl, ttl_experiment  # noqa: E402
from precache.cache.clock import ManualClock  # noqa: E402
from precache.cache.policy import EntryInfo, EvictionPolicy, LRUPolicy, S3FIFOPolicy  # noqa: E402
from precache.models.optimizer.labels import CacheTrace, build_dataset, trace_from_requests  # noqa: E402
from precache.models.optimizer.model import OptimizerModel, decision_metrics  # noqa: E402
from precache.models.optimizer.policy import LearnedPolicy  # noqa: E402
from precache.models.optimizer.selection import TIE, BlockScore, block_bounds, choose  # noqa: E402
from precache.models.optimizer.switcher import SwitchingPolicy  # noqa: E402
from precache.models.optimizer.train import TrainConfig, train  # noqa: E402
from shared_traces import CLOUDPHYSICS_ORACLE, NASA_AUG, NASA_JUL  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FRACTIONS = (0.001, 0.01, 0.1)
OG_DTYPE = np.dtype([("t", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


# -- traces ---------------------------------------------------------------------------------------------
def load_traces(synthetic_requests: int) -> dict[str, CacheTrace]:
    from precache.traces import read_requests

    traces: dict[str, CacheTrace] = {}
    traces["nasa-jul-extract"] = trace_from_requests(read_requests(NASA_JUL))
    traces["nasa-1aug"] = trace_from_requests(read_requests(NASA_AUG))
    traces["cloudphysics"] = cloudphysics_trace()
    if synthetic_requests:
        from precache.traces.synthetic import SyntheticWorkload

        w = SyntheticWorkload(synthetic_requests, seed=7)
        reqs = list(w.requests())
        end = reqs[-1].time if reqs else None
        traces[f"synthetic-{synthetic_requests}"] = trace_from_requests(reqs, updates=list(w.updates(until=end)))
    return traces


def cloudphysics_trace() -> CacheTrace:
    with gzip.open(CLOUDPHYSICS_ORACLE) as f:
        raw = f.read()
    a = np.frombuffer(raw, dtype=OG_DTYPE)
    keys = [str(int(x)) for x in a["id"]]
    max_size: dict[str, int] = {}
    for k, s in zip(keys, a["size"].tolist(), strict=True):
        max_size[k] = max(max_size.get(k, 0), int(s))
    sizes = np.fromiter((max(max_size[k], 1) for k in keys), dtype=np.int64, count=len(keys))
    return CacheTrace(times=a["t"].astype(np.float64), keys=keys, sizes=sizes, clients=[""] * len(keys),
                      versions=np.zeros(len(keys), dtype=np.int64), change_signal="none")


def write_oracle_general(trace: CacheTrace, start: int, path: Path) -> None:
    keys = trace.keys[start:]
    ids: dict[str, int] = {}
    obj = np.fromiter((ids.setdefault(k, len(ids) + 1) for k in keys), dtype=np.uint64, count=len(keys))
    nxt = np.full(len(keys), -1, dtype=np.int64)
    last: dict[int, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        o = int(obj[i])
        j = last.get(o)
        nxt[i] = j + 1 if j is not None else -1  # libCacheSim's vtime is 1-based
        last[o] = i
    rec = np.zeros(len(keys), dtype=OG_DTYPE)
    t = trace.times[start:]
    rec["t"] = np.clip(t - t[0] + 1, 0, 2**32 - 1).astype(np.uint32)
    rec["id"] = obj
    rec["size"] = np.minimum(trace.sizes[start:], 2**32 - 1).astype(np.uint32)
    rec["next"] = nxt
    path.write_bytes(rec.tobytes())


# -- replay -----------------------------------------------------------------------------------------------
def replay(policy: EvictionPolicy, trace: CacheTrace, start: int, capacity: int,
           clock: ManualClock | None = None, order: str = "evict-first", hints: Hints | None = None,
           bounds: list[int] | None = None, on_evict: Callable[[int, str], None] | None = None) -> dict[str, Any]:
    """Byte-capacity cache driven through the EvictionPolicy protocol (admit, ttl_for, victim, on_insert,
    on_hit). Requests before ``start`` warm the cache and the policy uncounted (every policy alike).

    ``order="evict-first"`` is libCacheSim's order and the only fair one: on a miss the policy decides
    admission through ``admit`` and, if admitted, makes room *before* the new object is stored, so it can
    never evict the object it is inserting (an admission decision that bypasses ``admit``).
    ``"insert-first"`` is the old order, kept only to measure that bypass (``self_evictions``: misses whose
    object was evicted by its own insertion). Objects larger than the cache are not stored. No expiry.
    With ``bounds`` (block edges from ``start``), ``block_missed`` holds the missed bytes per block.
    ``on_evict(i, key)`` is told of each eviction made while serving request ``i`` (policy_diagnose.py)."""
    resident: dict[str, EntryInfo] = {}
    used = 0
    reqs = misses = self_evictions = 0
    req_bytes = miss_bytes = 0
    keys = trace.keys
    sizes = trace.sizes.tolist()
    times = trace.times.tolist()
    insert_first = order == "insert-first"
    feed = _hint_feeder(policy, hints)
    block_missed = [0.0] * (len(bounds) - 1 if bounds else 0)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(len(keys)):
        if feed is not None and i:  # what the page predictor expects after the previous request
            feed(i - 1)
        if i == start:
            t0 = time.perf_counter()
            c0 = time.process_time()
        counted = i >= start
        k = keys[i]
        s = sizes[i]
        if clock is not None:
            clock.set(times[i])
        if counted:
            reqs += 1
            req_bytes += s
        e = resident.get(k)
        if e is not None:
            policy.on_hit(e)
            continue
        if counted:
            misses += 1
            miss_bytes += s
            if bounds:
                block_missed[bisect_right(bounds, i) - 1] += s
        if s > capacity:
            continue
        info = EntryInfo(key=k, size=s, inserted_at=times[i])
        policy.ttl_for(info, None)
        if not policy.admit(info):
            continue
        if insert_first:
            resident[k] = info
            used += s
            policy.on_insert(info)
        while used + (0 if insert_first else s) > capacity:
            v = policy.victim()
            if v is None:
                break
            ev = resident.pop(v, None)
            if ev is not None:
                used -= ev.size
                if v == k and insert_first and counted:
                    self_evictions += 1
                if on_evict is not None:
                    on_evict(i, v)
        if not insert_first:
            resident[k] = info
            used += s
            policy.on_insert(info)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    out: dict[str, Any] = {"miss_ratio": misses / max(reqs, 1), "byte_miss_ratio": miss_bytes / max(req_bytes, 1),
                           "requests_per_s": reqs / secs if secs > 0 else math.inf,
                           "cpu_us_per_request": 1e6 * cpu / max(reqs, 1)}
    out.update({"block_missed": block_missed} if bounds else {})
    out.update({"self_eviction_share_of_misses": self_evictions / max(misses, 1)} if insert_first else {})
    return out


def _hint_feeder(policy: EvictionPolicy, hints: Hints | None) -> Callable[[int], None] | None:
    """``feed(i)``: the policy's ``hint`` gets what the page predictor expects after request ``i``."""
    hint = getattr(policy, "hint", None) if hints is not None else None
    if hint is None or hints is None:
        return None
    ids, probs, keys = hints.ids.tolist(), hints.probs.tolist(), hints.keys
    def feed(i: int) -> None:
        for kid, p in zip(ids[i], probs[i], strict=True):
            if kid < 0:
                break
            hint(keys[kid], p)

    return feed


# libCacheSim baselines: (label, constructor name, admissioner name or None). Every one is warmed on the
# training half and measured on the rest, like the Python replay's policies. (LFUDA is left out: the
# libcachesim 0.3.5 wheel segfaults on it when objects are larger than the cache.)
LCS_BASELINES: tuple[tuple[str, str, str | None], ...] = (
    ("LRU", "LRU", None), ("ARC", "ARC", None), ("S3FIFO", "S3FIFO", None), ("Sieve", "Sieve", None),
    ("WTinyLFU", "WTinyLFU", None), ("GDSF", "GDSF", None), ("LHD", "LHD", None),
    ("Hyperbolic", "Hyperbolic", None), ("LRB", "LRB", None), ("ThreeLCache", "ThreeLCache", None),
    ("LRU+Bloom", "LRU", "BloomFilter"), ("LRU+AdaptSize", "LRU", "AdaptSize"), ("LRU+Prob", "LRU", "Prob"),
    ("LRU+Size", "LRU", "Size"), ("S3FIFO+Bloom", "S3FIFO", "BloomFilter"),
    ("S3FIFO+AdaptSize", "S3FIFO", "AdaptSize"), ("GDSF+Bloom", "GDSF", "BloomFilter"),
)
LCS_REFERENCES = ("Belady", "BeladySize")
"""Offline references (they know the future; Belady ignores object size): shown, never a bound or a goal."""


def _admissioner(name: str | None, capacity: int) -> Any:
    import libcachesim as lcs

    if name is None:
        return None
    if name == "Size":  # admit objects up to 1% of the cache (a fixed, stated threshold)
        return lcs.SizeAdmissioner(size_threshold=max(1, capacity // 100))
    if name == "Prob":
        return lcs.ProbAdmissioner(prob=0.5)
    return getattr(lcs, f"{name}Admissioner")()


def _lcs_cache(name: str, capacity: int, admission: str | None) -> Any:
    import libcachesim as lcs

    adm = _admissioner(admission, capacity)
    return getattr(lcs, name)(cache_size=capacity, admissioner=adm) if adm is not None else \
        getattr(lcs, name)(cache_size=capacity)


def _lcs_reader(og_path: Path) -> Any:
    import libcachesim as lcs

    return lcs.TraceReader(str(og_path), lcs.TraceType.ORACLE_GENERAL_TRACE)


def lcs_run(name: str, og_path: Path, capacity: int, start: int, n: int,
            admission: str | None = None) -> dict[str, float]:
    """Warm a libCacheSim cache on requests ``[0, start)`` of the file, then measure ``[start, n)``."""
    reader = _lcs_reader(og_path)
    cache = _lcs_cache(name, capacity, admission)
    if start:
        cache.process_trace(reader, 0, start)
    t0 = time.perf_counter()
    mr, bmr = cache.process_trace(reader, start, -1)
    secs = time.perf_counter() - t0
    return {"miss_ratio": float(mr), "byte_miss_ratio": float(bmr), "requests_per_s": (n - start) / secs}


def lcs_blocks(name: str, og_path: Path, capacity: int, bounds: list[int], requested: list[float],
               admission: str | None = None) -> list[float]:
    """Missed bytes per block ``[bounds[i], bounds[i+1])`` of a libCacheSim cache warmed on ``[0, bounds[0])``
    (one cache, its state carried from block to block; ``process_trace`` reports each block's ratio)."""
    reader = _lcs_reader(og_path)
    cache = _lcs_cache(name, capacity, admission)
    if bounds[0]:
        cache.process_trace(reader, 0, bounds[0])
    return [float(cache.process_trace(reader, b0, b1 - b0)[1]) * r
            for (b0, b1), r in zip(itertools.pairwise(bounds), requested, strict=True)]


# -- main ---------------------------------------------------------------------------------------------------
def run_trace(name: str, trace: CacheTrace, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = len(trace)
    start = int(n * args.train_fraction)
    duration = float(trace.times[-1] - trace.times[0]) or 1.0
    horizon = max(60.0, duration / 20.0)
    print(f"[{name}] {n} requests, {len(set(trace.keys))} objects, horizon {horizon:.0f}s", flush=True)
    t0 = time.perf_counter()
    d_train = build_dataset(trace, 0, start, horizon=horizon, sample_rate=args.sample_rate,
                            delayed_rate=args.sample_rate)
    d_test = build_dataset(trace, start, n, horizon=horizon, sample_rate=min(1.0, args.sample_rate * 2))
    model_dir = workdir / f"model-{name}"
    res = train(d_train, model_dir, TrainConfig(n_estimators=args.trees, seed=0), version=name)
    model = OptimizerModel.load(model_dir)
    quality = decision_metrics(model, d_test)
    print(f"[{name}] trained in {time.perf_counter() - t0:.1f}s; quality {json.dumps(quality)}", flush=True)
    hints = predictor_hints(trace, start) if not args.no_predictor else None
    val = Validation.build(name, trace, start, args, workdir, horizon, hints)
    eval_keys = trace.keys[start:]
    pos: dict[str, int] = dict(zip(eval_keys, trace.sizes[start:].tolist(), strict=True))
    working_set = int(sum(pos.values()))
    og = workdir / f"{name}.oracleGeneral.bin"
    write_oracle_general(trace, 0, og)  # the whole trace: every cache warms on the training half
    ctx = {"trace": trace, "start": start, "n": n, "og": og, "model": model, "hints": hints, "args": args}
    rows = [test_point(ctx, val, frac, max(1, int(working_set * frac))) for frac in args.fractions]
    check = [{"fraction": r["fraction"], "lcs_lru": r["lcs.LRU"]["miss_ratio"],
              "replay_lru": r["precache.lru"]["miss_ratio"], "lcs_lru_bytes": r["lcs.LRU"]["byte_miss_ratio"],
              "replay_lru_bytes": r["precache.lru"]["byte_miss_ratio"]} for r in rows]
    lru_like = same_as_lru(rows)
    for row in rows:
        row["summary"] = summarize(row, lru_like)
        print(f"[{name}] {row['fraction']:.3%}: " + ", ".join(
            f"{k}={v['byte_miss_ratio']:.4f}" for k, v in row.items()
            if isinstance(v, dict) and "byte_miss_ratio" in v) + f"; {json.dumps(row['summary'])}", flush=True)
    out: dict[str, Any] = {"requests": n, "train_requests": start, "eval_requests": n - start,
                           "objects": len(set(trace.keys)), "eval_working_set_bytes": working_set,
                           "horizon_s": horizon, "change_signal": trace.change_signal,
                           "train_seconds": res.seconds, "decision_quality_test": quality,
                           "predictor_hints": hints is not None,
                           "harness_check": check, "returns_lru_numbers": sorted(lru_like), "sizes": rows}
    cfg = online_config(start)
    out["online_config"] = {"window": cfg.window, "batch": cfg.batch, "sample_rate": cfg.sample_rate,
                            "max_rows": cfg.max_rows, "sample_size": cfg.sample_size}
    if trace.change_signal != "none" and args.ttl_requests > 0:
        out["ttl"] = ttl_experiment(trace, start, model, args.ttl_requests)
    return out


@dataclass(slots=True)
class Validation:
    """The validation slice (see policy_online.validation_slice) and what is run on it."""

    trace: CacheTrace
    warm: int
    model: OptimizerModel
    hints: Hints | None
    working_set: int
    og: Path
    n_train: int
    full: CacheTrace
    full_hints: Hints | None
    measured_from: int

    @classmethod
    def build(cls, name: str, trace: CacheTrace, start: int, args: argparse.Namespace, workdir: Path,
              horizon: float, hints: Hints | None) -> Validation:
        """A model trained on the training part before the measured slice; the slice's own files."""
        begin, measured_from = validation_slice(start)
        d_vtrain = build_dataset(trace, 0, measured_from, horizon=horizon, sample_rate=args.sample_rate,
                                 delayed_rate=args.sample_rate)
        vmodel_dir = workdir / f"vmodel-{name}"
        train(d_vtrain, vmodel_dir, TrainConfig(n_estimators=args.trees, seed=0), version=f"{name}-validation")
        vtrace = slice_trace(trace, begin, start)
        sizes: dict[str, int] = dict(zip(trace.keys[measured_from:start], trace.sizes[measured_from:start].tolist(),
                                         strict=True))
        og = workdir / f"{name}.validation.oracleGeneral.bin"
        write_oracle_general(vtrace, 0, og)
        return cls(vtrace, measured_from - begin, OptimizerModel.load(vmodel_dir),
                   None if hints is None else hints.slice(begin, start), int(sum(sizes.values())), og, start,
                   slice_trace(trace, 0, start), None if hints is None else hints.slice(0, start), measured_from)

    def run(self, cap: int) -> dict[str, Any]:
        """Every learned candidate and every baseline on the slice at the point's own capacity (the
        deployed cache size), per block of the measured part; the learned choice and the shipped one, each
        by the noise-band rule (precache.models.optimizer.selection)."""
        n = len(self.trace)
        bounds = block_bounds(self.warm, n)
        sizes = self.trace.sizes.tolist()
        requested = [float(sum(sizes[b0:b1])) for b0, b1 in itertools.pairwise(bounds)]
        learned: dict[str, dict[str, Any]] = {
            label: run_learned(self.model, self.trace, self.warm, cap, kwargs, bounds=bounds)
            for label, kwargs in CANDIDATES.items()}
        shift = self.measured_from - self.warm  # the slice's index 0 in the training part
        for label, kwargs in ONLINE_CANDIDATES.items():  # they learn from the stream: the whole training
            # part streams through them, the same slice is measured (as on the evaluation half)
            learned[label] = run_online(self.full, self.measured_from, cap, online_config(self.n_train, **kwargs),
                                        self.full_hints, replay, bounds=[b + shift for b in bounds])
        base_blocks = {f"lcs.{label}": lcs_blocks(cls, self.og, cap, bounds, requested, adm)
                       for label, cls, adm in LCS_BASELINES}
        for label, pol in (("precache.lru", LRUPolicy()),
                           ("precache.s3fifo (default)", S3FIFOPolicy(capacity_bytes=cap))):
            base_blocks[label] = replay(pol, self.trace, self.warm, cap, bounds=bounds)["block_missed"]
        switch = replay(SwitchingPolicy(capacity_bytes=cap), self.trace, self.warm, cap, bounds=bounds)
        learned_scores = {k: BlockScore(tuple(v["block_missed"])) for k, v in learned.items()}
        base_scores = {k: BlockScore(tuple(v)) for k, v in base_blocks.items()}
        learned_rule = choose(learned_scores, requested, LEARNED_DEFAULT)
        base_scores[SHIPPED_DEFAULT] = BlockScore(tuple(switch["block_missed"]))
        shipped_rule = choose({**learned_scores, **base_scores}, requested, SHIPPED_DEFAULT)
        shipped = shipped_rule["chosen"]
        return {"validation_requests": n - self.warm, "validation_capacity_bytes": cap, "tolerance": TIE,
                "validation_working_set_bytes": self.working_set,
                "chosen": learned_rule["chosen"], "rule": learned_rule,
                "validation": {k: {m: v[m] for m in ("byte_miss_ratio", "miss_ratio", "rows_scored_per_request")}
                               for k, v in learned.items()},
                "baselines": {k: shipped_rule["byte_miss_ratio"][k] for k in base_scores},
                "shipped": {"chosen": shipped, "kind": "learned" if shipped in learned else
                            "default" if shipped == SHIPPED_DEFAULT else "baseline",
                            "validation_bmr": shipped_rule["byte_miss_ratio"][shipped], "margin": TIE,
                            "default": SHIPPED_DEFAULT, "rule": shipped_rule}}


def run_candidate(ctx: dict[str, Any], label: str, cap: int, **extra: Any) -> dict[str, Any]:
    """One learned candidate (offline-trained or online) on the evaluation half."""
    trace, start = ctx["trace"], ctx["start"]
    if label in ONLINE_CANDIDATES:
        return run_online(trace, start, cap, online_config(start, **{**ONLINE_CANDIDATES[label], **extra}),
                          ctx["hints"] if extra.get("use_predictor", True) else None, replay)
    return run_learned(ctx["model"], trace, start, cap, {**CANDIDATES[label], **extra})


def test_point(ctx: dict[str, Any], val: Validation, frac: float, cap: int) -> dict[str, Any]:
    """Every baseline, the chosen learned configuration, the online policy and the shipped policy at one size."""
    args, start, n = ctx["args"], ctx["start"], ctx["n"]
    row: dict[str, Any] = {"fraction": frac, "capacity_bytes": cap}
    for label, cls, adm in LCS_BASELINES:
        row[f"lcs.{label}"] = lcs_run(cls, ctx["og"], cap, start, n, adm)
    for ref in LCS_REFERENCES:
        row[f"lcs.{ref}"] = lcs_run(ref, ctx["og"], cap, start, n)
    row["precache.lru"] = replay(LRUPolicy(), ctx["trace"], start, cap)
    row["precache.s3fifo (default)"] = replay(S3FIFOPolicy(capacity_bytes=cap), ctx["trace"], start, cap)
    row[SHIPPED_DEFAULT] = run_switch(ctx["trace"], start, cap)
    sel = val.run(cap)
    row["learned_selection"] = sel
    small = n - start <= args.ablation_max_requests
    labels = list(CANDIDATES) + list(ONLINE_CANDIDATES) if small else [sel["chosen"], "online"]
    shipped = sel["shipped"]
    if shipped["kind"] == "learned" and shipped["chosen"] not in labels:
        labels.append(shipped["chosen"])
    for label in dict.fromkeys(labels):
        row[f"precache.learned ({label})"] = run_candidate(ctx, label, cap)
    if small and ctx["hints"] is not None:  # the ablation: the online policy without the predictor's feature
        row["precache.learned (online, no predictor)"] = run_candidate(ctx, "online", cap, use_predictor=False)
    if small:
        row["precache.learned (online, objects objective)"] = run_candidate(ctx, "online", cap, objective="objects")
    row["precache.learned"] = {**row[f"precache.learned ({sel['chosen']})"], "config": sel["chosen"]}
    key = shipped["chosen"] if shipped["kind"] != "learned" else f"precache.learned ({shipped['chosen']})"
    row["shipped"] = {**{k: v for k, v in row[key].items() if k != "config"}, "config": shipped["chosen"],
                      "kind": shipped["kind"]}
    return row


def same_as_lru(rows: list[dict[str, Any]]) -> set[str]:
    """libCacheSim policies whose numbers equal LRU's at every size: not really running here (e.g. LRB or
    3L-Cache without their special build); excluded from the baselines and listed in the JSON."""
    names = {k for k in rows[0] if k.startswith("lcs.") and k != "lcs.LRU"}
    return {k for k in names if all(r[k]["miss_ratio"] == r["lcs.LRU"]["miss_ratio"] and
                                    r[k]["byte_miss_ratio"] == r["lcs.LRU"]["byte_miss_ratio"] for r in rows)}


def summarize(row: dict[str, Any], excluded: set[str]) -> dict[str, Any]:
    """The learned policy against the best fair baseline by byte miss ratio (tied within 0.001)."""
    refs = {f"lcs.{r}" for r in LCS_REFERENCES}
    baselines = [k for k, v in row.items() if isinstance(v, dict) and "byte_miss_ratio" in v
                 and (k.startswith("lcs.") or k in ("precache.lru", "precache.s3fifo (default)"))
                 and k not in refs and k not in excluded]
    best = min(baselines, key=lambda k: row[k]["byte_miss_ratio"])
    best_b = row[best]["byte_miss_ratio"]
    lb = row["precache.learned"]["byte_miss_ratio"]
    delta = lb - best_b
    sb = row["shipped"]["byte_miss_ratio"]
    ob = row["precache.learned (online)"]["byte_miss_ratio"]
    sw = row.get(SHIPPED_DEFAULT, {}).get("byte_miss_ratio")  # absent in results from before the switcher
    return {"best_baseline_by_bytes": best, "best_baseline_bmr": best_b, "learned_bmr": lb,
            "learned_config": row["precache.learned"]["config"],
            "learned_minus_best": delta, "verdict": _verdict(delta),
            "shipped_config": row["shipped"]["config"], "shipped_bmr": sb, "shipped_minus_best": sb - best_b,
            "shipped_verdict": _verdict(sb - best_b),
            "online_bmr": ob, "online_minus_best": ob - best_b, "online_verdict": _verdict(ob - best_b),
            **({"switch_bmr": sw, "switch_minus_best": sw - best_b, "switch_verdict": _verdict(sw - best_b)}
               if sw is not None else {}),
            "references": {r: row[f"lcs.{r}"]["byte_miss_ratio"] for r in LCS_REFERENCES}}


def _verdict(delta: float) -> str:
    return "tie" if abs(delta) <= 0.001 else "better" if delta < 0 else "worse"


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 26's goals over every (trace, size) point: learned better or tied at >= 10 of 12 and never
    worse by > 0.005; shipped never worse than the best baseline by > 0.005."""
    pts = [(name, r["fraction"], r["summary"]) for name, t in results.items() for r in t["sizes"]]
    n = len(pts)
    learned_ok = sum(s["verdict"] in ("better", "tie") for _, _, s in pts)
    return {"points": n,
            "learned_better_or_tied": learned_ok,
            "learned_worst_minus_best": max((s["learned_minus_best"] for _, _, s in pts), default=None),
            "online_better_or_tied": sum(s["online_verdict"] in ("better", "tie") for _, _, s in pts),
            "shipped_better_or_tied": sum(s["shipped_verdict"] in ("better", "tie") for _, _, s in pts),
            "shipped_worst_minus_best": max((s["shipped_minus_best"] for _, _, s in pts), default=None),
            "switch_better_or_tied": sum(s.get("switch_verdict") in ("better", "tie") for _, _, s in pts),
            "switch_worst_minus_best": max((s.get("switch_minus_best", -1.0) for _, _, s in pts), default=None),
            "goal": "learned better or tied (|delta| <= 0.001) at >= 10 of 12 points, never worse by > 0.005; "
                    "shipped never worse than the best baseline by > 0.005",
            "met": {"learned": learned_ok >= 10 and all(s["learned_minus_best"] <= 0.005 for _, _, s in pts),
                    "shipped": all(s["shipped_minus_best"] <= 0.005 for _, _, s in pts)}}


# LearnedPolicy configurations the validation slice chooses between, per trace and cache size
CANDIDATES: dict[str, dict[str, Any]] = {
    "sampled": {},  # LRB-style sampled eviction over all residents (the defaults)
    "probation": {"probation": 0.1},  # new entries first in a 10% probationary FIFO (S3-FIFO's small queue)
    "model-admission": {"admission": "model"},  # admit() scores the miss at once: learned reuse probability
    "model-admission+probation": {"admission": "model", "probation": 0.1},
    "seen-admission": {"admission": "seen"},  # a doorkeeper (admit on the second request), no inference
}


LEARNED_DEFAULT = "sampled"
"""The learned configuration kept unless another beats it on validation beyond the noise band: the
LRB-style sampled eviction with LearnedPolicy's defaults (no admission, no probation: the fewest options)."""
SHIPPED_DEFAULT = "precache.switch (default)"
"""The policy shipped unless a candidate beats it on validation beyond the noise band: the online
switcher (models/optimizer/switcher.py), which runs the cache's default heuristic (S3-FIFO, Yang et al.,
SOSP 2023) and steps aside online for a heuristic its shadow caches show doing clearly better."""


def run_switch(trace: CacheTrace, start: int, cap: int) -> dict[str, Any]:
    """The online switcher on the evaluation half, warmed (and free to switch) on the training part;
    its switches as ``[request count, policy]`` (requests it has seen, from the start of the trace)."""
    pol = SwitchingPolicy(capacity_bytes=cap)
    r: dict[str, Any] = dict(replay(pol, trace, start, cap))
    r["switches"] = [list(x) for x in pol.switches]
    r["final_policy"] = pol.current
    return r


def run_learned(model: OptimizerModel, trace: CacheTrace, start: int, cap: int,
                kwargs: dict[str, Any], order: str = "evict-first", bounds: list[int] | None = None) -> dict[str, Any]:
    """Replay ``trace`` through a fresh LearnedPolicy: ``[0, start)`` warms it uncounted, the rest counts."""
    clock = ManualClock(float(trace.times[0]))
    pol = LearnedPolicy(model, clock, **kwargs)
    r: dict[str, Any] = dict(replay(pol, trace, start, cap, clock, order, bounds=bounds))
    m = max(len(trace), 1)  # the policy scores during warm-up too: per replayed request
    r["us_per_request"] = 1e6 / r["requests_per_s"] if r["requests_per_s"] > 0 else math.inf
    r["rows_scored_per_request"] = pol.rows_scored / m
    r["rows_reused_per_request"] = pol.rows_reused / m
    r["inference_calls_per_request"] = pol.inference_calls / m
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synthetic-requests", type=int, default=1_000_000)
    ap.add_argument("--train-fraction", type=float, default=0.5)
    ap.add_argument("--sample-rate", type=float, default=1.0, help="fraction of requests turned into rows")
    ap.add_argument("--trees", type=int, default=80)
    ap.add_argument("--ttl-requests", type=int, default=300_000)
    ap.add_argument("--ablation-max-requests", type=int, default=200_000,
                    help="also run the learned policy without admission on traces up to this size")
    ap.add_argument("--only", default="", help="comma-separated trace names")
    ap.add_argument("--fractions", type=lambda v: [float(x) for x in v.split(",")], default=list(FRACTIONS),
                    help="cache sizes as fractions of the evaluation working set (split a long trace over "
                         "processes; bench/policy_merge.py joins the outputs)")
    ap.add_argument("--old-order", action="store_true",
                    help="also replay the learned policy in the old insert-then-evict order (the finding)")
    ap.add_argument("--out", default=str(RESULTS / "policies.json"))
    ap.add_argument("--no-predictor", action="store_true", help="no page-predictor hints for the online policy")
    ap.add_argument("--keep-others", action="store_true",
                    help="keep, from the existing --out file, the entries of this run's other traces")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    traces = load_traces(args.synthetic_requests)
    names = set(traces)
    if args.only:
        traces = {k: v for k, v in traces.items() if k in args.only.split(",")}
    results: dict[str, Any] = {}
    if args.keep_others and Path(args.out).exists():
        kept = json.loads(Path(args.out).read_text()).get("traces", {})
        # only traces this configuration produces (a synthetic entry of another size is dropped)
        results = {name: entry for name, entry in kept.items() if name in names and name not in traces}
    with tempfile.TemporaryDirectory(prefix="precache-bench-") as tmp:
        for name, trace in traces.items():
            if args.sample_rate >= 1.0 and len(trace) > 300_000:
                args_t = argparse.Namespace(**{**vars(args), "sample_rate": 300_000 / len(trace)})
            else:
                args_t = args
            results[name] = run_trace(name, trace, args_t, Path(tmp))
            Path(args.out).write_text(json.dumps({"traces": results, "goals": goals(results), "meta": meta()},
                                                 indent=1, default=float))
    plot_ttl(results, RESULTS / "policies_ttl.png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
