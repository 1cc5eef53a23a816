"""Benchmark: predictions that learn from live traffic (issue 25), scored test-then-learn.

Protocol (:mod:`precache.online.prequential`): the evaluation protocol's split (time-ordered sessions, first
80% train with its last 10% as validation, last 20% test); the test period is walked in time order (every
transition sorted by its timestamp; BMS-WebView-1 and MSNBC have no timestamps, so session order and the
transition index as the clock), each transition scored first and learned after. The first
``--max-test-transitions`` test transitions are scored (all on every trace but MSNBC), history <= 50 pages.

Rows per trace (``traces.<name>.rows[]``: ``model``, ``protocol``, ``hr5``, ``ece``, ``updates_per_s``,
``state_bytes``):

* ``auto`` frozen: auto with bench_predictor.py's options, fitted on train + validation;
* the best count baseline, frozen: the best *test* HR@5 of markov-count, markov and ppm (auto's fitted
  candidates; the baseline's best case);
* ``markov-count`` online: live counts alone, seeded with train + validation, no decay;
* ``markov-count (decay)`` online: the same with the half-life chosen on the validation slice;
* ``auto`` online: frozen auto merged with the live counts (half-life, weight, evidence chosen on the
  validation slice: a selection auto fitted on the training slice is the frozen model there), its answers
  through the online calibrator (:class:`precache.online.calibration.OnlineCalibrator`, starting at identity
  with the test period and learning each answer's outcome after it was scored: ``ece``, the service's
  default ``ML_ONLINE_CALIBRATE=online``); the row adds the same lists unmapped (``ece_unmapped``,
  ``hr5_unmapped``) and with the Platt map fit on the validation walk (``ece_offline_map``,
  ``hr5_offline_map``; ``calibration`` is that map, ``ML_ONLINE_CALIBRATE=stored``): HR@5 must not move;
  ``ece_floor`` / ``ece_floor_p90`` (every online row): the mean / 90th percentile ECE a perfectly calibrated
  answer with the row's top-1 confidences scores on this many transitions (200 Bernoulli draws): the sampling
  floor of the ECE goal on that trace;
* ``auto (no decay)`` online: the best no-decay merge of the same validation grid (what decay adds);
* ``auto`` retrain: auto refitted on everything seen so far at fixed points of the test period (weekly on
  the trace's clock when the test period spans >= 2 weeks, daily when >= 2 days; on untimed traces every
  fifth of the test period, labelled so), scored frozen between refits. Skipped, with the reason, where the
  test period is shorter or (MSNBC) a refit costs minutes.

Guards (:class:`precache.online.guards.ContributionGuard`, defaults) are on in every online row. Poisoning:
1% of the test period's session count is added as sessions of one client replaying one path (the ten most
popular training targets in a chain), spread evenly over the test period, learned through the guard and
never scored; the online auto's HR@5 on the real transitions with and without them, guards on and off.

Redis (``--redis``, on by default): a ``redis-server`` of its own on a free loopback port; a 1M-request
synthetic run (:class:`precache.traces.synthetic.SyntheticWorkload`, 200k pages) goes page view by page view
through one :class:`precache.online.layer.OnlineLayer` (guard, local counts, aggregation, pipelined flush
every 1,000 views) into Redis: page views/s per replica, then the contexts cap is enforced (``trim``) and
checked, and Redis memory per 100k contexts is read from ``MEMORY USAGE``.

    PRECACHE_SHARED_DATA=../shared/data nice -n 10 .venv/bin/python bench/bench_online.py \
        [--traces nasa-jul,nasa-aug,bms,diginetica,msnbc] [--msnbc-seconds 420]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from online_redis import redis_run
from online_retrain import retrain_row
from precache.evaluation import Split, time_split
from precache.models.auto import AutoPredictor
from precache.online.calibration import map_to_json
from precache.online.merge import MergeParams
from precache.online.poisoning import poisoning
from precache.online.prequential import (
    Choice,
    calibrated_lists,
    choose,
    events,
    frozen_heads,
    live_pass,
    row,
    tally,
)
from precache.online.protocol import default_guard
from precache.traces import read_sessions
from shared_traces import SESSION_TRACES

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 1_000_000
BARS = ("markov-count", "markov", "ppm")
ORDER = ("nasa-jul", "nasa-aug", "bms", "diginetica", "msnbc")
GOALS = ("online auto >= frozen auto + 5 pts HR@5 on BMS-WebView-1; online auto never below frozen auto by more "
         "than 0.3 pts on any trace; ECE <= 0.05 online; >= 20,000 page views/s per replica into Redis; the cap "
         "holds on MSNBC and on a 1M-request synthetic run; 1% poisoning moves HR@5 by <= 0.5 pts with guards on")


def build_auto(key: str, args: argparse.Namespace) -> AutoPredictor:
    """auto with bench_predictor.py's options (the MSNBC attention time cap included)."""
    attention: dict[str, Any] = {"threads": args.threads, "seed": 0}
    if key == "msnbc":
        attention.update(max_seconds=args.msnbc_seconds, threads=args.msnbc_threads)
    return AutoPredictor(attention_options=attention, size_budget=BUDGET)


