"""Benchmark: one full training pipeline run per real trace, and what the gate decided (issue 13).

For every visible trace with page sequences (NASA July extract, NASA 1 Aug, BMS-WebView-1, MSNBC,
DIGINETICA sample), in a fresh registry:

1. **first run** -- ``modelType all`` (the cache optimizer too where the trace has requests: the NASA logs),
   page predictor ``auto``, no target: collect → features → train → evaluate → gate → register → activate,
   training in the worker process. Its wall time is the figure the issue asks for; the baseline measured in
   the same run is the learning work inside that run (features, fit, scoring the candidate and the active
   model), so ``overhead`` = total / work is what the pipeline machinery (worker process start, collect,
   verification, copies, backups) costs on top.
2. **retrain** -- a Markov candidate (and a fresh cache optimizer) with ``targetAccuracy`` ``--target``
   (default 0.5): the gate checks the target and compares with the active model on the same latest slice
   (tolerance 0.01). Its decisions, with reasons, are the second table.

MSNBC scores its first ``--msnbc-test`` test transitions and caps attention training at
``--msnbc-seconds`` (as ``bench_predictor.py`` does). The machine is shared: read times as of this run.

    nice -n 10 .venv/bin/python bench/bench_pipeline.py [--traces nasa-aug,msnbc] [--target 0.5]
    .venv/bin/python bench/bench_pipeline.py --report     # the tables again, from bench/results/pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from precache.registry import ModelRegistry
from precache.training import TraceSource, TrainingConfig, TrainRequest, run_pipeline
from shared_traces import SESSION_TRACES

ROOT = Path(__file__).resolve().parents[1]
TIMED = ("nasa-aug", "msnbc")


def config_for(key: str, args: argparse.Namespace, **extra: Any) -> TrainingConfig:
    big = key == "msnbc"
    return TrainingConfig(max_test_transitions=args.msnbc_test if big else None,
                          attention_max_seconds=args.msnbc_seconds if big else None,
                          timeout_seconds=args.timeout, **extra)


WORK = ("features", "fit", "evaluate", "score_active")


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """A run's JSON plus the baseline measured inside it: the seconds spent building features, fitting,
    and scoring the candidate and the active model (the learning work any pipeline must do), and
    ``overhead`` = total / that (what the worker process, collect, verification, copies and backups add)."""
    work = sum(o["seconds"].get(stage, 0.0) for o in run["outcomes"] for stage in WORK)
    return {**run, "work_seconds": work, "overhead": run["seconds"] / work if work > 0 else None}


def bench_trace(key: str, path: Path, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="precache-bench-pipeline-") as tmp:
        registry = ModelRegistry(Path(tmp) / "models", Path(tmp) / "backups")
        source = [TraceSource(str(path))]
        console.print(f"[{key}] first run (auto + cache optimizer, no target)")
        first = run_pipeline(TrainRequest("all", source, config=config_for(key, args, predictor="auto")), registry,
                             progress=lambda m: console.print(f"  {m}"))
        console.print(f"[{key}] retrain (markov + cache optimizer, target {args.target})")
        retrain = run_pipeline(
            TrainRequest("all", source, config=config_for(key, args, predictor="markov",
                                                          target_accuracy=args.target)),
            registry, progress=lambda m: console.print(f"  {m}"))
        return {"trace": str(path), "first": summary(first.as_dict()), "retrain": summary(retrain.as_dict()),
                "active": {name: (registry.pointer(name) or {}).get("version") for name in ("page-predictor",
                                                                                           "cache-optimizer")}}


def tables(results: dict[str, Any], console: Console) -> None:
    timing = Table(title="one full pipeline run (first: auto + cache optimizer; retrain: markov + cache optimizer)")
    for column in ("trace", "run", "sessions", "requests", "total s", "collect s", "learning work s", "overhead ×"):
        timing.add_column(column, justify="left" if column in ("trace", "run") else "right")
    for key, r in results.items():
        for run in ("first", "retrain"):
            f = summary(r[run])
            timing.add_row(key, run, f"{f['data_span']['sessions']:,}", f"{f['data_span']['requests']:,}",
                           f"{f['seconds']:.1f}", f"{f['collect_seconds']:.1f}", f"{f['work_seconds']:.1f}",
                           f"{f['overhead']:.2f}" if f["overhead"] else "-")
    console.print(timing)
    gate = Table(title="gate decisions (metric on the latest held-out slice; tolerance 0.01)")
    for column in ("trace", "run", "model", "candidate", "metric", "score", "active", "target", "outcome", "reason"):
        gate.add_column(column, justify="right" if column in ("score", "active", "target") else "left")
    for key, r in results.items():
        for run in ("first", "retrain"):
            for o in r[run]["outcomes"]:
                g = o["gate"] or {}
                model = ("-" if o["status"] == "skipped" else "auto" if run == "first" and o["name"] == "page-predictor"
                         else "markov" if o["name"] == "page-predictor" else "lightgbm")
                gate.add_row(key, run, o["name"], model,
                             g.get("metric", "-"), f"{g['candidate']:.4f}" if g else "-",
                             f"{g['active']:.4f}" if g.get("active") is not None else "-",
                             f"{g['target']:.2f}" if g.get("target") is not None else "-", o["status"],
                             o["reason"][:90])
    console.print(gate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default="nasa-aug,msnbc,nasa-jul,bms,diginetica",
                        help="comma-separated trace keys (the timed ones first)")
    parser.add_argument("--target", type=float, default=0.5, help="targetAccuracy of the retrain run")
    parser.add_argument("--msnbc-test", type=int, default=50_000, help="MSNBC: test transitions scored")
    parser.add_argument("--msnbc-seconds", type=float, default=300.0, help="MSNBC: attention training cap")
    parser.add_argument("--timeout", type=float, default=3600.0, help="training worker timeout")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pipeline.json")
    parser.add_argument("--report", action="store_true", help="only print the tables of an existing --out file")
    args = parser.parse_args()
    console = Console(width=170)
    if args.report:
        tables(json.loads(args.out.read_text(encoding="utf-8"))["traces"], console)
        return 0
    results: dict[str, Any] = {}
    missing = []
    started = time.perf_counter()
    for key in [k.strip() for k in args.traces.split(",") if k.strip()]:
        if key not in SESSION_TRACES:
            parser.error(f"unknown trace {key!r}; known: {', '.join(SESSION_TRACES)}")
        path = SESSION_TRACES[key]
        if not path.exists():
            missing.append(key)
            continue
        results[key] = bench_trace(key, path, args, console)
        write(args, results, missing, started)  # after every trace: a long run keeps what it measured
    tables(results, console)
    console.print(f"wrote {args.out}")
    return 0


def write(args: argparse.Namespace, results: dict[str, Any], missing: list[str], started: float) -> None:
    out = {
        "benchmark": "pipeline", "command": "bench/bench_pipeline.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "shared": True},
        "target_accuracy": args.target, "timed_traces": [k for k in TIMED if k in results],
        "missing_traces": missing, "seconds": time.perf_counter() - started, "traces": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
