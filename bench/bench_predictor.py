"""Benchmark: every page predictor on every real trace with page sequences -- the table of issues 4 and 18.

Traces: NASA July extract, NASA 1 Aug, BMS-WebView-1, MSNBC, DIGINETICA sample. Models: popularity,
markov-count (plain first-order counts), markov (Witten-Bell smoothed toward popularity), ppm, sknn,
attention and auto. Page filter: every page of the sessions the trace reader yields (for logs, what the
sessionizer keeps as pages: successful GETs that are not images/css/js); no model drops pages except the
attention network, which leaves out pages seen only once in training (they count as misses for it).
Protocol (:mod:`precache.evaluation`): time-ordered sessions, first 80% train (its last 10% is the
validation slice, the only data any choice looks at), last 20% test; the first ``--max-test-transitions``
test transitions are scored (all of them on every trace but MSNBC).

The auto model is fitted once per trace; markov-count, markov, ppm, sknn and attention are its fitted
candidates (the same objects auto chose among, baselines refit on train + validation), so the attention
network is trained once and the MSNBC "pipeline" is read + split + every fit + choice + save under the
attention time cap (``--msnbc-seconds``). Auto only ships candidates whose files fit 1 MB. "best
baseline" is the best *test* HR@5 of markov-count, markov and ppm (the issue's bar); auto's gain is
measured against it. The shipped auto directory is loaded into ``InferenceEngine`` for the batch-1
latency (p50/p99 of 2,000 single queries, after 50 warm-up queries).

    .venv/bin/python bench/bench_predictor.py [--traces nasa-jul,msnbc] [--msnbc-seconds 420]

Timing goals only (``--timing``; run it on an idle machine): the auto pipeline (read + split + fit + choice +
save) and ``InferenceEngine`` batch-1 p50/p99 of the shipped auto, per trace, without the accuracy rows;
written to ``bench/results/predictor_timing.json`` so the accuracy results stay as they are:

    .venv/bin/python bench/bench_predictor.py --timing --traces msnbc,bms
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from precache.evaluation import evaluate, measure_latency, sample_histories, time_split
from precache.inference import InferenceEngine
from precache.models.auto import AutoPredictor, saved_size
from precache.models.base import PagePredictorBase
from precache.models.kinds import build_predictor
from precache.traces import read_sessions
from shared_traces import SESSION_TRACES

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["popularity", "markov-count", "markov", "ppm", "sknn", "attention", "auto"]
BARS = ("markov-count", "markov", "ppm")
BUDGET = 1_000_000
GOALS = ("auto >= best of (markov-count, markov, ppm) + 2 pts HR@5 on BMS-WebView-1 and MSNBC; attention within "
         "2 pts of the better Markov on BMS-WebView-1; auto <= 1 MB on disk; InferenceEngine batch-1 p99 <= 1 ms; "
         "MSNBC pipeline <= 600 s on 2 cores; auto ECE <= 0.05 on every trace with >= 300 test transitions")


def row_for(model: PagePredictorBase, split: Any, histories: list[list[str]], fit_seconds: float,
            max_transitions: int | None) -> dict[str, Any]:
    scores = evaluate(model, split.test, model.vocabulary_size, max_transitions=max_transitions)
    with tempfile.TemporaryDirectory(prefix="precache-bench-") as tmp:
        model.save(tmp)
        size = model.size_bytes(tmp)
    p50, p99, throughput = measure_latency(model, histories)
    row: dict[str, Any] = dict(scores.as_dict())
    row.update(fit_seconds=round(fit_seconds, 2), size_bytes=size, p50_us=p50, p99_us=p99,
               throughput_256=throughput, vocabulary_size=model.vocabulary_size)
    return row


def engine_latency(directory: Path, histories: list[list[str]]) -> dict[str, float]:
    """Batch-1 p50/p99 of ``InferenceEngine.predict`` on the saved directory (what a service runs), in wall
    time and in this thread's CPU time: on a shared, overloaded machine the wall-time p99 is the scheduler's
    time slice (a descheduled query waits tens of ms), the CPU-time p99 is what the query itself costs."""
    engine = InferenceEngine.load(directory)
    for history in histories[:50]:
        engine.predict(history, 10)
    wall, cpu = [], []
    for history in histories[:2000]:
        started, started_cpu = time.perf_counter(), time.thread_time()
        engine.predict(history, 10)
        wall.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
    out = {}
    for label, samples in (("engine", wall), ("engine_cpu", cpu)):
        samples.sort()
        out[f"{label}_p50_us"] = samples[len(samples) // 2] * 1e6
        out[f"{label}_p99_us"] = samples[min(len(samples) - 1, int(0.99 * len(samples)))] * 1e6
    return out


def auto_latency(auto: AutoPredictor) -> dict[str, Any]:
    """Auto's latency budget at fit time: the budget, the shipped choice's estimated batch-1 CPU µs (sum of
    its components' costs + the combine; see precache.models.latency) and the candidates it refused."""
    latency = auto.metrics.get("latency", {})
    return {"budget_us": latency.get("budget_us"),
            "choice_estimate_us": latency.get("estimate_us", {}).get(auto.choice),
            "component_us": latency.get("component_us"), "over_latency_budget": latency.get("over_latency_budget")}


def bench_trace(key: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    sessions = read_sessions(SESSION_TRACES[key])
    split = time_split(sessions)
    read_seconds = time.perf_counter() - started
    train_transitions = sum(max(0, len(s.pages) - 1) for s in split.train)
    test_transitions = sum(max(0, len(s.pages) - 1) for s in split.test)
    console.print(f"{key}: {len(sessions):,} sessions, {train_transitions:,} training transitions "
                  f"(read {read_seconds:.1f} s)")
    histories = sample_histories(split.test, 2000)
    rows: dict[str, dict[str, Any]] = {}
    attention_options: dict[str, Any] = {"threads": args.threads, "seed": 0}
    if key == "msnbc":
        attention_options.update(max_seconds=args.msnbc_seconds, threads=args.msnbc_threads)
    auto = AutoPredictor(attention_options=attention_options, size_budget=BUDGET)
    fit_started = time.perf_counter()
    auto.fit(split.train, split.validation)
    auto_fit = time.perf_counter() - fit_started
    with tempfile.TemporaryDirectory(prefix="precache-bench-") as tmp:
        auto.save(tmp)
        pipeline_seconds = time.perf_counter() - started  # read + split + every fit + choice + save
        engine = engine_latency(Path(tmp), histories)
    console.print(f"{key}: auto chose {auto.choice} in {auto_fit:.0f} s: {auto.metrics['reason']}")
    if args.timing:
        return {"trace": str(SESSION_TRACES[key]), "pipeline_seconds": round(pipeline_seconds, 1),
                "auto_choice": auto.choice, "auto_fit_seconds": round(auto_fit, 1),
                "fit_seconds": auto.metrics["fit_seconds"], "auto_size_bytes": saved_size(auto),
                "auto_latency": auto_latency(auto), **engine}
    popularity = build_predictor("popularity")  # after the pipeline clock: not part of what auto does
    fit_started = time.perf_counter()
    popularity.fit(split.train, split.validation)
    rows["popularity"] = row_for(popularity, split, histories, time.perf_counter() - fit_started,
                                 args.max_test_transitions)
    for name in ("markov-count", "markov", "ppm", "sknn", "attention"):
        model = auto.fitted_candidates.get(name)
        if model is not None:
            rows[name] = row_for(model, split, histories, auto.metrics["fit_seconds"].get(name, float("nan")),
                                 args.max_test_transitions)
    rows["auto"] = row_for(auto, split, histories, auto_fit, args.max_test_transitions)
    rows["auto"].update(engine)
    for name, row in rows.items():
        row["model"] = name
    bar = max(BARS, key=lambda m: rows[m]["hr5"])
    attention = auto.fitted_candidates.get("attention")
    markov_best = max(rows["markov-count"]["hr5"], rows["markov"]["hr5"])
    return {
        "trace": str(SESSION_TRACES[key]), "sessions": len(sessions), "train_sessions": len(split.train),
        "validation_sessions": len(split.validation), "test_sessions": len(split.test),
        "train_transitions": train_transitions, "test_transitions": test_transitions,
        "test_transitions_scored": rows["auto"]["transitions"],
        "auto_choice": auto.choice, "auto_reason": auto.metrics["reason"],
        "auto_validation": auto.metrics["validation"], "auto_calibration": auto.metrics["calibration"],
        "auto_over_budget": auto.metrics["over_budget"], "auto_component_bytes": auto.metrics["component_bytes"],
        "auto_latency": auto_latency(auto), "auto_edge_fallback": auto.metrics.get("edge_fallback"),
        "attention_training": None if attention is None else {
            k: v for k, v in attention.metrics.get("training", {}).items() if k != "history"},
        "pipeline_seconds": round(pipeline_seconds, 1),
        "best_baseline": bar, "best_baseline_hr5": rows[bar]["hr5"],
        "auto_minus_best_baseline_hr5": rows["auto"]["hr5"] - rows[bar]["hr5"],
        "attention_minus_markov_hr5": None if "attention" not in rows else rows["attention"]["hr5"] - markov_best,
        "models": [rows[m] for m in MODELS if m in rows],
    }


def goals(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    def auto_row(r: dict[str, Any]) -> dict[str, Any]:
        return next(m for m in r["models"] if m["model"] == "auto")

    out: dict[str, Any] = {"definition": GOALS}
    out["auto_beats_best_baseline_by_2pts"] = {
        k: r["auto_minus_best_baseline_hr5"] >= 0.02 for k, r in results.items() if k in ("bms", "msnbc")}
    if "bms" in results and results["bms"]["attention_minus_markov_hr5"] is not None:
        out["attention_within_2pts_of_markov_on_bms"] = results["bms"]["attention_minus_markov_hr5"] >= -0.02
    out["auto_le_1MB"] = {k: auto_row(r)["size_bytes"] <= BUDGET for k, r in results.items()}
    out["engine_batch1_p99_le_1ms"] = {k: auto_row(r)["engine_p99_us"] <= 1000 for k, r in results.items()}
    out["engine_batch1_cpu_p99_le_1ms"] = {k: auto_row(r).get("engine_cpu_p99_us", math.inf) <= 1000
                                           for k, r in results.items()}
    out["auto_ece_le_0.05"] = {k: auto_row(r)["ece"] <= 0.05 for k, r in results.items()
                               if r["test_transitions_scored"] >= 300}
    if "msnbc" in results:
        out["msnbc_pipeline_le_600s"] = results["msnbc"]["pipeline_seconds"] <= 600
    return out


def timing_goals(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"definition": "InferenceEngine batch-1 p99 <= 1 ms; MSNBC pipeline <= 600 s on 2 cores"}
    out["engine_batch1_p99_le_1ms"] = {k: r["engine_p99_us"] <= 1000 for k, r in results.items()}
    out["engine_batch1_cpu_p99_le_1ms"] = {k: r["engine_cpu_p99_us"] <= 1000 for k, r in results.items()}
    if "msnbc" in results:
        out["msnbc_pipeline_le_600s"] = results["msnbc"]["pipeline_seconds"] <= 600
    return out


def print_table(results: dict[str, dict[str, Any]], console: Console) -> None:
    for key, r in results.items():
        table = Table(title=f"{key}: {r['train_transitions']:,} training transitions, {r['test_transitions_scored']:,} "
                      f"test transitions scored; auto = {r['auto_choice']}; auto - best baseline "
                      f"({r['best_baseline']}) {r['auto_minus_best_baseline_hr5'] * 100:+.1f} pts; "
                      f"pipeline {r['pipeline_seconds']:.0f} s")
        for column in ("model", "HR@1", "HR@5", "HR@10", "MRR@5", "ECE", "fit s", "size KiB", "p50 µs", "p99 µs",
                       "pred/s @256", "pages"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for m in r["models"]:
            table.add_row(m["model"], f"{m['hr1']:.3f}", f"{m['hr5']:.3f}", f"{m['hr10']:.3f}", f"{m['mrr5']:.3f}",
                          f"{m['ece']:.3f}", f"{m['fit_seconds']:.1f}", f"{m['size_bytes'] / 1024:,.0f}",
                          f"{m['p50_us']:,.0f}", f"{m['p99_us']:,.0f}", f"{m['throughput_256']:,.0f}",
                          f"{m['vocabulary_size']:,}")
        console.print(table)


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| trace | train trans. | test trans. | popularity | markov-count | markov | ppm | sknn | attention "
             "| auto (choice) | auto − best baseline | auto size KB | ECE auto | engine p50/p99 µs (CPU p99) "
             "| pipeline s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        hr = {m["model"]: f"{m['hr5']:.3f}" for m in r["models"]}
        auto = next(m for m in r["models"] if m["model"] == "auto")
        lines.append(
            f"| {key} | {r['train_transitions']:,} | {r['test_transitions_scored']:,} | "
            + " | ".join(hr.get(m, "-") for m in MODELS[:-1])
            + f" | {hr['auto']} ({r['auto_choice']}) | {r['auto_minus_best_baseline_hr5'] * 100:+.1f} "
            f"({r['best_baseline']}) | {auto['size_bytes'] / 1000:,.0f} | {auto['ece']:.3f} "
            f"| {auto['engine_p50_us']:,.0f}/{auto['engine_p99_us']:,.0f} "
            f"({auto.get('engine_cpu_p99_us', math.nan):,.0f}) | {r['pipeline_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", default=",".join(SESSION_TRACES))
    parser.add_argument("--max-test-transitions", type=int, default=50_000)
    parser.add_argument("--msnbc-seconds", type=float, default=420.0,
                        help="attention training cap on MSNBC (keeps the whole pipeline under 10 min)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the small traces")
    parser.add_argument("--msnbc-threads", type=int, default=2, help="torch threads on MSNBC")
    parser.add_argument("--timing", action="store_true",
                        help="only the pipeline time and the engine's batch-1 latency (for an idle machine)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/predictor.json (predictor_timing.json with --timing)")
    args = parser.parse_args()
    if args.out is None:
        args.out = ROOT / "bench" / "results" / ("predictor_timing.json" if args.timing else "predictor.json")
    console = Console(width=170)
    results: dict[str, dict[str, Any]] = {}
    payload: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["bench/bench_predictor.py", *sys.argv[1:]]),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_1m_at_start": round(os.getloadavg()[0], 2)},
        "max_test_transitions": args.max_test_transitions, "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for key in [t.strip() for t in args.traces.split(",") if t.strip()]:
        if not (SESSION_TRACES[key]).exists():
            console.print(f"[yellow]skipping {key}: {SESSION_TRACES[key]} not found[/yellow]")
            continue
        results[key] = bench_trace(key, args, console)
        results[key]["load_average_1m_after"] = round(os.getloadavg()[0], 2)  # was the machine idle?
        payload["goals"] = timing_goals(results) if args.timing else goals(results)
        if not args.timing:
            payload["markdown"] = markdown(results)
        args.out.write_text(json.dumps(payload, indent=1, default=float), encoding="utf-8")
    if args.timing:
        for key, r in results.items():
            console.print(f"{key}: pipeline {r['pipeline_seconds']:.0f} s, engine batch-1 p50/p99 "
                          f"{r['engine_p50_us']:,.0f}/{r['engine_p99_us']:,.0f} µs "
                          f"(CPU p50/p99 {r['engine_cpu_p50_us']:,.0f}/{r['engine_cpu_p99_us']:,.0f} µs; "
                          f"fit-time estimate {r['auto_latency']['choice_estimate_us']} µs), "
                          f"auto = {r['auto_choice']}, {r['auto_size_bytes'] / 1000:,.0f} KB")
        console.print(payload.get("goals"))
        console.print(f"wrote {args.out}")
        return 0
    print_table(results, console)
    console.print(markdown(results))
    console.print(payload.get("goals"))
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
