"""Print docs/policy.md's tables from bench/results/replay.json, policies.json and switcher_validation.json,
every figure a link to its JSON value (so ``bench/check_claims.py`` checks the doc against the results):
``.venv/bin/python bench/policy_tables.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

RESULTS = Path(__file__).resolve().parent / "results"
REPLAY = "../bench/results/replay.json#/"
POLICIES = "../bench/results/policies.json#/"
SWITCHER = "../bench/results/switcher_validation.json#/"


def link(value: float | None, fmt: str, target: str) -> str:
    """``[figure](target)``; a missing value is a dash (nothing to check)."""
    return "-" if value is None else f"[{value:{fmt}}]({target})"


def pair(r: dict[str, Any], base: str, prefix: str = "") -> str:
    """``<load ms> at <stale rate>``, both linked (``prefix`` + avg_load_ms / stale_rate)."""
    load, stale = f"{prefix}avg_load_ms", f"{prefix}stale_rate"
    return f"{link(r.get(load), '.1f', base + load)} at {link(r.get(stale), '.4f', base + stale)}"


def judged(r: dict[str, Any], b: str) -> tuple[str, str, str]:
    """A judged row's (own figures, the fastest fixed TTL no staler, below?)."""
    best = "none is as fresh" if r.get("best_fixed_ttl") is None else (
        f"{r['best_fixed_ttl']}: {pair(r, b, 'best_fixed_ttl_')}")
    return pair(r, b), best, "yes" if r.get("below") else "**no**"


