"""Replay benchmark: every configuration at three (L1, L2) sizes on both NASA parts and a 1M synthetic trace.

Run: ``nice .venv/bin/python bench/bench_replay.py [--synthetic N] [--out bench/results/replay.json]``.
Writes results incrementally (one trace at a time) and an HTML report beside the JSON. The fair stick
(issue 10): same bounded L1/L2, same origin draws and the same warm-up for every configuration.
Content changes (issue 26): the trace's own (NASA: a URL's full response with another size) or the
synthetic site's update process; ``--invalidate-share`` of them (0.5, the headline) reach the cache as
invalidations, the rest make copies stale: every row has ``stale_rate`` beside ``avg_load_ms``. The best
heuristic runs at every fixed TTL of the grid (``heuristic-ttl-*``, its frontier); ``full`` and the learned
rows are judged against the best fixed-TTL row no staler than themselves (``meta.vs_frontier``), and
``goals`` counts the issue's goals. The other shares (0 and 1) are replayed at the default size
(``invalidation_sweep``). Each trace records its wall time and peak RSS (``seconds``, ``peak_rss_mb``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from precache.sim.experiment import SPECIFIED_CLAIMS, Experiment, ExperimentConfig, run_experiment
from precache.sim.report import write_report
from precache.traces.model import Request
from precache.traces.reader import read_requests
from precache.traces.synthetic import SyntheticWorkload
from shared_traces import NASA_AUG, NASA_JUL

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def claims_row(exp: Experiment) -> dict[str, Any]:
    h = exp.headline()
    if h is None:
        return {}
    before, after = h.before, h.after
    return {
        "hit_rate": f"{before['hit_rate']:.1%} -> {after['hit_rate']:.1%}",
        "cold_starts": f"{h.cold_start_change:+.0%}",
        "avg_load_ms": f"{before['avg_load_ms']:.1f} -> {after['avg_load_ms']:.1f} ms",
        "accuracy": f"online HR@5 {after['online_hr5']:.1%}" if after["online_hr5"] is not None else "-",
        "preload_efficiency": f"{after['preload_efficiency']:.1%}" if after["preload_efficiency"] else "-",
        "misses_removed_by_warming": f"{h.misses_removed_by_warming:.1%}",
        "replay_speed": f"{after['replayed_per_second']:.0f} replayed req/s with ML "
                        f"({after['requests_per_second']:.0f} measured req/s)",
        "extra_origin": f"{after['extra_origin_requests']} req, {after['extra_origin_bytes'] / 1e6:.1f} MB",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "replay.json")
    ap.add_argument("--only", default="nasa-jul,nasa-aug,synthetic")
    ap.add_argument("--invalidate-share", type=float, default=0.5,
                    help="share of content changes the application invalidates (the headline)")
    ap.add_argument("--invalidate-sweep", default="0,1", help="other shares, at the default size")
    ap.add_argument("--keep-others", action="store_true",
                    help="keep the entries of traces not re-run from the existing --out file (each has its seconds)")
    args = ap.parse_args()
    traces = args.only.split(",")
    out: dict[str, Any] = {"claims": SPECIFIED_CLAIMS, "traces": {}}
    if args.keep_others and args.out.exists():
        kept = json.loads(args.out.read_text()).get("traces", {})
        out["traces"] = {name: entry for name, entry in kept.items() if name not in traces}
    exps: list[Experiment] = []
    for name in traces:
        t0 = time.perf_counter()
        updates: Iterable[tuple[float, str]] = ()
        sweep = tuple(float(x) for x in args.invalidate_sweep.split(",") if x)
        cfg = ExperimentConfig(invalidate_share=args.invalidate_share, invalidate_sweep=sweep)
        # generators: run_experiment holds the requests only until the trace is prepared (memory)
        if name == "nasa-jul":
            reqs: Iterable[Request] = read_requests(NASA_JUL)
        elif name == "nasa-aug":
            reqs = read_requests(NASA_AUG)
        else:
            wl = SyntheticWorkload(args.synthetic, seed=0)
            reqs, updates = wl.requests(), wl.updates()  # updates after the last request are dropped
            cfg = ExperimentConfig(sweep_max_events=100_000, invalidate_share=args.invalidate_share,
                                   invalidate_sweep=sweep)
        exp = run_experiment(reqs, name, cfg, updates=updates)
        del reqs
        exps.append(exp)
        out["traces"][name] = {**exp.as_json(), "vs_claims": claims_row(exp),
                               "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}
        out["goals"] = goals(out["traces"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1, default=str))
        print(f"== {name} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
        for size, run in exp.sizes.items():
            print(f"  size {size}: L1 {run.meta['l1_bytes']:,} B, L2 {run.meta['l2_bytes'] or 0:,} B")
            print_table(run.table())
            print_frontier(run.as_json()["meta"]["vs_frontier"])
            vs = run.as_json()["meta"]["vs_best_heuristic"]
            if vs:
                print(f"    full vs best heuristic ({vs['best_heuristic']}): avg load {vs['avg_load_ms']['best']:.1f}"
                      f" -> {vs['avg_load_ms']['full']:.1f} ms, origin misses {vs['origin_misses']['best']} -> "
                      f"{vs['origin_misses']['full']} ({vs['misses_removed']:.1%} removed), preload efficiency "
                      f"{fmt_opt(vs['preload_efficiency'])}, net extra origin {vs['net_extra_origin_requests']} req "
                      f"{vs['net_extra_origin_bytes'] / 1e6:.1f} MB, oracle gap closed "
                      f"{fmt_opt(vs.get('load_gap_closed'))}")
                off = vs.get("full_offline")
                if off:
                    print(f"    without the warmer's online layer (full-offline): load {off['avg_load_ms']:.1f} ms, "
                          f"origin misses {off['origin_misses']} ({off['misses_removed']:.1%} removed), preload "
                          f"efficiency {fmt_opt(off['preload_efficiency'])}")
        measured = claims_row(exp)
        for key, claim in SPECIFIED_CLAIMS.items():
            print(f"  {key:20} claim {claim:22} measured {measured.get(key, '-')}")
        for key in ("misses_removed_by_warming", "extra_origin"):
            print(f"  {key:27} measured {measured.get(key, '-')}")
        bd = exp.meta.get("miss_breakdown")
        if bd:
            print(f"  misses without warming {bd['misses']}: improvable {bd['improvable_misses']}, removed "
                  f"{bd['removed']} (pages {bd['removed_pages']}, assets {bd['removed_assets']}), added "
                  f"{bd['added']}, net {bd['removed_of_all_misses']:.1%} of all, "
                  f"{bd['removed_of_improvable']:.1%} of improvable")
            for r in bd["rows"]:
                print(f"    {r['class']:22} {r['misses']:7} ({r['share']:.1%})  removed {r['removed']:6} "
                      f"({r['removed_share']:.0%})  added {r['added']}")
        for r in exp.sweep:
            print(f"  sweep threshold {r['threshold']:.1f}: hit {r['hit_rate']:.3f} misses removed "
                  f"{r['misses_removed']:.1%} preload efficiency {r['preload_efficiency'] or 0:.1%} "
                  f"extra req {r['extra_origin_requests']}")
        for share, entry in exp.meta.get("invalidation_sweep", {}).items():
            print(f"  invalidated share {share} (size {exp.meta['size']}):")
            print_table(entry["table"])
            print_frontier(entry["vs_frontier"])
        write_report(exps, args.out.parent / "replay-report")
    print(json.dumps(out["goals"]["summary"], indent=1))


def fmt_opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def goals(traces: dict[str, Any]) -> dict[str, Any]:
    """Issue 26's replay goals at every (trace, size): ``full`` loads faster than every fixed-TTL row no
    staler than itself; the adaptive TTL is below the fixed-TTL frontier; the oracle is no slower than full."""
    points: list[dict[str, Any]] = []
    for name, entry in traces.items():
        for size, run in entry.get("sizes", {}).items():
            vs = run["meta"].get("vs_frontier", {}).get("rows", {})
            rows = {r["mode"]: r for r in run["table"]}
            if "full" not in vs:
                continue
            full, oracle = rows["full"], rows.get("oracle")
            points.append({
                "trace": name, "size": size,
                "full_beats_frontier": vs["full"]["below"],
                "full_vs": vs["full"]["best_fixed_ttl"],
                "adaptive_below_frontier": vs.get("adaptive-ttl", {}).get("below"),
                "adaptive_below_interpolated": vs.get("adaptive-ttl", {}).get("below_interpolated"),
                "oracle_ge_full": oracle is not None and oracle["avg_load_ms"] <= full["avg_load_ms"],
                "fastest_fixed_ttl": run["meta"]["vs_frontier"]["fastest_fixed_ttl"],
            })
    n = len(points)
    return {"points": points, "summary": {
        "points": n,
        "full_beats_frontier": sum(bool(p["full_beats_frontier"]) for p in points),
        "adaptive_below_frontier": sum(bool(p["adaptive_below_frontier"]) for p in points),
        "adaptive_below_interpolated_frontier": sum(bool(p["adaptive_below_interpolated"]) for p in points),
        "oracle_ge_full": sum(bool(p["oracle_ge_full"]) for p in points),
        "goal": "full beats the frontier at every point; adaptive below it at >= 7 of 9; oracle >= full everywhere"}}


def print_frontier(vs: dict[str, Any]) -> None:
    if not vs:
        return
    print(f"    fastest fixed TTL: {vs['fastest_fixed_ttl']} ({vs['fastest_fixed_ttl_avg_load_ms']:.1f} ms, "
          f"stale {vs['fastest_fixed_ttl_stale_rate']:.4f})")
    for mode, r in vs["rows"].items():
        against = "no fixed TTL is as fresh" if r["best_fixed_ttl"] is None else (
            f"{r['best_fixed_ttl']} {r['best_fixed_ttl_avg_load_ms']:.1f} ms at stale "
            f"{r['best_fixed_ttl_stale_rate']:.4f}")
        print(f"      {mode:21} {r['avg_load_ms']:6.1f} ms at stale {r['stale_rate']:.4f} vs {against}: "
              f"{'below' if r['below'] else 'NOT below'} the frontier")


def print_table(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(f"    {row['mode']:21} hit {row['hit_rate']:.3f} stale {row['stale_rate']:.4f} "
              f"hit|joined {row['hit_or_joined_rate']:.3f} "
              f"byte {row['byte_hit_rate']:.3f} avg {row['avg_load_ms']:6.1f} p95 {row['p95_load_ms']:6.1f} "
              f"origin misses {row['cold_starts']:7} eff {fmt_opt(row['preload_efficiency']):>6} "
              f"preload req {row['extra_origin_requests']:6} net {row.get('net_extra_origin_requests', '-')} "
              f"({row['replayed_per_second']:.0f} replayed req/s)")


if __name__ == "__main__":
    main()
