"""Issue 26: the online switcher against its own candidates, on the validation protocol only.

    nice -n 10 .venv/bin/python bench/switcher_validation.py [--traces nasa-jul-extract] [--half-lives 2048]

Never touches the evaluation half: each trace's training part streams through every policy and the
validation slice's measured part (``policy_online.validation_slice``: the second half of the training
part, at most 100,000 requests) is scored, at the benchmark's capacities (a fraction of the evaluation
half's working set in bytes, as ``bench_policies.py``). Per point: each candidate of the switcher alone
(the best of them is the hindsight bar no online choice among them is promised to reach), and the
switcher at each half-life (the design's 2,048 first) with its number of switches. The figure of merit
is the switcher's byte miss ratio minus the best candidate's. Writes ``bench/results/switcher_validation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_policies import FRACTIONS, load_traces, replay  # noqa: E402
from policy_online import slice_trace, validation_slice  # noqa: E402
from precache.models.optimizer.labels import CacheTrace  # noqa: E402
from precache.models.optimizer.switcher import HALF_LIFE, SwitchingPolicy, candidates  # noqa: E402
from shared_traces import trace_names  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TRACES = ("nasa-jul-extract", "nasa-1aug", "cloudphysics", "synthetic-1000000")


def point(trace: CacheTrace, cap: int, half_lives: list[float]) -> dict[str, Any]:
    """Every candidate alone and the switcher at each half-life on the validation slice of ``trace``."""
    start = len(trace) // 2
    _, measured_from = validation_slice(start)
    part = slice_trace(trace, 0, start)
    alone = {name: replay(make(cap), part, measured_from, cap)["byte_miss_ratio"]
             for name, make in candidates().items()}
    best = min(alone, key=lambda name: alone[name])
    out: dict[str, Any] = {"capacity_bytes": cap, "alone": alone, "best_alone": best, "switcher": {}}
    for h in half_lives:
        pol = SwitchingPolicy(capacity_bytes=cap, half_life=h)
        bmr = replay(pol, part, measured_from, cap)["byte_miss_ratio"]
        out["switcher"][f"{h:g}"] = {"byte_miss_ratio": bmr, "minus_best_alone": bmr - alone[best],
                                     "switches": len(pol.switches), "final_policy": pol.current}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--traces", default=",".join(TRACES), help="comma-separated, of: " + ", ".join(TRACES))
    ap.add_argument("--half-lives", type=lambda v: [float(x) for x in v.split(",")],
                    default=[HALF_LIFE, 512.0, 8192.0], help="the switcher's half-lives, in requests")
    ap.add_argument("--out", type=Path, default=RESULTS / "switcher_validation.json")
    args = ap.parse_args()
    names = trace_names(ap, args.traces, TRACES)
    traces = load_traces(1_000_000 if "synthetic-1000000" in names else 0)
    doc: dict[str, Any] = {"half_lives": [f"{h:g}" for h in args.half_lives], "traces": {}}
    heads = " ".join(f"{'H=' + f'{h:g}':>16s}" for h in args.half_lives)
    print(f"{'trace':18s} {'cache':>6s} {'best alone':>22s} {heads}")
    for name in names:
        trace = traces[name]
        start = len(trace) // 2
        working_set = int(sum(dict(zip(trace.keys[start:], trace.sizes[start:].tolist(), strict=True)).values()))
        rows = []
        for frac in FRACTIONS:
            row = {"fraction": frac, **point(trace, max(1, int(working_set * frac)), args.half_lives)}
            rows.append(row)
            cells = " ".join(f"{s['minus_best_alone']:+.4f} ({s['switches']:>3d})" for s in row["switcher"].values())
            print(f"{name:18s} {frac:6.1%} {row['best_alone']:>13s} {row['alone'][row['best_alone']]:.4f} {cells}",
                  flush=True)
        doc["traces"][name] = {"validation_slice": list(validation_slice(start)), "sizes": rows}
    for h in doc["half_lives"]:
        deltas = [r["switcher"][h]["minus_best_alone"] for t in doc["traces"].values() for r in t["sizes"]]
        doc.setdefault("summary", {})[h] = {"mean_minus_best_alone": sum(deltas) / len(deltas),
                                            "worst_minus_best_alone": max(deltas)}
    print(json.dumps(doc["summary"]))
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
