"""Diagnostic: why the online calibration map fit on the validation walk does not carry over to test (issue 25).

bench_online.py fits the map on the validation walk, where the frozen lists come from a *selection* copy of
auto fitted on the training slice alone; at test time they come from auto fitted on train + validation. This
script measures, on the same split and with the same choice as bench_online.py, top-1 ECE of

* the frozen lists alone, the merge without the map and the merge with the map, on the validation walk
  (selection copy) and on the test walk (the final model);
* the same on the test walk with the *selection* copy as the frozen model (what the map was fit against);
* the mean live share ``lam`` on both walks.

It changes nothing that is served or benchmarked; it explains a figure of docs/online.md.

    PRECACHE_SHARED_DATA=../shared/data nice -n 10 .venv/bin/python bench/online_calibration.py [--traces nasa-jul,bms]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from precache.evaluation import time_split
from precache.models.auto import AutoPredictor
from precache.online.merge import MergeParams
from precache.online.prequential import LivePass, choose, events, frozen_heads, live_pass, online_lists, tally
from precache.online.protocol import default_guard
from precache.traces import read_sessions
from precache.types import Prediction
from shared_traces import SESSION_TRACES

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 50_000


def build(threads: int) -> AutoPredictor:
    """auto as bench_online.py builds it (the same size budget; the MSNBC time cap does not apply here)."""
    return AutoPredictor(attention_options={"threads": threads, "seed": 0}, size_budget=1_000_000)


def walk(frozen: list[Prediction], live: LivePass, params: MergeParams) -> dict[str, Any]:
    raw = replace(params, calibration=None)
    lams = [raw.lam(n) for n in live.evidence]
    return {"transitions": len(live.targets), "frozen_ece": round(tally(frozen, live.targets).ece, 4),
            "merged_ece_unmapped": round(tally(online_lists(frozen, live, raw), live.targets).ece, 4),
            "merged_ece_mapped": round(tally(online_lists(frozen, live, params), live.targets).ece, 4),
            "mean_lam": round(statistics.fmean(lams), 4) if lams else 0.0}


def diagnose(key: str, threads: int) -> dict[str, Any]:
    started = time.perf_counter()
    split = time_split(read_sessions(SESSION_TRACES[key]))
    selection = build(threads)
    selection.fit(split.train, None)
    seed = events(split.train)
    validation = events(split.validation, start=len(seed))
    frozen_v = frozen_heads(selection, validation, LIMIT)
    choice = choose(frozen_v, seed, validation, LIMIT, guard_factory=default_guard)
    live_v = live_pass(seed, validation, choice.params.half_life, default_guard(), LIMIT)
    final = build(threads)
    final.fit(split.train, split.validation)
    seed = events(split.train_and_validation)
    test = events(split.test, start=len(seed))
    live_t = live_pass(seed, test, choice.params.half_life, default_guard(), LIMIT)
    return {"merge": choice.params.as_dict(), "calibration": choice.calibration,
            "validation_walk_selection_model": walk(frozen_v, live_v, choice.params),
            "test_walk_final_model": walk(frozen_heads(final, test, LIMIT), live_t, choice.params),
            "test_walk_selection_model": walk(frozen_heads(selection, test, LIMIT), live_t, choice.params),
            "seconds": round(time.perf_counter() - started, 1),
            "load_at_start": [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", default="nasa-jul,bms")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "online_calibration.json")
    args = parser.parse_args()
    out: dict[str, Any] = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "command": " ".join(["bench/online_calibration.py", *sys.argv[1:]]), "traces": {}}
    for key in [t.strip() for t in args.traces.split(",") if t.strip()]:
        out["traces"][key] = diagnose(key, args.threads)
        print(key, json.dumps(out["traces"][key], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
