"""The poisoning check: 1% of sessions from one client replaying one path, learned test-then-learn, guards on
and off (``bench/bench_online.py`` and ``tests/online``).

The attacker's path is the chain of the most popular training targets (it rewrites the busiest rows); its
sessions are spread evenly over the scored part of the test period, learned through the guard (or not
guarded) and never scored. The figure is the online HR@5 on the real transitions with and without them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from precache.evaluation import Split
from precache.online.merge import MergeParams
from precache.online.prequential import Event, live_pass, online_lists, tally
from precache.online.protocol import default_guard
from precache.types import Prediction

SHARE = 0.01
PATH_LENGTH = 10
CLIENT = "poison-client"


def poison_path(split: Split) -> list[str]:
    """The attacker's path: the most popular training targets, in a chain (it rewrites the busiest rows)."""
    counts: Counter[str] = Counter(p for s in split.train_and_validation for p in s.pages[1:])
    return [page for page, _ in counts.most_common(PATH_LENGTH)]


def scored_part(stream: Sequence[Event], limit: int | None) -> int:
    """How many events of the stream the scoring reaches (the poison is spread over that part)."""
    seen = 0
    for j, e in enumerate(stream):
        if e.scored:
            seen += 1
            if limit is not None and seen > limit:
                return j
    return len(stream)


def poisoned(stream: Sequence[Event], path: list[str], limit: int | None) -> tuple[list[Event], int]:
    """The stream with the attacker's sessions inserted at even intervals (learned, never scored)."""
    reach = scored_part(stream, limit)
    sessions = len({(e.session, e.client) for e in stream[:reach]})
    n = max(1, round(SHARE * sessions))
    at = {round((k + 0.5) * reach / n): k for k in range(n)}
    out: list[Event] = []
    for j, e in enumerate(stream):
        k = at.get(j)
        if k is not None:
            out.extend(Event(path[: i], path[i], e.t, f"poison-{k}", CLIENT, scored=False, position=i)
                       for i in range(1, len(path)))
        out.append(e)
    return out, n


def poisoning(seed: Sequence[Event], stream: Sequence[Event], split: Split, frozen: list[Prediction],
              params: MergeParams, limit: int | None) -> dict[str, Any]:
    path = poison_path(split)
    dirty, sessions = poisoned(stream, path, limit)
    out: dict[str, Any] = {"poison_sessions": sessions, "path": path, "params": params.as_dict()}
    for label, factory in (("guards_on", default_guard), ("guards_off", lambda: None)):
        clean = live_pass(seed, stream, params.half_life, factory(), limit)
        bad = live_pass(seed, dirty, params.half_life, factory(), limit)
        hr_clean = tally(online_lists(frozen, clean, params), clean.targets).hr(5)
        hr_bad = tally(online_lists(frozen, bad, params), bad.targets).hr(5)
        out[label] = {"hr5_clean": round(hr_clean, 4), "hr5_poisoned": round(hr_bad, 4),
                      "delta_hr5": round(hr_bad - hr_clean, 4)}
    return out
