"""A/B statistics under repeated peeking: A/A false-positive rates and power, sequential vs naive.

Each run feeds two Bernoulli arms (a 30% hit-style ratio) 200 observations per arm per batch and reads
both tests after every one of 20 batches, as someone refreshing a dashboard would. "naive" = a
fixed-horizon two-proportion z-test at alpha 0.05 declared significant at any look; "sequential" = the
mixture SPRT's always-valid p-value (tau = 0.02) below 0.05 at any look. The power rows add a known
effect to the treatment arm. Writes ``bench/results/experiments.json`` with
``sequential.false_positive_rate`` and ``naive.false_positive_rate``.

The replay experiment (``replay`` in the JSON): a warming off/on experiment, arms assigned per session,
replayed through the real cache and warmer on the fair stick (issue 10: same TTL, bounded L1/L2 at the
"medium" size, same origin draws and warm-up) on each NASA trace, and on a 50,000-request synthetic site
for contrast. Both arms share one cache, as in production. Per trace: the readout (hit ratio per session
by the delta method, fixed-horizon and always-valid p-values, the verdict), ten looks during the replay
(with the p-value a test treating requests as independent would have shown), an A/A replay (both arms
warming) as a check, and the same trace replayed twice without the split (warming off for everyone vs on
for everyone): the difference warming makes when it serves every session, which the per-session split
underestimates because warmed pages also serve the control arm. ``--splits N`` repeats the A/B and an A/A
with N independent assignment seeds: the spread of the estimated difference across splits against the
mean standard error the readout reported (if the per-session variance were wrong, they would disagree).

Run: ``.venv/bin/python bench/bench_experiments.py [--runs 2000] [--only peeking,replay]``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from precache.experiments.model import Arm, Experiment
from precache.experiments.simulate import peeking
from shared_traces import NASA_AUG, NASA_JUL

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "experiments.json"


def _splits(trace: Any, base: Any, config: Any, predictor: Any, assets: Any, n: int) -> dict[str, Any]:
    from precache.sim.ab_replay import replay_experiment

    found: dict[str, list[float]] = {"ab": [], "ab_se": [], "aa": [], "aa_se": []}
    for seed in range(n):
        for kind, arms in (("ab", (Arm("off", 1), Arm("on", 1))),
                           ("aa", (Arm("a", 1, {"warming": True}), Arm("b", 1, {"warming": True})))):
            experiment = Experiment(f"split-{kind}", "warming", arms, mde=0.02, seed=f"{kind}-{seed}").validate()
            _, _, out = replay_experiment(trace, experiment, base, config, predictor, assets)
            fixed = out["arms"][arms[1].name]["metrics"]["hits"].get("fixedHorizon")
            if fixed is not None:
                found[kind].append(fixed["diff"])
                found[f"{kind}_se"].append(fixed["se"])
    if len(found["ab"]) < 2 or len(found["aa"]) < 2:
        return {"splits": n, "status": "insufficient data"}
    return {"splits": n, "ab_mean_diff": statistics.mean(found["ab"]), "ab_sd_diff": statistics.stdev(found["ab"]),
            "ab_mean_se": statistics.mean(found["ab_se"]), "aa_mean_diff": statistics.mean(found["aa"]),
            "aa_sd_diff": statistics.stdev(found["aa"]), "aa_mean_se": statistics.mean(found["aa_se"])}


def _replay_trace(name: str, requests: list[Any], updates: list[tuple[float, str]], splits: int) -> dict[str, Any]:
    from precache.models import build_predictor
    from precache.sim.ab_replay import replay_experiment
    from precache.sim.origin import LatencyModel
    from precache.sim.replay import Mode, ReplayConfig, replay
    from precache.sim.workload import prepare
    from precache.traces.paths import normalize_path
    from precache.warming.assets import AssetModel

    started = time.perf_counter()
    trace = prepare(requests, name, 0.5, 0.1, updates=updates)
    predictor = build_predictor("ppm")
    predictor.fit(trace.train, trace.validation)
    assets = AssetModel(normalize=normalize_path).fit(trace.train)
    distinct = sum(trace.sizes.get(k, 0) for k in set(trace.events.keys))
    config = ReplayConfig(l1_bytes=max(1, int(distinct * 0.05)), l2_bytes=max(1, int(distinct * 0.30)),
                          latency=LatencyModel.calibrated(trace.page_sizes, target=0.12))
    full = Mode("full", warming="predictor")
    ab = Experiment(f"{name}-warming", "warming", (Arm("off", 1), Arm("on", 1)), mde=0.02).validate()
    _, arms, out = replay_experiment(trace, ab, full, config, predictor, assets)
    aa = Experiment(f"{name}-aa", "warming", (Arm("on-a", 1, {"warming": True}), Arm("on-b", 1, {"warming": True})),
                    mde=0.02, seed="aa").validate()
    _, _, aa_out = replay_experiment(trace, aa, full, config, predictor, assets)
    everyone = {mode.name: replay(trace, mode, config, predictor, assets).summary()
                for mode in (Mode("heuristic"), full)}
    on = out["arms"]["on"]
    aa_hits = aa_out["arms"]["on-b"]["metrics"]["hits"]
    return {
        "requests": len(requests), "measured": trace.measured, "readout": out,
        "per_arm": {n: {"sessions": a.sessions, "requests": a.hits.trials, "hit_rate": a.hits.successes / a.hits.trials
                        if a.hits.trials else None, "avg_load_ms": a.latency_ms.mean,
                        "origin_requests_per_session": a.origin_requests.mean,
                        "origin_bytes_per_session": a.origin_bytes.mean,
                        "preloads": a.preloads.trials, "preloads_used": a.preloads.successes} for n, a in arms.items()},
        "ab_hit_rate_diff": on["metrics"]["hits"].get("fixedHorizon", {}).get("diff"),
        "verdict": on["verdict"],
        "aa": {"diff": aa_hits.get("fixedHorizon", {}).get("diff"), "p_value": aa_hits.get("fixedHorizon", {}).get(
            "pValue"), "always_valid_p": aa_hits.get("sequential", {}).get("pValue"),
            "verdict": aa_out["arms"]["on-b"]["verdict"]},
        "everyone": {"hit_rate_off": everyone["heuristic"]["hit_rate"], "hit_rate_on": everyone["full"]["hit_rate"],
                     "avg_load_ms_off": everyone["heuristic"]["avg_load_ms"],
                     "avg_load_ms_on": everyone["full"]["avg_load_ms"],
                     "hit_rate_diff": everyone["full"]["hit_rate"] - everyone["heuristic"]["hit_rate"]},
        "splits": _splits(trace, full, config, predictor, assets, splits) if splits else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_replays(traces: list[str], synthetic: int, splits: int) -> dict[str, Any]:
    from precache.traces.reader import read_requests
    from precache.traces.synthetic import SyntheticWorkload

    results: dict[str, Any] = {}
    for name in traces:
        updates: list[tuple[float, str]] = []
        if name == "nasa-jul":
            requests = list(read_requests(NASA_JUL))
        elif name == "nasa-aug":
            requests = list(read_requests(NASA_AUG))
        else:
            workload = SyntheticWorkload(synthetic, seed=0)
            requests = list(workload.requests())
            updates = [u for u in workload.updates() if u[0] <= requests[-1].time]
            name = f"synthetic-{synthetic}"
        results[name] = _replay_trace(name, requests, updates, splits)
    return results


def replay_table(results: dict[str, Any]) -> Table:
    table = Table(title="Warming off vs on, arms per session, one shared cache (fair stick, medium size)")
    for col in ("trace", "sessions off/on", "hit ratio off -> on (A/B)", "95% CI (per session)", "p fixed",
                "p always-valid", "verdict", "first-look p: per request / per session", "A/A p",
                "everyone off -> on", "origin req/session off -> on", "splits: sd of diff / mean se"):
        table.add_column(col)
    for name, r in results.items():
        hits = r["readout"]["arms"]["on"]["metrics"]["hits"]
        fh, seq = hits.get("fixedHorizon", {}), hits.get("sequential", {})
        first: dict[str, Any] = next((look for look in r["readout"]["looks"] if "fixedPValue" in look), {})
        arms, ev = r["per_arm"], r["everyone"]
        table.add_row(
            name, f"{arms['off']['sessions']}/{arms['on']['sessions']}",
            f"{arms['off']['hit_rate']:.3f} -> {arms['on']['hit_rate']:.3f}",
            f"[{fh.get('ciLow', float('nan')):+.3f}, {fh.get('ciHigh', float('nan')):+.3f}]",
            f"{fh.get('pValue', float('nan')):.3f}", f"{seq.get('pValue', float('nan')):.3f}", r["verdict"],
            f"{first.get('requestLevelPValue') or float('nan'):.4f} / {first.get('fixedPValue', float('nan')):.4f}",
            f"{r['aa']['p_value']:.3f}", f"{ev['hit_rate_off']:.3f} -> {ev['hit_rate_on']:.3f}",
            f"{arms['off']['origin_requests_per_session']:.2f} -> {arms['on']['origin_requests_per_session']:.2f}",
            f"{sp['ab_sd_diff']:.4f} / {sp['ab_mean_se']:.4f} (A/A {sp['aa_sd_diff']:.4f} / {sp['aa_mean_se']:.4f})"
            if (sp := r.get("splits")) and "ab_sd_diff" in sp else "-")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="seeded runs per scenario (default 2000)")
    parser.add_argument("--looks", type=int, default=20, help="looks (batches) per run")
    parser.add_argument("--batch", type=int, default=200, help="observations per arm per batch")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", default="peeking,replay", help="peeking and/or replay")
    parser.add_argument("--traces", default="nasa-jul,nasa-aug,synthetic", help="replay traces")
    parser.add_argument("--synthetic", type=int, default=50_000, help="requests of the synthetic trace")
    parser.add_argument("--splits", type=int, default=20, help="A/B and A/A repeats with other seeds (0: none)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    if "replay" in parts:
        started = time.perf_counter()
        replays = run_replays(args.traces.split(","), args.synthetic, args.splits)
        Console(width=250).print(replay_table(replays))
        previous["replay"] = {"config": {"sizes": {"l1_share": 0.05, "l2_share": 0.30}, "ttl": 3600.0,
                                         "predictor": "ppm", "threshold": 0.7, "mde": 0.02, "alpha": 0.05,
                                         "splits": args.splits},
                              "traces": replays, "seconds": round(time.perf_counter() - started, 1)}
        if "peeking" not in parts:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(previous, indent=1, default=str) + "\n")
            Console().print(f"wrote {args.out}")
            return
    alpha, tau, base = 0.05, 0.02, 0.3
    started = time.perf_counter()
    aa = peeking(args.runs, args.looks, args.batch, base, 0.0, alpha, tau, seed=11)
    powers = {effect: peeking(args.runs, args.looks, args.batch, base, effect, alpha, tau, seed=12)
              for effect in (0.02, 0.03, 0.05)}
    se = math.sqrt(alpha * (1 - alpha) / args.runs)
    table = Table(title=f"A/B tests read after each of {args.looks} batches of {args.batch}/arm, {args.runs} runs")
    for col in ("scenario", "naive (any look)", "sequential mSPRT (any look)"):
        table.add_column(col, justify="right" if col != "scenario" else "left")
    table.add_row("A/A false-positive rate", f"{aa.naive_rate:.3f}", f"{aa.sequential_rate:.3f}")
    for effect, res in powers.items():
        table.add_row(f"power, +{effect:.2f} on {base:.2f}", f"{res.naive_rate:.3f}", f"{res.sequential_rate:.3f}")
    Console().print(table)
    Console().print(f"alpha {alpha}; alpha + 2 SE = {alpha + 2 * se:.4f}")
    result = {
        "config": {"runs": args.runs, "looks": args.looks, "batch_per_arm": args.batch, "alpha": alpha, "tau": tau,
                   "baseline_rate": base},
        "sequential": {"false_positive_rate": aa.sequential_rate,
                       "power": {f"{e:.2f}": r.sequential_rate for e, r in powers.items()}},
        "naive": {"false_positive_rate": aa.naive_rate, "power": {f"{e:.2f}": r.naive_rate for e, r in powers.items()}},
        "alpha_plus_2se": alpha + 2 * se,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    if "replay" in previous:
        result["replay"] = previous["replay"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