def no_decay_params(choice: Choice) -> MergeParams:
    """The best merge of the validation grid without decay (ties: less weight), with its own map."""
    assert choice.no_decay is not None
    return choice.no_decay


def ece_floor(confidence: list[float], draws: int = 200, seed: int = 0) -> tuple[float, float]:
    """The ECE a *perfectly calibrated* answer with these top-1 confidences scores on this many transitions:
    mean and 90th percentile over ``draws`` (each: outcomes ~ Bernoulli(confidence), ECE with the evaluation's
    10 equal-width bins). The sampling floor: below it no calibration can be told apart from noise."""
    if not confidence:
        return 0.0, 0.0
    p = np.asarray(confidence, dtype=np.float64)
    bins = np.minimum(9, np.maximum(0, (p * 10).astype(int)))
    stated = np.bincount(bins, weights=p, minlength=10)
    hits = np.random.default_rng(seed).random((draws, len(p))) < p
    gaps = [np.abs(stated - np.bincount(bins, weights=h, minlength=10)).sum() / len(p) for h in hits]
    return float(np.mean(gaps)), float(np.quantile(gaps, 0.9))


def online_row(name: str, frozen: list[Any] | None, live: Any, params: MergeParams, **extra: Any) -> dict[str, Any]:
    """An online row; with a frozen model its answers go through the online calibrator (``ece``), and the row
    adds the same lists unmapped (``ece_unmapped``, ``hr5_unmapped``) and with the map fit on the validation
    walk (``ece_offline_map``, ``hr5_offline_map``; ``calibration`` is that map): no map moves HR@5."""
    t = tally(calibrated_lists(frozen, live, params, "online"), live.targets)
    floor, floor90 = ece_floor(t.top1_confidence)
    extra.update(ece_floor=round(floor, 4), ece_floor_p90=round(floor90, 4))
    if frozen is not None:
        raw = tally(calibrated_lists(frozen, live, params, "false"), live.targets)
        offline = tally(calibrated_lists(frozen, live, params, "stored"), live.targets)
        extra.update(calibrated="online", calibration=map_to_json(params.calibration), ece_unmapped=round(raw.ece, 4),
                     hr5_unmapped=round(raw.hr(5), 4), ece_offline_map=round(offline.ece, 4),
                     hr5_offline_map=round(offline.hr(5), 4))
    return row(name, "online", t, half_life=params.half_life, weight=params.weight, evidence=params.evidence,
               updates_per_s=round(live.seeded / max(live.seed_seconds, 1e-9)),
               state_bytes=live.state.approx_bytes(), contexts=len(live.state), **extra)