def replay_points(data: dict[str, Any]) -> list[str]:
    out = ["| trace | size | fastest fixed TTL: ms at stale | `full`: ms at stale | fastest fixed TTL no staler "
           "than `full` | full faster | `adaptive-ttl`: ms at stale | fastest fixed TTL no staler than it | "
           "adaptive below | oracle ms | shipped |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in data["traces"].items():
        for size, run in t["sizes"].items():
            base = f"{REPLAY}traces/{name}/sizes/{size}/meta/vs_frontier/"
            vs = run["meta"]["vs_frontier"]
            f, a = vs["rows"]["full"], vs["rows"].get("adaptive-ttl", {})
            fastest = f"{vs['fastest_fixed_ttl']}: {pair(vs, base, 'fastest_fixed_ttl_')}"

            fo, fb, fy = judged(f, f"{base}rows/full/")
            ao, ab, ay = judged(a, f"{base}rows/adaptive-ttl/")
            oracle = link(next(r["avg_load_ms"] for r in run["table"] if r["mode"] == "oracle"), ".1f",
                          f"{REPLAY}traces/{name}/sizes/{size}/table/mode=oracle/avg_load_ms")
            out.append(f"| {name} | {size} | {fastest} | {fo} | {fb} | {fy} | {ao} | {ab} | {ay} | {oracle} | "
                       f"{run['meta']['shipped']['chosen']} |")
    return out


def replay_table(data: dict[str, Any], name: str, size: str) -> list[str]:
    out = ["| mode | avg load ms | stale rate | hit rate |", "|---|---|---|---|"]
    for r in data["traces"][name]["sizes"][size]["table"]:
        b = f"{REPLAY}traces/{name}/sizes/{size}/table/mode={r['mode']}/"
        out.append(f"| {r['mode']} | {link(r['avg_load_ms'], '.1f', b + 'avg_load_ms')} | "
                   f"{link(r['stale_rate'], '.4f', b + 'stale_rate')} | {link(r['hit_rate'], '.3f', b + 'hit_rate')} |")
    return out


def sweep_lines(data: dict[str, Any]) -> list[str]:
    out = ["| trace (medium) | invalidated share | `adaptive-ttl`: ms at stale | fastest fixed TTL no staler | "
           "below | `full`: ms at stale | fastest fixed TTL no staler | below |", "|---|---|---|---|---|---|---|---|"]
    for name, t in data["traces"].items():
        for share, entry in t["meta"].get("invalidation_sweep", {}).items():
            cells = []
            for mode in ("adaptive-ttl", "full"):
                v = entry["vs_frontier"]["rows"][mode]
                b = f"{REPLAY}traces/{name}/meta/invalidation_sweep/{share}/vs_frontier/rows/{mode}/"
                best = "none is as fresh" if v["best_fixed_ttl"] is None else (
                    f"{v['best_fixed_ttl']}: {pair(v, b, 'best_fixed_ttl_')}")
                cells += [pair(v, b), best, "yes" if v["below"] else "**no**"]
            out.append(f"| {name} | {share} | " + " | ".join(cells) + " |")
    return out


def policies_table(data: dict[str, Any]) -> list[str]:
    out = ["| trace | cache | best baseline: byte miss ratio | learned (config) | Δ | verdict | online Δ | "
           "shipped (config) | Δ | LRB | 3L-Cache |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in data["traces"].items():
        excluded = set(t.get("returns_lru_numbers", []))
        for i, r in enumerate(t["sizes"]):
            s = r["summary"]
            b = f"{POLICIES}traces/{name}/sizes/{i}/"
            lrb = "= LRU" if "lcs.LRB" in excluded else link(r["lcs.LRB"]["byte_miss_ratio"], ".4f",
                                                              b + "lcs.LRB/byte_miss_ratio")
            three = "= LRU" if "lcs.ThreeLCache" in excluded else link(
                r["lcs.ThreeLCache"]["byte_miss_ratio"], ".4f", b + "lcs.ThreeLCache/byte_miss_ratio")
            out.append(
                f"| {name} | {r['fraction']:.1%} | {s['best_baseline_by_bytes']}: "
                f"{link(s['best_baseline_bmr'], '.4f', b + 'summary/best_baseline_bmr')} | "
                f"{link(s['learned_bmr'], '.4f', b + 'summary/learned_bmr')} ({s['learned_config']}) | "
                f"{link(s['learned_minus_best'], '+.4f', b + 'summary/learned_minus_best')} | {s['verdict']} | "
                f"{link(s['online_minus_best'], '+.4f', b + 'summary/online_minus_best')} | "
                f"{link(s['shipped_bmr'], '.4f', b + 'summary/shipped_bmr')} ({s['shipped_config']}) | "
                f"{link(s['shipped_minus_best'], '+.4f', b + 'summary/shipped_minus_best')} | {lrb} | {three} |")
    return out


def _rule_cells(rule: dict[str, Any], base: str) -> str:
    """``kept`` or ``displaced by <name>: Δ ± se``, and how many candidates cleared the band."""
    vs = rule["vs_default"]
    cleared = sum(v["clears"] for v in vs.values())
    if rule["chosen"] == rule["default"]:
        near = min(vs, key=lambda k: vs[k]["delta"])  # the strongest challenger, for the record
        v, b = vs[near], f"{base}vs_default/{quote(near)}/"
        se = "-" if v["se"] is None else link(v["se"], ".4f", b + "se")
        return f"kept ({near}: {link(v['delta'], '+.4f', b + 'delta')} ± {se}) | {cleared} of {len(vs)}"
    v, b = vs[rule["chosen"]], f"{base}vs_default/{quote(rule['chosen'])}/"
    se = "-" if v["se"] is None else link(v["se"], ".4f", b + "se")
    return f"{rule['chosen']}: {link(v['delta'], '+.4f', b + 'delta')} ± {se} | {cleared} of {len(vs)}"


def selection_table(data: dict[str, Any]) -> list[str]:
    """Per point, what the noise-band rule did on the validation slice (learned choice and shipped)."""
    out = ["| trace | cache | validation requests | learned: default `sampled` kept, or displaced by (Δ ± se) | "
           "cleared | shipped: default kept, or displaced by (Δ ± se) | cleared |",
           "|---|---|---|---|---|---|---|"]
    for name, t in data["traces"].items():
        for i, r in enumerate(t["sizes"]):
            sel = r["learned_selection"]
            if "rule" not in sel:
                continue  # a result from before the noise-band rule
            b = f"{POLICIES}traces/{name}/sizes/{i}/learned_selection/"
            out.append(f"| {name} | {r['fraction']:.1%} | {sel['validation_requests']:,} | "
                       f"{_rule_cells(sel['rule'], b + 'rule/')} | "
                       f"{_rule_cells(sel['shipped']['rule'], b + 'shipped/rule/')} |")
    return out


def switch_table(data: dict[str, Any]) -> list[str]:
    """Per point, the online switcher against the best baseline, its switches, and S3-FIFO at parity."""
    out = ["| trace | cache | best baseline | switcher | Δ | switches (final policy) | precache S3-FIFO | "
           "libCacheSim S3FIFO | switcher CPU µs/request | S3-FIFO CPU µs/request |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in data["traces"].items():
        for i, r in enumerate(t["sizes"]):
            sw, s3 = r.get("precache.switch (default)"), r["precache.s3fifo (default)"]
            if sw is None:
                continue
            s, b = r["summary"], f"{POLICIES}traces/{name}/sizes/{i}/"
            q = quote("precache.switch (default)")
            p = quote("precache.s3fifo (default)")
            out.append(
                f"| {name} | {r['fraction']:.1%} | {s['best_baseline_by_bytes']}: "
                f"{link(s['best_baseline_bmr'], '.4f', b + 'summary/best_baseline_bmr')} | "
                f"{link(sw['byte_miss_ratio'], '.4f', b + q + '/byte_miss_ratio')} | "
                f"{link(s['switch_minus_best'], '+.4f', b + 'summary/switch_minus_best')} | "
                f"{len(sw['switches'])} ({sw['final_policy']}) | "
                f"{link(s3['byte_miss_ratio'], '.4f', b + p + '/byte_miss_ratio')} | "
                f"{link(r['lcs.S3FIFO']['byte_miss_ratio'], '.4f', b + 'lcs.S3FIFO/byte_miss_ratio')} | "
                f"{link(sw['cpu_us_per_request'], '.1f', b + q + '/cpu_us_per_request')} | "
                f"{link(s3['cpu_us_per_request'], '.1f', b + p + '/cpu_us_per_request')} |")
    return out


def switcher_validation_table(data: dict[str, Any]) -> list[str]:
    """Per point of the validation slices, the best candidate alone and the switcher at each half-life."""
    heads = data["half_lives"]
    out = ["| trace | cache | best candidate alone | " + " | ".join(f"H = {h}: Δ (switches)" for h in heads) + " |",
           "|---|---|---|" + "---|" * len(heads)]
    for name, t in data["traces"].items():
        for i, r in enumerate(t["sizes"]):
            b = f"{SWITCHER}traces/{name}/sizes/{i}/"
            best = r["best_alone"]
            cells = " | ".join(
                f"{link(r['switcher'][h]['minus_best_alone'], '+.4f', f'{b}switcher/{h}/minus_best_alone')} "
                f"({r['switcher'][h]['switches']})" for h in heads)
            out.append(f"| {name} | {r['fraction']:.1%} | {best}: "
                       f"{link(r['alone'][best], '.4f', f'{b}alone/{quote(best)}')} | {cells} |")
    means = " | ".join(link(data["summary"][h]["mean_minus_best_alone"], "+.4f",
                            f"{SWITCHER}summary/{h}/mean_minus_best_alone") for h in heads)
    worsts = " | ".join(link(data["summary"][h]["worst_minus_best_alone"], "+.4f",
                             f"{SWITCHER}summary/{h}/worst_minus_best_alone") for h in heads)
    out += [f"| mean | | | {means} |", f"| worst | | | {worsts} |"]
    return out


def main() -> None:
    replay = json.loads((RESULTS / "replay.json").read_text())
    policies = json.loads((RESULTS / "policies.json").read_text())
    print("\n".join(replay_points(replay)))
    print(json.dumps(replay["goals"]["summary"]))
    for name in replay["traces"]:
        print(f"\n{name}, medium:\n")
        print("\n".join(replay_table(replay, name, "medium")))
    print()
    print("\n".join(sweep_lines(replay)))
    print()
    print("\n".join(policies_table(policies)))
    print()
    print("\n".join(selection_table(policies)))
    print()
    print("\n".join(switch_table(policies)))
    print()
    print("\n".join(switcher_validation_table(json.loads((RESULTS / "switcher_validation.json").read_text()))))
    print(json.dumps(policies.get("goals", {})))


if __name__ == "__main__":
    sys.exit(main())
