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


# -- the online calibrator: the same Platt map, learned test-then-learn from the answers it corrects ---------

CAL_BINS = 64  # bins of logit(p) over [-CAL_LOGIT, CAL_LOGIT]: each keeps its weight, hits and mean logit
CAL_LOGIT = 7.0
CAL_HALF_LIFE = 1000.0  # outcomes: the window holds ~1,443 effective outcomes (rate SE ~0.013, a quarter of 0.05)
CAL_PRIOR = 100.0  # pseudo-outcomes that agree with the unmapped merge (100 outcomes: rate SE 0.05, the target)
CAL_REFIT_EVERY = 32  # outcomes between Newton refits (~2% of the window: the map moves little in between)
CAL_MAX_SESSIONS = 100_000  # answers awaiting their outcome (oldest dropped first)
CAL_RIDGE = 1e-3  # a light pull toward identity: the fit is defined when all outcomes share one bin
CAL_MIN_SLOPE = 1e-3  # the slope stays positive: the map never reorders a list
_RENORMALISE = 2.0**40


class OnlineCalibrator:
    """A Platt map ``sigmoid(a * logit(p) + b)`` of the online answers' probabilities, learned from each
    answer's outcome after the answer was served (docs/online.md, "Calibration of the online answers").

    What it learns is what ECE scores (:func:`precache.scoring.expected_calibration_error`): the answer's
    top-1 probability *before* the map, and whether the next page was that top-1 page. State: ``CAL_BINS``
    bins of ``logit(p)``, each holding the decayed weight, hits and weighted sum of logits of its outcomes
    (exponential forgetting with a half-life of ``half_life`` outcomes, as forward decay: outcome ``k`` adds
    ``2^(k / half_life)`` and the bins are rescaled when that grows large), plus ``prior`` pseudo-outcomes
    spread like the observed ones that agree with the unmapped merge, so the map starts at identity
    (``a=1, b=0``) and leaves it only as the outcomes outweigh the prior. Every ``refit_every`` outcomes a
    few Newton steps on the bins (at most ``CAL_BINS`` points, from the current map) refit ``a, b``; the
    slope is kept >= ``CAL_MIN_SLOPE``, so the map is monotone and HR@k untouched. Fixed size, no clock,
    deterministic: the same outcomes in the same order give the same map.

    For a service: :meth:`served` keeps the answer of a session (its top-1 page and unmapped top-1
    probability) until :meth:`outcome` sees the same session's next page view; at most ``max_sessions``
    answers wait (least recent dropped). ``inline=False`` leaves the refit to :meth:`maybe_refit` (the
    layer's background task), so the request path only adds to one bin.
    """

    def __init__(self, half_life: float = CAL_HALF_LIFE, prior: float = CAL_PRIOR,
                 refit_every: int = CAL_REFIT_EVERY, max_sessions: int = CAL_MAX_SESSIONS, *,
                 inline: bool = True) -> None:
        if not (half_life > 0 and prior > 0 and refit_every >= 1 and max_sessions >= 1):
            raise ValueError("half_life and prior must be > 0, refit_every and max_sessions >= 1")
        self.half_life, self.prior, self.refit_every = half_life, prior, refit_every
        self.max_sessions, self.inline = max_sessions, inline
        self.a, self.b = 1.0, 0.0
        self.weight = [0.0] * CAL_BINS
        self.hits = [0.0] * CAL_BINS
        self.logits = [0.0] * CAL_BINS
        self.scale = 1.0  # the weight the next outcome adds (forward decay)
        self.growth = 2.0 ** (1.0 / half_life)
        self.outcomes = 0
        self.since_refit = 0
        self.refits = 0
        self.waiting: dict[str, tuple[str, float]] = {}  # session -> (top-1 page, unmapped top-1 probability)

    @property
    def params(self) -> tuple[float, float]:
        return self.a, self.b

    def apply(self, ranked: Prediction) -> Prediction:
        """``ranked`` through the current map (:func:`apply_map`; identity until outcomes move it)."""
        if self.a == 1.0 and self.b == 0.0:
            return list(ranked)
        return apply_map(ranked, ("platt", (self.a, self.b)))

    def learn(self, p: float, hit: bool) -> None:
        """One outcome: the unmapped top-1 probability ``p`` of an answer already served, and whether its
        top-1 page was the next page."""
        q = min(max(p, 1e-6), 1 - 1e-6)
        x = math.log(q / (1 - q))
        i = min(CAL_BINS - 1, max(0, int((x + CAL_LOGIT) / (2 * CAL_LOGIT) * CAL_BINS)))
        self.weight[i] += self.scale
        self.hits[i] += self.scale if hit else 0.0
        self.logits[i] += self.scale * x
        self.scale *= self.growth
        if self.scale > _RENORMALISE:
            for v in (self.weight, self.hits, self.logits):
                v[:] = [w / self.scale for w in v]
            self.scale = 1.0
        self.outcomes += 1
        self.since_refit += 1
        if self.inline:
            self.maybe_refit()

    def maybe_refit(self) -> bool:
        """Refit when ``refit_every`` outcomes arrived since the last fit; True when it did."""
        if self.since_refit < self.refit_every:
            return False
        self.since_refit = 0
        self.refits += 1
        self.a, self.b = self._fit()
        return True

    def _fit(self, iterations: int = 8) -> tuple[float, float]:
        """Newton steps on the log loss of the bins plus the prior's pseudo-outcomes (see the class doc)."""
        total = sum(self.weight) / self.scale  # the effective (decayed) number of outcomes
        if total <= 0:
            return 1.0, 0.0
        share = self.prior / total  # pseudo-weight per unit of observed weight
        points = []
        for w, h, s in zip(self.weight, self.hits, self.logits, strict=True):
            if w > 0:
                x, y = s / w, h / w
                points.append((x, w / self.scale * (1 + share), (y + share / (1 + math.exp(-x))) / (1 + share)))
        a, b = self.a, self.b
        for _ in range(iterations):
            ga = gb = haa = hab = hbb = 0.0
            for x, w, y in points:
                q = 1.0 / (1.0 + math.exp(-min(max(a * x + b, -500.0), 500.0)))
                r, v = w * (q - y), w * q * (1 - q) + 1e-12
                ga, gb = ga + r * x, gb + r
                haa, hab, hbb = haa + v * x * x, hab + v * x, hbb + v
            ga, gb = ga + CAL_RIDGE * (a - 1.0), gb + CAL_RIDGE * b  # defined with one bin of outcomes too
            haa, hbb = haa + CAL_RIDGE, hbb + CAL_RIDGE
            det = haa * hbb - hab * hab
            if det <= 1e-12:
                break
            da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
            a, b = a - da, b - db
            if max(abs(da), abs(db)) < 1e-7:
                break
        if not (math.isfinite(a) and math.isfinite(b)):
            return self.a, self.b
        return max(a, CAL_MIN_SLOPE), b

    # -- a service's sessions: the answer waits for the session's next page view ----------------------
    def served(self, session: str, ranked: Prediction) -> None:
        """Remember the unmapped answer ``ranked`` served to ``session`` (its top-1), replacing an older one."""
        if not session or not ranked:
            return
        self.waiting.pop(session, None)
        self.waiting[session] = (ranked[0][0], ranked[0][1])
        if len(self.waiting) > self.max_sessions:
            del self.waiting[next(iter(self.waiting))]

    def outcome(self, session: str, page: str) -> bool:
        """The session's next page view: learn the waiting answer's outcome (True when there was one)."""
        answer = self.waiting.pop(session, None)
        if answer is None:
            return False
        self.learn(answer[1], answer[0] == page)
        return True

    def forget(self, session: str) -> None:
        self.waiting.pop(session, None)

    def snapshot(self) -> dict[str, Any]:
        return {"a": round(self.a, 4), "b": round(self.b, 4), "outcomes": self.outcomes, "refits": self.refits,
                "waiting": len(self.waiting), "weight": round(sum(self.weight) / self.scale, 1)}


def calibrated_online(lists: Sequence[Prediction], targets: Sequence[str],
                      calibrator: OnlineCalibrator | None = None) -> list[Prediction]:
    """The lists of a test-then-learn walk through an online calibrator (a fresh one by default): list ``i``
    is mapped with what the outcomes of lists ``0..i-1`` taught, then its own outcome is learned."""
    cal = OnlineCalibrator() if calibrator is None else calibrator
    out: list[Prediction] = []
    for ranked, target in zip(lists, targets, strict=True):
        out.append(cal.apply(ranked))
        if ranked:
            cal.learn(ranked[0][1], ranked[0][0] == target)
    return out
