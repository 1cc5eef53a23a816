"""Two-sample tests, the mixture SPRT, the sample-ratio-mismatch check and sample sizes.

All distributions come from scipy. Conventions: ``diff`` is treatment minus control; intervals are
two-sided at level ``1 - alpha``; a result with fewer than two observations in an arm is ``None``
(the readout shows "insufficient data", never a number).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _st


@dataclass(frozen=True, slots=True)
class Comparison:
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    se: float

    def as_dict(self) -> dict[str, float]:
        return {"diff": self.diff, "ciLow": self.ci_low, "ciHigh": self.ci_high, "pValue": self.p_value,
                "se": self.se}


def two_proportions(x_a: float, n_a: float, x_b: float, n_b: float, alpha: float = 0.05) -> Comparison | None:
    """Difference of two proportions (b - a): Wald interval, pooled z-test p-value."""
    if n_a < 2 or n_b < 2:
        return None
    p_a, p_b = x_a / n_a, x_b / n_b
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    pooled = (x_a + x_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = p_b - p_a
    p_value = float(2 * _st.norm.sf(abs(diff) / se0)) if se0 > 0 else (1.0 if diff == 0 else 0.0)
    z = float(_st.norm.ppf(1 - alpha / 2))
    return Comparison(diff, diff - z * se, diff + z * se, p_value, se)


def welch(mean_a: float, var_a: float, n_a: float, mean_b: float, var_b: float, n_b: float,
          alpha: float = 0.05) -> Comparison | None:
    """Welch's t-test and interval for b - a from summary statistics (sample variances)."""
    if n_a < 2 or n_b < 2:
        return None
    va, vb = var_a / n_a, var_b / n_b
    se = math.sqrt(va + vb)
    diff = mean_b - mean_a
    if se == 0:
        return Comparison(diff, diff, diff, 1.0 if diff == 0 else 0.0, 0.0)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    result = _st.ttest_ind_from_stats(mean_b, math.sqrt(var_b), n_b, mean_a, math.sqrt(var_a), n_a, equal_var=False)
    t = float(_st.t.ppf(1 - alpha / 2, df))
    return Comparison(diff, diff - t * se, diff + t * se, float(result.pvalue), se)


def ratio_difference(r_a: float, var_a: float, r_b: float, var_b: float, alpha: float = 0.05) -> Comparison:
    """Difference of two ratios (b - a) with given variances (e.g. the delta method's): z-test and interval."""
    diff = r_b - r_a
    se = math.sqrt(var_a + var_b)
    p_value = float(2 * _st.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    z = float(_st.norm.ppf(1 - alpha / 2))
    return Comparison(diff, diff - z * se, diff + z * se, p_value, se)


@dataclass(frozen=True, slots=True)
class Sequential:
    """Always-valid p-value and interval from the normal mixture SPRT (Johari, Pekelis, Walsh 2017)."""

    p_value: float
    ci_low: float
    ci_high: float
    likelihood_ratio: float

    def as_dict(self) -> dict[str, float]:
        return {"pValue": self.p_value, "ciLow": self.ci_low, "ciHigh": self.ci_high}


def msprt(diff: float, se: float, tau: float, alpha: float = 0.05) -> Sequential:
    """mSPRT for H0: true difference 0, with a N(0, tau^2) mixture over the alternative.

    ``diff`` is the current estimate and ``se`` its standard error (V = se^2). The likelihood ratio is
    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 diff^2 / (2 V (V + tau^2))); the p-value is 1/Lambda
    (capped at 1; the caller keeps the running minimum), and the interval is every theta with
    Lambda(theta) < 1/alpha. Valid at every look, not only at a planned sample size.
    """
    if tau <= 0:
        raise ValueError("tau must be > 0")
    v = se * se
    if v <= 0:
        return Sequential(1.0 if diff == 0 else 0.0, diff, diff, math.inf if diff else 1.0)
    s = v + tau * tau
    log_lr = 0.5 * math.log(v / s) + tau * tau * diff * diff / (2 * v * s)
    p = 1.0 if log_lr <= 0 else math.exp(-log_lr)
    half = math.sqrt(v * s / (tau * tau) * (math.log(s / v) - 2 * math.log(alpha)))
    return Sequential(min(1.0, p), diff - half, diff + half, math.exp(min(log_lr, 700.0)))


class SequentialTracker:
    """The running always-valid p-value (the minimum so far, as the mSPRT defines it) and interval
    (the intersection so far)."""

    def __init__(self, tau: float, alpha: float = 0.05) -> None:
        self.tau, self.alpha = tau, alpha
        self.p_value = 1.0
        self.ci_low, self.ci_high = -math.inf, math.inf

    def update(self, diff: float, se: float) -> Sequential:
        step = msprt(diff, se, self.tau, self.alpha)
        self.p_value = min(self.p_value, step.p_value)
        self.ci_low, self.ci_high = max(self.ci_low, step.ci_low), min(self.ci_high, step.ci_high)
        return Sequential(self.p_value, self.ci_low, self.ci_high, step.likelihood_ratio)


@dataclass(frozen=True, slots=True)
class SampleRatio:
    chi2: float
    p_value: float
    mismatch: bool

    def as_dict(self) -> dict[str, float | bool]:
        return {"chi2": self.chi2, "pValue": self.p_value, "mismatch": self.mismatch}


def sample_ratio_mismatch(counts: Sequence[float], weights: Sequence[float], threshold: float = 0.001
                          ) -> SampleRatio | None:
    """Chi-square goodness of fit of assignment counts against the configured weights.

    The conventional threshold is p < 0.001: a true mismatch is a bug in assignment or logging, and a
    strict threshold keeps false alarms rare when the check runs continuously."""
    total = float(sum(counts))
    if len(counts) != len(weights) or len(counts) < 2:
        raise ValueError("counts and weights must have the same length (at least 2)")
    if total < 1:
        return None
    wsum = float(sum(weights))
    expected = [total * w / wsum for w in weights]
    result = _st.chisquare(list(map(float, counts)), expected)
    p = float(result.pvalue)
    return SampleRatio(float(result.statistic), p, p < threshold)


def min_sample_size_proportion(baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Per-arm sample size to detect an absolute change ``mde`` from ``baseline`` (two-sided z-test)."""
    if not 0 < baseline < 1 or mde <= 0 or not 0 < baseline + mde < 1:
        raise ValueError("need 0 < baseline < 1, mde > 0 and baseline + mde < 1")
    z_a, z_b = float(_st.norm.ppf(1 - alpha / 2)), float(_st.norm.ppf(power))
    p1, p2 = baseline, baseline + mde
    pbar = (p1 + p2) / 2
    n = (z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / mde**2
    return math.ceil(n)


def min_sample_size_mean(std: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Per-arm sample size to detect a change ``mde`` in a mean with standard deviation ``std``."""
    if std <= 0 or mde <= 0:
        raise ValueError("std and mde must be > 0")
    z_a, z_b = float(_st.norm.ppf(1 - alpha / 2)), float(_st.norm.ppf(power))
    return math.ceil(2 * ((z_a + z_b) * std / mde) ** 2)
