"""The one-standard-error rule: of several scored models, the simplest whose validation HR@5 is within one
standard error of the best one's.

Why one place: ``auto`` picks by it the n-gram baseline it ships as an edge fallback, and the edge
(:mod:`precache.edge.served`) picks by it which part of an auto model a Worker serves; two copies would
drift, and the edge would stop serving what auto chose for it.

Why the simplest within one standard error, ``sqrt(p (1 - p) / n)`` of the best hit rate ``p`` on ``n``
validation transitions: smaller differences are noise (NASA 1 Aug: PPM 0.441 vs markov-count 0.440 on 621
transitions, then 0.446 vs 0.455 on test), the attention model's score is optimistic (it early-stops on the
validation slice), and a simpler model is a smaller table (first-order: one row per page) or needs no ORT
runtime at all. The binomial standard error of the leader's hit rate is larger than that of a paired
difference, so the rule leans toward the simpler model on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def complexity(kind: str) -> int:
    """The kind's class's ``complexity`` (simplest first; an unknown kind counts as PPM's)."""
    from precache.models.kinds import predictor_class
    from precache.models.ppm import NgramPredictor

    try:
        return predictor_class(kind).complexity
    except ValueError:
        return NgramPredictor.complexity


def one_standard_error(hr5: float, transitions: float | None) -> float:
    """The standard error of a hit rate measured on ``transitions`` queries (0 when the count is unknown)."""
    return math.sqrt(hr5 * (1.0 - hr5) / transitions) if transitions else 0.0


@dataclass(frozen=True, slots=True)
class Scored:
    """One model to choose from: its kind and, when it was scored, its validation HR@5 and transitions."""

    kind: str
    hr5: float | None = None
    transitions: float | None = None


def simplest_within_one_se(options: Sequence[Scored]) -> tuple[int, float]:
    """The index in ``options`` of the simplest option (:func:`complexity`; an unknown kind counts as ppm)
    whose HR@5 is within one standard error of the best one's, and that standard error. Unscored options are
    considered only when none is scored (standard error 0). Ties: the higher HR@5, then the earlier option."""
    if not options:
        raise ValueError("no model to choose from")
    scored = [(i, o.hr5) for i, o in enumerate(options) if o.hr5 is not None]
    eligible, se = [(i, 0.0) for i in range(len(options))], 0.0
    if scored:
        leader, best = max(scored, key=lambda s: s[1])
        se = one_standard_error(best, options[leader].transitions)
        eligible = [(i, hr5) for i, hr5 in scored if hr5 >= best - se - 1e-12]
    pick, _ = min(eligible, key=lambda e: (complexity(options[e[0]].kind), -e[1], e[0]))
    return pick, se
