"""Benchmark: every page predictor on every real trace with page sequences, one table.

Runs the evaluation protocol (``precache evaluate``) on the NASA July extract, NASA 1 Aug TSV,
BMS-WebView-1, MSNBC and the DIGINETICA sample with popularity, markov, ppm, sknn and -- when their
modules import -- attention and auto. Every test transition is scored (no sampling) unless
``--max-test-transitions`` is given; the sample size is then printed and stored. Results go to
``bench/results/predictor.json``.

    .venv/bin/python bench/bench_predictor.py [--models ...] [--traces nasa-jul,msnbc] [--max-test-transitions N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from precache.cli.predictor import run_evaluate
from precache.models.registry import predictor_class

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PRECACHE_SHARED_DATA", ROOT.parent / "shared" / "data"))
TRACES = {
    "nasa-jul": "nasa-http/NASA_access_log_small.gz",
    "nasa-aug1": "nasa-http/nasa_19950801.tsv.gz",
    "bms1": "bms-webview/BMSVIEW1.txt.gz",
    "msnbc": "msnbc-anonymous-web/msnbc990928.zip",
    "diginetica": "diginetica-sample/sample_train-item-views.csv.gz",
}
ALL_MODELS = ["popularity", "markov", "ppm", "sknn", "attention", "auto"]


def available(models: list[str], console: Console) -> list[str]:
    names = []
    for name in models:
        try:
            predictor_class(name)
            names.append(name)
        except (ValueError, TypeError) as exc:
            console.print(f"[yellow]skipping {name}: {exc}[/yellow]")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ALL_MODELS))
    parser.add_argument("--traces", default=",".join(TRACES))
    parser.add_argument("--max-test-transitions", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "predictor.json")
    args = parser.parse_args()
    console = Console(width=170)
    names = available([m.strip() for m in args.models.split(",") if m.strip()], console)
    results = []
    for key in [t.strip() for t in args.traces.split(",") if t.strip()]:
        path = DATA / TRACES[key]
        if not path.exists():
            console.print(f"[yellow]skipping {key}: {path} not found[/yellow]")
            continue
        started = time.perf_counter()
        result = run_evaluate(path, "auto", names, args.max_test_transitions, console)
        result["key"] = key
        result["seconds"] = time.perf_counter() - started
        results.append(result)
    summary = Table(title="HR@5 / ECE per trace (test transitions scored)")
    summary.add_column("model")
    for result in results:
        summary.add_column(f"{result['key']} ({result['models'][0]['transitions']:,})", justify="right")
    for name in names:
        cells = []
        for result in results:
            row = next(r for r in result["models"] if r["model"] == name)
            cells.append("error" if row["error"] else f"{row['hr5']:.3f} / {row['ece']:.3f}")
        summary.add_row(name, *cells)
    console.print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "max_test_transitions": args.max_test_transitions,
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=1, default=float), encoding="utf-8")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
