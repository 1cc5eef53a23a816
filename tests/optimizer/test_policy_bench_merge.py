"""bench/policy_merge.py joins per-size outputs of bench_policies as one run would (issue 26): the
1M-request trace runs one process per cache size, and the goals span every point."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from policy_merge import merge


def _row(frac: float, lru: float, best: float, learned: float, lrb: float | None = None) -> dict[str, Any]:
    def r(bmr: float) -> dict[str, float]:
        return {"miss_ratio": bmr, "byte_miss_ratio": bmr}

    row: dict[str, Any] = {"fraction": frac, "lcs.LRU": r(lru), "lcs.Sieve": r(best), "lcs.Belady": r(0.1),
                           "lcs.BeladySize": r(0.1), "lcs.LRB": r(lru if lrb is None else lrb),
                           "precache.lru": r(lru), "precache.s3fifo (default)": r(lru),
                           "precache.learned (online)": r(learned)}
    row["precache.learned"] = {**r(learned), "config": "sampled"}
    row["shipped"] = {**r(learned), "config": "sampled", "kind": "learned"}
    return row


def _doc(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"traces": {name: {"requests": 10, "sizes": rows, "returns_lru_numbers": []}}}


def test_merge_joins_sizes_and_recomputes_what_spans_them() -> None:
    # LRB equals LRU at the first size only: per file it looks "not running" there, merged it runs
    a = _doc("syn", [_row(0.001, 0.9, 0.8, 0.79)])
    b = _doc("syn", [_row(0.1, 0.5, 0.3, 0.31, lrb=0.25)])
    real = _doc("real", [_row(0.01, 0.7, 0.6, 0.6)])
    merged = merge([b, a, real])
    syn = merged["traces"]["syn"]
    assert [r["fraction"] for r in syn["sizes"]] == [0.001, 0.1]
    assert syn["returns_lru_numbers"] == []  # LRB differs from LRU at one size: it counts
    assert syn["sizes"][1]["summary"]["best_baseline_by_bytes"] == "lcs.LRB"
    assert syn["sizes"][1]["summary"]["verdict"] == "worse"  # 0.31 against LRB's 0.25
    assert syn["sizes"][0]["summary"]["verdict"] == "better"
    g = merged["goals"]
    assert g["points"] == 3 and g["learned_better_or_tied"] == 2
    assert abs(g["learned_worst_minus_best"] - 0.06) < 1e-9 and g["met"] == {"learned": False, "shipped": False}
    assert merged["meta"]["shipped"].startswith("per point")


def test_merge_excludes_a_policy_that_equals_lru_everywhere() -> None:
    merged = merge([_doc("t", [_row(0.001, 0.9, 0.8, 0.8)]), _doc("t", [_row(0.1, 0.5, 0.4, 0.4)])])
    assert merged["traces"]["t"]["returns_lru_numbers"] == ["lcs.LRB"]
    assert merged["goals"]["met"] == {"learned": False, "shipped": True}  # 2 points: < 10 better or tied
