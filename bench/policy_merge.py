"""Join bench_policies outputs into one ``policies.json``, recomputing what spans sizes and traces:

    .venv/bin/python bench/policy_merge.py OUT IN [IN ...]

Why: the 1M-request synthetic trace is split over processes by ``--fractions`` (each size's validation
and evaluation are independent replays from the same seed), and the real traces run apart from it. A
trace's sizes from several inputs are joined in fraction order; its trace-level fields come from the
first input that has the trace (``ttl`` from the first that ran it). ``returns_lru_numbers``, each
size's ``summary``, ``goals`` and ``meta`` are then recomputed exactly as ``bench_policies`` computes
them, so a merged file is what one run would have written; ``policies_ttl.png`` is redrawn from it.
A trace in OUT that no input has is kept (only with ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_policies import RESULTS, goals, meta, same_as_lru, summarize
from policy_ttl import plot_ttl


def merge(inputs: list[dict[str, Any]], kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """The merged document (see the module docstring)."""
    traces: dict[str, Any] = dict(kept or {})
    fresh: set[str] = set()
    for doc in inputs:
        for name, entry in doc["traces"].items():
            if name not in fresh:
                traces[name] = {**entry, "sizes": []}
                fresh.add(name)
            t = traces[name]
            if "ttl" not in t and "ttl" in entry:
                t["ttl"] = entry["ttl"]
            have = {r["fraction"] for r in t["sizes"]}
            t["sizes"].extend(r for r in entry["sizes"] if r["fraction"] not in have)
    for name in fresh:
        t = traces[name]
        t["sizes"].sort(key=lambda r: r["fraction"])
        lru_like = same_as_lru(t["sizes"])
        t["returns_lru_numbers"] = sorted(lru_like)
        t["harness_check"] = [{"fraction": r["fraction"], "lcs_lru": r["lcs.LRU"]["miss_ratio"],
                               "replay_lru": r["precache.lru"]["miss_ratio"],
                               "lcs_lru_bytes": r["lcs.LRU"]["byte_miss_ratio"],
                               "replay_lru_bytes": r["precache.lru"]["byte_miss_ratio"]} for r in t["sizes"]]
        for r in t["sizes"]:
            r["summary"] = summarize(r, lru_like)
    return {"traces": traces, "goals": goals(traces), "meta": meta()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--keep", action="store_true", help="keep OUT's traces that no input has")
    args = ap.parse_args()
    docs = [json.loads(Path(p).read_text()) for p in args.inputs]
    kept = json.loads(Path(args.out).read_text())["traces"] if args.keep and Path(args.out).exists() else None
    merged = merge(docs, kept)
    Path(args.out).write_text(json.dumps(merged, indent=1, default=float))
    plot_ttl(merged["traces"], RESULTS / "policies_ttl.png")  # each partial run drew its own part
    g = merged["goals"]
    print(f"wrote {args.out}: {g['points']} points; learned better or tied at {g['learned_better_or_tied']}, "
          f"worst {g['learned_worst_minus_best']:+.4f}; shipped worst {g['shipped_worst_minus_best']:+.4f}")


if __name__ == "__main__":
    main()
