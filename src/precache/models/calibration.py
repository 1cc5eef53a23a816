"""Temperature scaling and calibration diagnostics (numpy only: usable at serving time too).

Why temperature scaling: it is one scalar, fit on the validation slice by minimising the negative
log-likelihood; it never changes the ranking (so HR@k is untouched) and it makes "top-1 probability
0.7" mean about 70% correct. ECE and the reliability table follow the evaluation protocol: confidence
is the top-1 probability among the pages a predictor may return (PAD/OOV excluded), correctness is
"the true next page is that top-1 page".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from precache.scoring import Bin, expected_calibration_error, reliability_bins


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row softmax of ``logits / temperature`` in float64-stable form."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``targets`` under ``softmax(logits / temperature)``."""
    if len(targets) == 0:
        return math.nan
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    logz = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(logz - z[np.arange(len(targets)), targets]))


def fit_temperature(
    logits: np.ndarray, targets: np.ndarray, lower: float = 0.05, upper: float = 20.0, iterations: int = 60
) -> float:
    """The temperature minimising validation NLL: golden-section search over log T (NLL is unimodal
    in T for fixed logits, and a 1-D search needs no optimiser dependency)."""
    if len(targets) == 0:
        return 1.0
    a, b = math.log(lower), math.log(upper)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(logits, targets, math.exp(c)), nll(logits, targets, math.exp(d))
    for _ in range(iterations):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(logits, targets, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(logits, targets, math.exp(d))
    return float(math.exp((a + b) / 2))


ReliabilityBin = Bin  # the name this module used before precache.scoring


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    table: list[ReliabilityBin]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def top1_confidence(
    logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0, excluded: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 probability among returnable ids (``>= excluded``) and whether it was right."""
    probs = softmax(logits, temperature)
    probs[:, :excluded] = -1.0
    top = probs.argmax(axis=1)
    return probs[np.arange(len(top)), top], top == targets


def reliability_table(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width confidence bins: count, mean confidence and accuracy per bin (empty bins kept)."""
    return reliability_bins(np.asarray(confidence).tolist(), np.asarray(correct).tolist(), bins)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error (:func:`precache.scoring.expected_calibration_error`) of numpy arrays."""
    return expected_calibration_error(np.asarray(confidence).tolist(), np.asarray(correct).tolist(), bins)


def calibrate(logits: np.ndarray, targets: np.ndarray, bins: int = 10, excluded: int = 2) -> CalibrationReport:
    """Fit the temperature on (validation) logits and report ECE/NLL before and after."""
    temperature = fit_temperature(logits, targets)
    conf0, ok0 = top1_confidence(logits, targets, 1.0, excluded)
    conf1, ok1 = top1_confidence(logits, targets, temperature, excluded)
    return CalibrationReport(
        temperature=temperature,
        ece_before=ece(conf0, ok0, bins),
        ece_after=ece(conf1, ok1, bins),
        nll_before=nll(logits, targets, 1.0),
        nll_after=nll(logits, targets, temperature),
        table=reliability_table(conf1, ok1, bins),
    )


def fit_isotonic(confidence: np.ndarray, correct: np.ndarray) -> tuple[list[float], list[float]]:
    """Monotone map confidence -> accuracy (pool-adjacent-violators), as knots for ``np.interp``.

    For predictors that only return ranked lists with probabilities (baselines, blends), there are no
    logits to scale; an isotonic map of the stated probability keeps the ranking and fixes the scale."""
    order = np.argsort(confidence, kind="stable")
    xs = np.asarray(confidence, dtype=np.float64)[order]
    ys = np.asarray(correct, dtype=np.float64)[order]
    blocks: list[list[float]] = []  # [sum_x, sum_y, count]
    for x, y in zip(xs, ys, strict=True):
        blocks.append([x, y, 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            sx, sy, n = blocks.pop()
            blocks[-1][0] += sx
            blocks[-1][1] += sy
            blocks[-1][2] += n
    if not blocks:
        return [0.0, 1.0], [0.0, 1.0]
    knots_x = [b[0] / b[2] for b in blocks]
    knots_y = [b[1] / b[2] for b in blocks]
    return [0.0, *knots_x, 1.0], [0.0, *knots_y, knots_y[-1]]


def apply_isotonic(probabilities: np.ndarray, knots: tuple[Sequence[float], Sequence[float]]) -> np.ndarray:
    """Map probabilities through the fitted knots (piecewise linear, clipped to [0, 1])."""
    mapped: np.ndarray = np.clip(np.interp(probabilities, knots[0], knots[1]), 0.0, 1.0)
    return mapped


PLATT_MIN_SLOPE = 1e-3  # a calibration map must keep the list's order: its slope stays positive


def fit_platt(confidence: np.ndarray, correct: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Logistic map ``sigmoid(a * logit(p) + b)`` of a stated probability, fit by Newton's method on
    the log loss. Two parameters instead of isotonic's one knot per block: it cannot overfit a small
    calibration set (a few hundred transitions), which is what small traces give.

    The slope is kept at ``PLATT_MIN_SLOPE`` or above: where higher stated probabilities are *less* often
    right (a poor model on a small set), the unconstrained fit turns negative and would reverse every
    ranked list; the best order-keeping map is then nearly flat, with only the intercept fit."""
    p = np.clip(np.asarray(confidence, dtype=np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(correct, dtype=np.float64)
    x = np.log(p / (1 - p))
    a, b = _newton_platt(x, y, 1.0, 0.0, iterations, fit_slope=True)
    if a < PLATT_MIN_SLOPE:
        a, b = _newton_platt(x, y, PLATT_MIN_SLOPE, b, iterations, fit_slope=False)
    return a, b


def _newton_platt(x: np.ndarray, y: np.ndarray, a: float, b: float, iterations: int, *, fit_slope: bool
                  ) -> tuple[float, float]:
    """Newton steps on the (lightly L2-regularised) log loss; the intercept alone when not ``fit_slope``."""
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(-np.clip(a * x + b, -500.0, 500.0)))
        w = q * (1 - q) + 1e-9
        if not fit_slope:
            step_b = (float(np.sum(q - y)) + 1e-3 * b) / (float(np.sum(w)) + 1e-3)
            b -= step_b
            if abs(step_b) < 1e-8:
                break
            continue
        grad = np.array([np.sum((q - y) * x), np.sum(q - y)]) + 1e-3 * np.array([a - 1.0, b])
        hess = np.array([[np.sum(w * x * x) + 1e-3, np.sum(w * x)], [np.sum(w * x), np.sum(w) + 1e-3]])
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-8:
            break
    return a, b


def apply_platt(probabilities: np.ndarray, params: Sequence[float]) -> np.ndarray:
    """``sigmoid(a * logit(p) + b)``, 0 where p <= 0 (runs on every served list: minimum/maximum, not
    np.clip, whose Python-level checks cost more than the arithmetic on ten numbers; same values)."""
    x = np.asarray(probabilities, dtype=np.float64)
    p = np.minimum(np.maximum(x, 1e-6), 1 - 1e-6)
    z = np.minimum(np.maximum(params[0] * np.log(p / (1 - p)) + params[1], -500.0), 500.0)
    mapped: np.ndarray = np.where(x <= 0, 0.0, 1.0 / (1.0 + np.exp(-z)))
    return mapped


MAP_FITTERS: dict[str, tuple[Any, Any]] = {
    "none": (lambda c, y: None, lambda p, m: np.asarray(p, dtype=np.float64)),
    "platt": (fit_platt, apply_platt),
    "isotonic": (fit_isotonic, apply_isotonic),
}


PLATT_MARGIN = 0.01  # another map must beat Platt's held-period ECE by this much to be chosen


def choose_map(confidence: np.ndarray, correct: np.ndarray, periods: np.ndarray | None = None,
               n_periods: int = 5, margin: float = PLATT_MARGIN) -> tuple[str, Any, dict[str, float]]:
    """The monotone map -- none, Platt (2 parameters) or isotonic (one knot per block) -- that holds up on
    a period it was not fit on, refit on everything. Returns (method, parameters, held-period ECEs).

    Shift-robust choice: for each period (``periods`` gives each example's period id, e.g. its
    cross-fitting fold; by default ``n_periods`` contiguous blocks in the given, time, order) the map is
    fit on the other periods and scored by ECE on the held one. Platt is the default (two parameters:
    it transfers); another map replaces it only when its mean held-period ECE is lower by ``margin``.
    Why the prior: the held periods of a small trace differ a lot (NASA 1 Aug: top-1 accuracy 0.16-0.27
    between blocks of ~1,000 transitions), so picking the plain minimum picks noise -- on NASA and
    DIGINETICA (9 trace/configuration pairs) the plain minimum of pooled, mean or worst held-period ECE
    each missed ECE <= 0.05 on test in one or two pairs, the Platt prior in none. Platt loses by far
    where it cannot fit, e.g. a count model whose top-1 is often exactly 1, and isotonic is chosen."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    if periods is None:
        periods = np.arange(len(confidence)) * n_periods // max(1, len(confidence))
    ids = np.unique(periods)
    held: dict[str, float] = {}
    for name, (fit, apply) in MAP_FITTERS.items():
        scores = [ece(apply(confidence[periods == p], fit(confidence[periods != p], correct[periods != p])),
                      correct[periods == p]) for p in ids if len(ids) > 1]
        held[name] = float(np.mean(scores)) if scores else ece(confidence, correct)
    best = min(held, key=lambda n: (held[n], list(MAP_FITTERS).index(n)))
    method = best if held[best] < held["platt"] - margin else "platt"
    return method, MAP_FITTERS[method][0](confidence, correct), held
