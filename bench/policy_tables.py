"""Print docs/policy.md's tables from bench/results/replay.json and policies.json (so the doc quotes the
JSON exactly): ``.venv/bin/python bench/policy_tables.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def replay_points(data: dict[str, Any]) -> list[str]:
    out = ["| trace | size | fastest fixed TTL (ms, stale) | full (ms, stale) | best fixed TTL no staler than full "
           "(ms, stale) | full below | adaptive-ttl (ms, stale) | best fixed TTL no staler (ms, stale) | "
           "adaptive below | oracle (ms) | shipped policy |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in data["traces"].items():
        for size, run in t["sizes"].items():
            vs = run["meta"]["vs_frontier"]
            rows = {r["mode"]: r for r in run["table"]}
            f, a = vs["rows"]["full"], vs["rows"].get("adaptive-ttl", {})
            out.append(
                f"| {name} | {size} | {vs['fastest_fixed_ttl']} ({_ms(vs['fastest_fixed_ttl_avg_load_ms'])}, "
                f"{_rate(vs['fastest_fixed_ttl_stale_rate'])}) | {_ms(f['avg_load_ms'])}, {_rate(f['stale_rate'])} | "
                f"{f['best_fixed_ttl']} ({_ms(f['best_fixed_ttl_avg_load_ms'])}, "
                f"{_rate(f['best_fixed_ttl_stale_rate'])}) | {'yes' if f['below'] else 'NO'} | "
                f"{_ms(a.get('avg_load_ms'))}, {_rate(a.get('stale_rate'))} | {a.get('best_fixed_ttl')} "
                f"({_ms(a.get('best_fixed_ttl_avg_load_ms'))}, {_rate(a.get('best_fixed_ttl_stale_rate'))}) | "
                f"{'yes' if a.get('below') else 'NO'} | {_ms(rows['oracle']['avg_load_ms'])} | "
                f"{run['meta']['shipped']['chosen']} |")
    return out


def replay_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| mode | avg load ms | stale rate | hit rate |", "|---|---|---|---|"]
    out += [f"| {r['mode']} | {_ms(r['avg_load_ms'])} | {_rate(r['stale_rate'])} | {r['hit_rate']:.3f} |"
            for r in rows]
    return out


def policies_table(data: dict[str, Any]) -> list[str]:
    out = ["| trace | cache | best baseline (bmr) | learned (config) | Δ | verdict | online Δ | shipped (config) | "
           "Δ | LRB | 3L-Cache |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in data["traces"].items():
        excluded = set(t.get("returns_lru_numbers", []))
        for r in t["sizes"]:
            s = r["summary"]
            lrb = "= LRU" if "lcs.LRB" in excluded else f"{r['lcs.LRB']['byte_miss_ratio']:.4f}"
            three = "= LRU" if "lcs.ThreeLCache" in excluded else f"{r['lcs.ThreeLCache']['byte_miss_ratio']:.4f}"
            out.append(
                f"| {name} | {r['fraction']:.1%} | {s['best_baseline_by_bytes']} ({s['best_baseline_bmr']:.4f}) | "
                f"{s['learned_bmr']:.4f} ({s['learned_config']}) | {s['learned_minus_best']:+.4f} | {s['verdict']} | "
                f"{s['online_minus_best']:+.4f} | {s['shipped_bmr']:.4f} ({s['shipped_config']}) | "
                f"{s['shipped_minus_best']:+.4f} | {lrb} | {three} |")
    return out


def main() -> None:
    replay = json.loads((RESULTS / "replay.json").read_text())
    print("\n".join(replay_points(replay)))
    print(json.dumps(replay["goals"]["summary"]))
    for name, t in replay["traces"].items():
        print(f"\n{name}, medium:\n")
        print("\n".join(replay_table(t["sizes"]["medium"]["table"])))
        for share, entry in t["meta"].get("invalidation_sweep", {}).items():
            vs = entry["vs_frontier"]["rows"]
            print(f"\n{name}, medium, invalidated share {share}: " + "; ".join(
                f"{m} {_ms(v['avg_load_ms'])} ms at {_rate(v['stale_rate'])} vs {v['best_fixed_ttl']} "
                f"{_ms(v['best_fixed_ttl_avg_load_ms'])} ms ({'below' if v['below'] else 'NOT below'})"
                for m, v in vs.items()))
    policies = json.loads((RESULTS / "policies.json").read_text())
    print()
    print("\n".join(policies_table(policies)))
    print(json.dumps(policies.get("goals", {})))


if __name__ == "__main__":
    sys.exit(main())
