"""A/B statistics under repeated peeking: A/A false-positive rates and power, sequential vs naive.

Each run feeds two Bernoulli arms (a 30% hit-style ratio) 200 observations per arm per batch and reads
both tests after every one of 20 batches, as someone refreshing a dashboard would. "naive" = a
fixed-horizon two-proportion z-test at alpha 0.05 declared significant at any look; "sequential" = the
mixture SPRT's always-valid p-value (tau = 0.02) below 0.05 at any look. The power rows add a known
effect to the treatment arm. Writes ``bench/results/experiments.json`` with
``sequential.false_positive_rate`` and ``naive.false_positive_rate``.

Run: ``.venv/bin/python bench/bench_experiments.py [--runs 2000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from precache.experiments.simulate import peeking

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "experiments.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="seeded runs per scenario (default 2000)")
    parser.add_argument("--looks", type=int, default=20, help="looks (batches) per run")
    parser.add_argument("--batch", type=int, default=200, help="observations per arm per batch")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