def choices(key: str, split: Split, args: argparse.Namespace, console: Console) -> tuple[Choice, Choice]:
    """The merge for auto and the half-life for the counts alone, chosen on the validation slice."""
    selection = build_auto(key, args)
    started = time.perf_counter()
    selection.fit(split.train, None)
    seed = events(split.train)
    validation = events(split.validation, start=len(seed))
    limit = args.max_test_transitions
    auto_choice = choose(frozen_heads(selection, validation, limit), seed, validation, limit,
                         guard_factory=default_guard)
    counts_choice = choose(None, seed, validation, limit, guard_factory=default_guard)
    console.print(f"{key}: chose {auto_choice.params} for auto (validation HR@5 {auto_choice.validation_hr5:.4f}, "
                  f"frozen {auto_choice.frozen_validation_hr5:.4f}), half-life {counts_choice.params.half_life} "
                  f"for the counts, in {time.perf_counter() - started:.0f} s")
    return auto_choice, counts_choice


def bench_trace(key: str, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    sessions = read_sessions(SESSION_TRACES[key])
    split = time_split(sessions)
    auto_choice, counts_choice = choices(key, split, args, console)
    auto = build_auto(key, args)
    auto.fit(split.train, split.validation)
    seed = events(split.train_and_validation)
    test = events(split.test, start=len(seed))
    limit = args.max_test_transitions
    frozen = frozen_heads(auto, test, limit)
    guard = default_guard
    plain = live_pass(seed, test, None, guard(), limit)
    targets = plain.targets
    none = {"updates_per_s": None, "state_bytes": None}
    rows = [row("auto", "frozen", tally(frozen, targets), choice=auto.choice, **none)]
    bars = {name: tally(frozen_heads(auto.fitted_candidates[name], test, limit, depth=10), targets)
            for name in BARS if name in auto.fitted_candidates}
    bar = max(bars, key=lambda n: (bars[n].hr(5), bars[n].mrr))
    rows.append(row(bar, "frozen", bars[bar], best_count_baseline=True, **none))
    rows.append(online_row("markov-count", None, plain, MergeParams(1.0, 1.0, None)))
    decayed = live_pass(seed, test, counts_choice.params.half_life, guard(), limit)
    rows.append(online_row("markov-count (decay)", None, decayed, counts_choice.params))
    live = live_pass(seed, test, auto_choice.params.half_life, guard(), limit)
    rows.append(online_row("auto", frozen, live, auto_choice.params,
                           validation_hr5=round(auto_choice.validation_hr5, 4)))
    rows.append(online_row("auto (no decay)", frozen, plain, no_decay_params(auto_choice)))
    retrain = retrain_row(lambda: build_auto(key, args), split, test, limit, key, console, first=frozen)
    if not isinstance(retrain, str):
        rows.append(retrain)
    poison = poisoning(seed, test, split, frozen, auto_choice.params, limit)
    frozen_hr5, online_hr5 = rows[0]["hr5"], rows[4]["hr5"]
    console.print(f"{key}: frozen auto {frozen_hr5:.4f}, online auto {online_hr5:.4f} "
                  f"({(online_hr5 - frozen_hr5) * 100:+.1f} pts), {time.perf_counter() - started:.0f} s")
    return {"trace": str(SESSION_TRACES[key]), "sessions": len(sessions), "test_sessions": len(split.test),
            "test_transitions_scored": len(targets), "timed": all(len(s.times) == len(s.pages) for s in sessions),
            "auto_choice": auto.choice, "merge_choice": auto_choice.params.as_dict(),
            "merge_calibration": auto_choice.calibration,
            "merge_validation_grid": auto_choice.grid, "counts_half_life": counts_choice.params.half_life,
            "online_minus_frozen_auto_hr5": round(online_hr5 - frozen_hr5, 4), "poisoning": poison,
            "retrain": retrain if isinstance(retrain, str) else retrain["period"],
            "cap": {"max_contexts": live.state.max_contexts, "contexts": len(live.state),
                    "max_successors": live.state.max_successors,
                    "largest_row": max((len(r.successors) for r in live.state.rows.values()), default=0),
                    "bytes_per_100k_contexts": round(live.state.approx_bytes() / max(1, len(live.state)) * 1e5)},
            "seconds": round(time.perf_counter() - started, 1), "rows": rows}


def goals(traces: dict[str, Any], redis: dict[str, Any] | None) -> dict[str, Any]:
    def pick(r: dict[str, Any], model: str, protocol: str) -> dict[str, Any]:
        return next(x for x in r["rows"] if x["model"] == model and x["protocol"] == protocol)

    out: dict[str, Any] = {"statement": GOALS}
    if "bms" in traces:
        out["bms_online_auto_ge_frozen_plus_5pts"] = traces["bms"]["online_minus_frozen_auto_hr5"] >= 0.05
    out["never_below_frozen_auto_by_0.3pts"] = {k: r["online_minus_frozen_auto_hr5"] >= -0.003
                                               for k, r in traces.items()}
    out["online_auto_ece_le_0.05"] = {k: pick(r, "auto", "online")["ece"] <= 0.05 for k, r in traces.items()}
    out["calibration_map_keeps_hr5"] = {k: pick(r, "auto", "online")["hr5"] == pick(r, "auto", "online").get(
        "hr5_unmapped", pick(r, "auto", "online")["hr5"]) == pick(r, "auto", "online").get(
        "hr5_offline_map", pick(r, "auto", "online")["hr5"]) for k, r in traces.items()}
    out["poisoning_guarded_le_0.5pts"] = {k: abs(r["poisoning"]["guards_on"]["delta_hr5"]) <= 0.005
                                          for k, r in traces.items()}
    out["cap_holds"] = {k: r["cap"]["contexts"] <= r["cap"]["max_contexts"]
                        and r["cap"]["largest_row"] <= r["cap"]["max_successors"] for k, r in traces.items()}
    if redis is not None:
        out["redis_page_views_per_s_ge_20000"] = redis["page_views_per_s"] >= 20_000
        out["synthetic_cap_holds"] = redis["contexts_after_trim"] <= redis["max_contexts"]
    return out


def print_table(traces: dict[str, Any], console: Console) -> None:
    table = Table(title="test-then-learn HR@5 / ECE (online merge chosen on the validation slice)")
    for column in ("trace", "model", "protocol", "HR@5", "ECE", "half-life", "weight", "updates/s", "state KB"):
        table.add_column(column, justify="left" if column in ("trace", "model", "protocol") else "right")
    for key, r in traces.items():
        for x in r["rows"]:
            online = x["protocol"] == "online"
            table.add_row(key, x["model"], x["protocol"], f"{x['hr5']:.4f}", f"{x['ece']:.4f}",
                          str(x.get("half_life")) if online else "-", f"{x.get('weight', '-')}" if online else "-",
                          f"{x.get('updates_per_s', 0):,}" if online else "-",
                          f"{x.get('state_bytes', 0) / 1000:,.0f}" if online else "-")
    console.print(table)


def save(out: Path, command: str, traces: dict[str, Any], redis: dict[str, Any] | None) -> dict[str, Any]:
    """Write the results, keeping the other traces' entries of an earlier run (each entry records its own
    command and load): a long trace (MSNBC) may run in a process of its own."""
    old = json.loads(out.read_text()) if out.exists() else {}
    merged = {**old.get("traces", {}), **traces}
    redis = redis if redis is not None else old.get("redis")
    payload = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
               "traces": {k: merged[k] for k in ORDER if k in merged}, "redis": redis,
               "goals": goals(merged, redis)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    return payload


LINK = "../bench/results/online.json#/traces/{key}/rows/{i}/{field}"


def _cell(value: Any, spec: str, key: str, i: int, field: str) -> str:
    """A figure as a link to its place in the JSON (bench/check_claims.py checks it), or "-"."""
    return "-" if value is None else f"[{format(value, spec)}]({LINK.format(key=key, i=i, field=field)})"


def markdown(payload: dict[str, Any]) -> str:
    """The table docs/online.md quotes, every figure linked to the JSON (``--markdown`` prints it)."""
    lines = ["| trace | model | protocol | HR@5 | ECE | half-life | weight | updates/s | state bytes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, r in payload["traces"].items():
        for i, x in enumerate(r["rows"]):
            online = x["protocol"] == "online"
            half_life = ("none" if x.get("half_life") is None else f"{x['half_life']:g}") if online else "-"
            extra = f" ({x['period']})" if x["protocol"] == "retrain" else ""
            lines.append(
                f"| {key} | {x['model']}{extra} | {x['protocol']} | {_cell(x['hr5'], '.4f', key, i, 'hr5')} "
                f"| {_cell(x['ece'], '.4f', key, i, 'ece')} | {half_life} | {x.get('weight', '-') if online else '-'} "
                f"| {_cell(x.get('updates_per_s'), ',', key, i, 'updates_per_s')} "
                f"| {_cell(x.get('state_bytes'), ',', key, i, 'state_bytes')} |")
    return "\n".join(lines)


def summary(payload: dict[str, Any]) -> str:
    """One line per trace (docs/benchmarks.md quotes it; ``--summary`` prints it): frozen and online auto, and
    online auto's ECE unmapped, with the map fit on the validation walk, and with the online calibrator."""
    lines = ["| trace | test transitions | frozen auto HR@5 | online auto HR@5 | online − frozen | online auto ECE: "
             "no map | map fit on validation | online calibrator |", "|---|---|---|---|---|---|---|---|"]
    for key, r in payload["traces"].items():
        i = next(j for j, x in enumerate(r["rows"]) if x["model"] == "auto" and x["protocol"] == "online")
        x = r["rows"][i]
        chosen = r.get("merge_calibration", {})
        method = chosen.get("method", "none")
        offline = (_cell(x.get("ece_offline_map"), ".4f", key, i, "ece_offline_map") + f" ({method})"
                   if chosen.get("held_block_ece") else "none (weight 0)")
        where = f"../bench/results/online.json#/traces/{key}"
        lines.append(
            f"| {key} | [{r['test_transitions_scored']:,}]({where}/test_transitions_scored) "
            f"| {_cell(r['rows'][0]['hr5'], '.4f', key, 0, 'hr5')} | {_cell(x['hr5'], '.4f', key, i, 'hr5')} "
            f"| [{r['online_minus_frozen_auto_hr5'] * 100:+.1f} pts]({where}/online_minus_frozen_auto_hr5 \"*100\") "
            f"| {_cell(x.get('ece_unmapped'), '.4f', key, i, 'ece_unmapped')} | {offline} "
            f"| {_cell(x['ece'], '.4f', key, i, 'ece')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", default=",".join(ORDER))
    parser.add_argument("--max-test-transitions", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--msnbc-seconds", type=float, default=420.0)
    parser.add_argument("--msnbc-threads", type=int, default=2)
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis throughput and cap run")
    parser.add_argument("--synthetic-requests", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "online.json")
    parser.add_argument("--markdown", action="store_true", help="print the table of --out and stop")
    parser.add_argument("--summary", action="store_true", help="print the one-line-per-trace table of --out and stop")
    args = parser.parse_args()
    if args.markdown or args.summary:
        payload = json.loads(args.out.read_text())
        print(markdown(payload) if args.markdown else summary(payload))
        return 0
    console = Console(width=160)
    command = " ".join(["bench/bench_online.py", *sys.argv[1:]])
    traces: dict[str, Any] = {}
    for key in [t.strip() for t in args.traces.split(",") if t.strip()]:
        if not SESSION_TRACES[key].exists():
            console.print(f"[yellow]skipping {key}: {SESSION_TRACES[key]} not found[/yellow]")
            continue
        load = os.getloadavg()
        traces[key] = {**bench_trace(key, args, console), "command": command,
                       "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                   "load_at_start": [round(x, 2) for x in load]}}
        save(args.out, command, traces, None)
    redis = None
    if not args.no_redis:
        redis = {**redis_run(args.synthetic_requests, console), "load_at_start": [round(x, 2) for x in os.getloadavg()],
                 "command": command}
    payload = save(args.out, command, traces, redis)
    print_table(payload["traces"], console)
    console.print(payload["goals"])
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
