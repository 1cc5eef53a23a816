"""Trace-reading throughput: CLF/TSV parse rate on the real NASA logs and a 1M-request synthetic CLF log,
and MSNBC (4.7M clicks) loaded into sessions. Baseline in the same run: a textbook regex + ``strptime``
parser. Writes ``bench/results/traces.json``.

Run: ``.venv/bin/python bench/bench_traces.py [--synthetic 1000000]``. Rates use process CPU time (one core,
fair on a shared machine) and wall time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from precache.traces import Request, SyntheticWorkload, read_requests, read_sessions
from shared_traces import MSNBC, NASA_AUG, NASA_JUL, SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "traces.json"

_NAIVE = re.compile(r'(\S+) (\S+) (\S+) \[([^\]]+)\] "(\S+) (\S+)(?: \S+)?" (\d{3}) (\d+|-)')


def naive_parse(path: Path) -> int:
    """Baseline: what a first attempt looks like (regex + strptime per line)."""
    count = 0
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = _NAIVE.match(line)
            if match is None:
                continue
            host, _, _, stamp, method, target, status, size = match.groups()
            moment = datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp()
            Request(moment, host, target, method, int(status), 0 if size == "-" else int(size))
            count += 1
    return count


def timed(fn: Callable[[], int], repeat: int = 1) -> dict[str, float]:
    """Best of ``repeat`` runs: records, CPU seconds, wall seconds."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        records = fn()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if not best or cpu < best["cpu_s"]:
            best = {"records": records, "cpu_s": cpu, "wall_s": wall}
    best["per_s_cpu"] = best["records"] / best["cpu_s"] if best["cpu_s"] else 0.0
    best["per_s_wall"] = best["records"] / best["wall_s"] if best["wall_s"] else 0.0
    return best


def count_requests(path: Path, format: str = "auto") -> int:
    return sum(1 for _ in read_requests(path, format=format))


def write_synthetic_clf(n: int, path: Path) -> int:
    stamp_cache: dict[int, str] = {}
    with path.open("w", encoding="utf-8") as out:
        for r in SyntheticWorkload(n, seed=0).requests():
            second = int(r.time)
            stamp = stamp_cache.get(second)
            if stamp is None:
                if len(stamp_cache) > 10_000:
                    stamp_cache.clear()
                stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
                stamp_cache[second] = stamp
            out.write(f'{r.client} - - [{stamp}] "{r.method} {r.path} HTTP/1.1" {r.status} {r.size}\n')
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--synthetic", type=int, default=1_000_000, help="synthetic CLF log size")
    args = parser.parse_args()
    console = Console(width=130)
    rows: dict[str, dict[str, float]] = {}
    nasa_jul = NASA_JUL
    nasa_aug = NASA_AUG
    msnbc = MSNBC
    if nasa_jul.exists():
        rows["baseline regex+strptime, NASA Jul CLF"] = timed(lambda: naive_parse(nasa_jul), repeat=3)
        rows["read_requests, NASA Jul CLF (10k)"] = timed(lambda: count_requests(nasa_jul), repeat=5)
        rows["read_requests, NASA 1 Aug TSV (31k)"] = timed(lambda: count_requests(nasa_aug), repeat=3)
    else:
        console.print(f"[yellow]{SHARED_DATA} absent: real-trace rows skipped[/]")
    rows["SyntheticWorkload generation"] = timed(
        lambda: sum(1 for _ in SyntheticWorkload(args.synthetic, seed=0).requests())
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "synthetic.log"
        write_synthetic_clf(args.synthetic, log)
        rows[f"read_requests, synthetic CLF ({args.synthetic:,})"] = timed(lambda: count_requests(log, "clf"))
    if msnbc.exists():
        rows["read_sessions, MSNBC (989,818 sessions)"] = timed(lambda: len(read_sessions(msnbc)))
    table = Table(title="precache trace reading (records/s on one core)")
    for column in ("measure", "records", "CPU s", "wall s", "records/s (CPU)", "records/s (wall)"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name, row in rows.items():
        table.add_row(name, f"{row['records']:,.0f}", f"{row['cpu_s']:.2f}", f"{row['wall_s']:.2f}",
                      f"{row['per_s_cpu']:,.0f}", f"{row['per_s_wall']:,.0f}")
    console.print(table)
    payload = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "goals": {"clf_lines_per_s": 250_000, "msnbc_seconds": 10.0},
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
