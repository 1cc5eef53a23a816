"""The simulated retrain for bench_online.py: refit on everything seen so far at fixed points of the test period."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from precache.evaluation import Split
from precache.models.base import PagePredictorBase
from precache.online.prequential import Event, frozen_heads, row, tally
from precache.traces.model import Session
from precache.types import Prediction

DAY = 86_400.0


def schedule(scored: Sequence[Event], timed: bool, key: str) -> tuple[list[float], str] | str:
    """Refit times and their label, or why there is no retrain row."""
    if key == "msnbc":
        return "skipped: no clock (one day of sequences) and an auto refit costs minutes (attention time cap)"
    first, last = scored[0].t, scored[-1].t
    if not timed:
        return [first + (last - first) * j / 5 for j in range(1, 5)], "every fifth of the test period (no clock)"
    for period, label in ((7 * DAY, "weekly"), (DAY, "daily")):
        if last - first >= 2 * period:
            times = []
            moment = first + period
            while moment < last:
                times.append(moment)
                moment += period
            return times, label
    return f"skipped: the test period spans {(last - first) / 3600:.1f} h, under two days"


def seen_sessions(split: Split, stream: Sequence[Event], until: float) -> list[Session]:
    """Train + validation and the prefixes of test sessions observed before ``until``, by start time."""
    by_id = {(s.session_id, s.client): s for s in split.test}
    length: dict[tuple[str, str], int] = {}
    for e in stream:
        if e.t < until and e.scored:
            key = (e.session, e.client)
            length[key] = max(length.get(key, 0), e.position + 1)
    prefixes = [Session(s.session_id, s.client, s.start, s.pages[:n], s.times[:n])
                for key, n in length.items() for s in [by_id[key]] if n >= 2]
    return sorted([*split.train_and_validation, *prefixes], key=lambda s: s.start)


def retrain_row(build: Callable[[], PagePredictorBase], split: Split, stream: Sequence[Event], limit: int | None,
                key: str, console: Console, first: list[Prediction] | None = None) -> dict[str, Any] | str:
    scored = [e for e in stream if e.scored][:limit]
    timed = all(len(s.times) == len(s.pages) for s in split.test)
    plan = schedule(scored, timed, key)
    if isinstance(plan, str):
        return plan
    times, label = plan
    lists: list[Prediction] = []
    bounds = [-float("inf"), *times, float("inf")]
    for j in range(len(bounds) - 1):
        segment = [e for e in scored if bounds[j] <= e.t < bounds[j + 1]]
        if not segment:
            continue
        if j == 0 and first is not None:
            lists.extend(first[: len(segment)])
            continue
        seen = seen_sessions(split, stream, bounds[j]) if j else split.train_and_validation
        cut = max(1, len(seen) // 10)
        model = build()
        model.fit(seen[:-cut], seen[-cut:])
        lists.extend(frozen_heads(model, segment, None))
        console.print(f"{key}: retrain {j}/{len(times)} ({label}) on {len(seen):,} sessions")
    return row("auto", "retrain", tally(lists, [e.target for e in scored]), period=label, refits=len(times),
               updates_per_s=None, state_bytes=None)
