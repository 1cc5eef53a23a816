"""The fixed-TTL frontier: the best heuristic at every fixed TTL, and every other row judged against it.

Why: with content that changes, a TTL trades load time for stale serves, so "the" TTL of a baseline is a
choice, not a constant. The best heuristic (the better of LRU and S3-FIFO at the configured TTL, on the
same run) is replayed at each TTL of ``TTL_GRID`` (rows ``heuristic-ttl-<seconds>``, ``heuristic-ttl-none``
for no expiry); together they trace its (stale rate, load time) frontier. A row is judged against the
best fixed-TTL row whose stale rate is no higher than its own (``frontier_at``): it must load faster.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

TTL_GRID: tuple[float | None, ...] = (60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0, None)
"""Fixed TTLs the best heuristic runs at: 60 s to 24 h, and no expiry."""
JUDGED = ("adaptive-ttl", "learned", "learned-adaptive-ttl", "full-offline", "full")
"""Rows compared with the frontier."""
_EPS = 1e-12


def ttl_mode(ttl: float | None) -> str:
    """The row name of the best heuristic at a fixed TTL (``heuristic-ttl-3600``, ``heuristic-ttl-none``)."""
    return "heuristic-ttl-none" if ttl is None else f"heuristic-ttl-{ttl:.0f}"


def frontier_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if str(r["mode"]).startswith("heuristic-ttl-")]


def frontier_at(rows: Sequence[dict[str, Any]], stale_rate: float) -> dict[str, Any] | None:
    """The fixed-TTL row with the lowest load time among those with a stale rate <= ``stale_rate``."""
    ok = [r for r in frontier_rows(rows) if r["stale_rate"] <= stale_rate + _EPS]
    return min(ok, key=lambda r: (r["avg_load_ms"], r["stale_rate"])) if ok else None


def interpolated_frontier(rows: Sequence[dict[str, Any]], stale_rate: float) -> float | None:
    """Load time of the frontier's Pareto points linearly interpolated at ``stale_rate`` (a stricter
    reading than :func:`frontier_at`: mixing two fixed TTLs could reach any point between them)."""
    pts = sorted((r["stale_rate"], r["avg_load_ms"]) for r in frontier_rows(rows))
    pareto: list[tuple[float, float]] = []
    for s, load in pts:
        if not pareto or load < pareto[-1][1] - _EPS:
            pareto.append((s, load))
    if not pareto or stale_rate < pareto[0][0] - _EPS:
        return None
    for (s0, l0), (s1, l1) in itertools.pairwise(pareto):
        if s0 <= stale_rate <= s1:
            return l0 + (l1 - l0) * (stale_rate - s0) / (s1 - s0) if s1 > s0 else min(l0, l1)
    return pareto[-1][1]


def versus_frontier(rows: Sequence[dict[str, Any]], judged: Sequence[str] = JUDGED) -> dict[str, Any]:
    """Each judged row against the frontier, and which fixed TTL won overall (lowest load time)."""
    front = frontier_rows(rows)
    if not front:
        return {}
    winner = min(front, key=lambda r: (r["avg_load_ms"], r["stale_rate"]))
    out: dict[str, Any] = {"fastest_fixed_ttl": winner["mode"], "fastest_fixed_ttl_avg_load_ms": winner["avg_load_ms"],
                           "fastest_fixed_ttl_stale_rate": winner["stale_rate"], "rows": {}}
    by_mode = {r["mode"]: r for r in rows}
    for name in judged:
        row = by_mode.get(name)
        if row is None:
            continue
        best = frontier_at(rows, row["stale_rate"])
        interp = interpolated_frontier(rows, row["stale_rate"])
        out["rows"][name] = {
            "avg_load_ms": row["avg_load_ms"], "stale_rate": row["stale_rate"],
            "best_fixed_ttl": None if best is None else best["mode"],
            "best_fixed_ttl_avg_load_ms": None if best is None else best["avg_load_ms"],
            "best_fixed_ttl_stale_rate": None if best is None else best["stale_rate"],
            # no fixed TTL is as fresh: the row dominates the whole frontier on staleness
            "below": best is None or row["avg_load_ms"] < best["avg_load_ms"],
            "margin_ms": None if best is None else best["avg_load_ms"] - row["avg_load_ms"],
            "interpolated_frontier_ms": interp,
            "below_interpolated": interp is None or row["avg_load_ms"] < interp,
        }
    return out
