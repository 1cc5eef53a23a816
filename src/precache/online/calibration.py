"""A calibration map for the online answers (the frozen model's list merged with the live counts).

Why a map of its own: the frozen model is calibrated (auto's own map), but the merge
``(1 - lam) * frozen + lam * live`` is not a calibrated distribution as a whole -- the live row's shares are
raw frequencies of a few decayed counts, and ``lam`` grows with the row's evidence. So the online answers get
a monotone map of their own, fit where every other online setting is chosen: on the validation slice's
test-then-learn pass (:func:`precache.online.prequential.choose`), never on test.

Which map: the rule auto uses for its own lists, :func:`precache.models.calibration.choose_map`, reused as it
is -- none, Platt (``sigmoid(a * logit(p) + b)``, two parameters) or isotonic, each fit on four of five
contiguous time blocks of the validation walk and scored by ECE on the fifth; Platt unless another map beats
its held-block ECE by 0.01, then refit on the whole walk. Why that family and that rule: the walk is small
(NASA Jul's has 143 transitions), so the default has two parameters and cannot overfit it; "none" stays a
candidate because a map that does not hold from one block to the next would not hold on test either (the
merge can be near-calibrated already, and the validation walk, seeded with less data, is not the test
walk); isotonic (one knot per block of points) must earn its place on held blocks. Every candidate is
monotone (Platt's slope is kept positive), so no list is reordered and HR@k is untouched.

The map runs on every online answer, so :func:`apply_map` is plain Python on the ten listed probabilities
(the same values as :func:`precache.models.calibration.apply_platt` / ``apply_isotonic``, which numpy
computes at a higher fixed cost); the top-1 keeps exactly its mapped value (see :func:`apply_map`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from precache.models.calibration import choose_map, ece
from precache.types import Prediction

OnlineMap = tuple[str, Any]  # ("platt", (a, b)) | ("isotonic", (xs, ys)): the same forms as auto's map


def _platt(p: float, a: float, b: float) -> float:
    if p <= 0.0:
        return 0.0
    q = min(max(p, 1e-6), 1 - 1e-6)
    z = min(max(a * math.log(q / (1 - q)) + b, -500.0), 500.0)
    return 1.0 / (1.0 + math.exp(-z))


def _isotonic(p: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """``np.interp(p, xs, ys)`` clipped to [0, 1] (xs ascending)."""
    if p <= xs[0]:
        return min(max(ys[0], 0.0), 1.0)
    if p >= xs[-1]:
        return min(max(ys[-1], 0.0), 1.0)
    i = bisect.bisect_right(xs, p)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    value = y0 if x1 <= x0 else y0 + (y1 - y0) * (p - x0) / (x1 - x0)
    return min(max(value, 0.0), 1.0)


def map_value(p: float, online_map: OnlineMap) -> float:
    """One probability through the map."""
    method, params = online_map
    if method == "platt":
        return _platt(p, params[0], params[1])
    return _isotonic(p, params[0], params[1])


def apply_map(ranked: Prediction, online_map: OnlineMap) -> Prediction:
    """``ranked`` with each probability mapped (0 stays 0 under Platt), order kept.

    The top-1 keeps exactly its mapped value (the value the map was fit for); when the mapped list would
    hold more than all the mass, the pages below it share what is left, scaled alike (so the order holds).
    Auto's map renormalises the whole list instead, which would move the top-1 off the fitted value: with a
    flat map (a small slope) the tail's small probabilities rise toward the top-1's and the renormalised
    top-1 falls far below what the map says."""
    mapped = [map_value(p, online_map) for _, p in ranked]
    if mapped:
        rest, room = sum(mapped[1:]), max(0.0, 1.0 - mapped[0])
        if rest > room:
            mapped[1:] = [p * room / rest for p in mapped[1:]]
    return [(page, p) for (page, _), p in zip(ranked, mapped, strict=True)]


def top1(lists: Sequence[Prediction], targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 probability and whether it was right, for the lists that answered (as ECE counts them)."""
    pairs = [(r[0][1], r[0][0] == t) for r, t in zip(lists, targets, strict=True) if r]
    return np.array([p for p, _ in pairs], dtype=np.float64), np.array([ok for _, ok in pairs], dtype=bool)


def fit_online_map(lists: Sequence[Prediction], targets: Sequence[str]) -> tuple[OnlineMap | None, dict[str, Any]]:
    """The map for the online answers ``lists`` of a validation walk (in time order; see the module doc), and
    a report: the method, each candidate's held-block ECE, the walk's ECE before and after."""
    confidence, correct = top1(lists, targets)
    if len(confidence) == 0:
        return None, {"method": "none", "transitions": 0}
    method, params, held = choose_map(confidence, correct)
    chosen: OnlineMap | None = None
    if method == "platt":
        chosen = ("platt", (float(params[0]), float(params[1])))
    elif method == "isotonic":
        chosen = ("isotonic", (tuple(map(float, params[0])), tuple(map(float, params[1]))))
    after = confidence if chosen is None else np.array([map_value(float(p), chosen) for p in confidence])
    return chosen, {"method": method, "params": map_to_json(chosen), "transitions": len(confidence),
                    "held_block_ece": {k: round(v, 4) for k, v in held.items()},
                    "validation_ece_before": round(ece(confidence, correct), 4),
                    "validation_ece_after": round(ece(after, correct), 4)}


def map_from_json(value: Any) -> OnlineMap | None:
    """A stored map (``{"method": "platt"|"isotonic", "params": ...}`` or null), checked; ValueError when
    malformed (a model file is verified before it is used)."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("method") not in ("platt", "isotonic"):
        raise ValueError(f"unknown online calibration map {value!r}")
    params = value.get("params")
    if not isinstance(params, list | tuple) or len(params) != 2:
        raise ValueError(f"a calibration map needs params [a, b] or [xs, ys], got {params!r}")
    try:
        return _parsed(str(value["method"]), params)
    except TypeError as exc:
        raise ValueError(f"malformed calibration map params {params!r}: {exc}") from None


def _parsed(method: str, params: Sequence[Any]) -> OnlineMap:
    if method == "platt":
        a, b = (float(x) for x in params)
        if not (math.isfinite(a) and math.isfinite(b) and a > 0):
            raise ValueError(f"a Platt map needs finite params with a > 0, got {params!r}")
        return "platt", (a, b)
    xs, ys = (tuple(float(v) for v in part) for part in params)
    if (len(xs) != len(ys) or len(xs) < 2 or not all(math.isfinite(v) for v in (*xs, *ys))
            or any(b < a for a, b in itertools.pairwise(xs)) or any(b < a for a, b in itertools.pairwise(ys))):
        raise ValueError("an isotonic map needs equally many finite, ascending knots xs and ys")
    return "isotonic", (xs, ys)


def map_to_json(online_map: OnlineMap | None) -> dict[str, Any] | None:
    if online_map is None:
        return None
    method, params = online_map
    return {"method": method, "params": [list(params[0]), list(params[1])] if method == "isotonic" else list(params)}
