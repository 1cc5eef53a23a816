"""A calibration map for the online answers (the frozen model's list merged with the live counts).

Why a map of its own: the frozen model is calibrated (auto's own map), but the merge
``(1 - lam) * frozen + lam * live`` is not a calibrated distribution as a whole -- the live row's shares are
raw frequencies of a few decayed counts, and ``lam`` grows with the row's evidence. So the online answers get
a monotone map of their own, fit where every other online setting is chosen: on the validation slice's
test-then-learn pass (:func:`precache.online.prequential.choose`), never on test.

Why Platt (``sigmoid(a * logit(p) + b)``, :func:`precache.models.calibration.fit_platt`): two parameters fit
by log loss on the top-1 probability (what ECE scores), so it cannot overfit a validation walk of a few
hundred transitions (NASA Jul's has ~250); its slope is kept positive, so it never reorders a list and
HR@k is untouched. Isotonic regression has one knot per block of the same few hundred points, and
temperature scaling needs logits that a merged list does not have.

The map runs on every online answer, so :func:`platt` is plain Python on the ten listed probabilities (the
same values as :func:`precache.models.calibration.apply_platt`, which numpy computes at a higher fixed cost);
a list whose mapped probabilities would sum to more than 1 is scaled below its top-1 (see :func:`platt`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from precache.models.calibration import ece, fit_platt
from precache.types import Prediction

Platt = tuple[float, float]


def platt(ranked: Prediction, ab: Platt) -> Prediction:
    """``ranked`` with each probability mapped through ``sigmoid(a * logit(p) + b)`` (0 stays 0), order kept.

    The top-1 keeps exactly its mapped value (the value the map was fit for); when the mapped list would
    hold more than all the mass, the pages below it share what is left, scaled alike (so the order holds).
    Auto's map renormalises the whole list instead, which would move the top-1 off the fitted value: with a
    flat map (a small slope) the tail's small probabilities rise toward the top-1's and the renormalised
    top-1 falls far below what the map says."""
    a, b = ab
    mapped = []
    for _, p in ranked:
        if p <= 0.0:
            mapped.append(0.0)
            continue
        q = min(max(p, 1e-6), 1 - 1e-6)
        z = min(max(a * math.log(q / (1 - q)) + b, -500.0), 500.0)
        mapped.append(1.0 / (1.0 + math.exp(-z)))
    if mapped:
        rest, room = sum(mapped[1:]), 1.0 - mapped[0]
        if rest > room:
            mapped[1:] = [p * room / rest for p in mapped[1:]]
    return [(page, p) for (page, _), p in zip(ranked, mapped, strict=True)]


def top1(lists: Sequence[Prediction], targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 probability and whether it was right, for the lists that answered (as ECE counts them)."""
    pairs = [(r[0][1], r[0][0] == t) for r, t in zip(lists, targets, strict=True) if r]
    return np.array([p for p, _ in pairs], dtype=np.float64), np.array([ok for _, ok in pairs], dtype=bool)


def fit_online_map(lists: Sequence[Prediction], targets: Sequence[str]) -> tuple[Platt | None, dict[str, Any]]:
    """Platt's ``(a, b)`` for the online answers ``lists`` of a validation walk, and a report (ECE before and
    after on that walk; no map when it has no answered list)."""
    confidence, correct = top1(lists, targets)
    if len(confidence) == 0:
        return None, {"method": "none", "transitions": 0}
    a, b = fit_platt(confidence, correct)
    after = [platt([("", float(p))], (a, b))[0][1] for p in confidence]
    return (a, b), {"method": "platt", "params": [a, b], "transitions": len(confidence),
                    "validation_ece_before": round(ece(confidence, correct), 4),
                    "validation_ece_after": round(ece(np.asarray(after), correct), 4)}


def map_from_json(value: Any) -> Platt | None:
    """A stored map (``{"method": "platt", "params": [a, b]}`` or null) checked; ValueError when malformed."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("method") != "platt":
        raise ValueError(f"unknown online calibration map {value!r}")
    params = value.get("params")
    if not isinstance(params, list | tuple) or len(params) != 2:
        raise ValueError(f"a Platt map needs params [a, b], got {params!r}")
    a, b = (float(x) for x in params)
    if not (math.isfinite(a) and math.isfinite(b) and a > 0):
        raise ValueError(f"a Platt map needs finite params with a > 0, got {params!r}")
    return a, b


def map_to_json(ab: Platt | None) -> dict[str, Any] | None:
    return None if ab is None else {"method": "platt", "params": [ab[0], ab[1]]}
