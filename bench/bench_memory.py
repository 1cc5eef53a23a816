"""Peak memory of ``precache demo`` (issue 9): the whole CLI run, in a child process, measured by the OS.

The goal: ``precache demo --requests 1000000`` peaks at <= 600 MB RSS (it was 1.83 GB). The figure is the
child's ``ru_maxrss`` (what ``/usr/bin/time -v`` reports as "Maximum resident set size"), next to its wall
and CPU time; the demo's own report is written to a temporary folder and its headline copied here, so a
memory change can be checked for an unchanged result (``tests/sim/test_sim_payloads.py`` and the optimizer
row tests check the mechanisms; a before/after ``report.json`` diff checks the whole).

Run: ``.venv/bin/python bench/bench_memory.py [--requests 1000000] [--no-sweep]`` (1M takes ~10 min on a
quiet core). Writes ``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
GOAL_MB = 600.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep (faster; not the goal's run)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory.json")
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("precache")
    with tempfile.TemporaryDirectory(prefix="precache-memory-") as tmp:
        cmd = [str(exe), "demo", "--requests", str(args.requests), "--out", str(Path(tmp) / "report")]
        if args.no_sweep:
            cmd.append("--no-sweep")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
                              env={**os.environ, "COLUMNS": "160"})
        wall = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"precache demo failed ({done.returncode}): {done.stderr[-2000:]}")
        report = json.loads((Path(tmp) / "report" / "report.json").read_text())
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    cpu = (usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)
    trace = next(iter(report["traces"].values()))
    full = next((row for row in trace["table"] if row["mode"] == "full"), None)
    result = {
        "command": f"precache demo --requests {args.requests}" + (" --no-sweep" if args.no_sweep else ""),
        "requests": args.requests, "sweep": not args.no_sweep,
        "peak_rss_mb": round(peak_mb, 1), "goal_mb": GOAL_MB, "goal_met": peak_mb <= GOAL_MB,
        "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
        "load_average": os.getloadavg(),
        "full_hit_rate": None if full is None else full["hit_rate"],
    }
    table = Table(title="precache demo: peak RSS (child process, ru_maxrss)")
    for col in ("requests", "sweep", "peak RSS MB", "goal MB", "met", "wall s", "CPU s", "load avg (1 min)"):
        table.add_column(col)
    table.add_row(f"{args.requests:,}", str(result["sweep"]), f"{peak_mb:,.0f}", f"{GOAL_MB:.0f}",
                  str(result["goal_met"]), f"{wall:,.0f}", f"{cpu:,.0f}", f"{result['load_average'][0]:.1f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
