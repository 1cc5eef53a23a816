"""The readout: per metric, each treatment arm against the control, fixed-horizon and always-valid.

A winner is declared only when (1) the always-valid (mSPRT) p-value is below alpha, (2) every arm
reached the minimum sample size for the experiment's minimum detectable effect and power, and (3) the
sample-ratio check does not flag the split (a mismatched split means the comparison itself is broken).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from precache.experiments.arms import ArmStats, Moments, Ratio
from precache.experiments.model import Experiment
from precache.experiments.stats import (
    Comparison,
    min_sample_size_proportion,
    msprt,
    ratio_difference,
    sample_ratio_mismatch,
    two_proportions,
    welch,
)

RATIO_METRICS = ("hits", "accuracy", "preloads")
MEAN_METRICS = ("latency_ms", "origin_requests", "origin_bytes")
PRIMARY = "hits"
INSUFFICIENT = "insufficient data"


def _ratio(stats: ArmStats, name: str) -> Ratio:
    return {"hits": stats.hits, "accuracy": stats.accuracy, "preloads": stats.preloads}[name]


def _moments(stats: ArmStats, name: str) -> Moments:
    return {"latency_ms": stats.latency_ms, "origin_requests": stats.origin_requests,
            "origin_bytes": stats.origin_bytes}[name]


def _tau(metric: str, experiment: Experiment, control: ArmStats) -> float:
    """The mixture's scale: the effect size we expect to care about. For ratios the experiment's MDE; for
    means 10% of the control's mean (at least a small floor), so the test adapts to the metric's units."""
    if metric in RATIO_METRICS:
        return experiment.mde
    mean = abs(_moments(control, metric).mean)
    return max(0.1 * mean, 1e-6)


CLUSTERED_METRICS = ("hits", "latency_ms", "accuracy", "preloads")


def compare(metric: str, control: ArmStats, treatment: ArmStats, experiment: Experiment) -> dict[str, Any]:
    """One metric, treatment against control. In a session-scoped experiment the session is the unit of
    randomization, so every per-request metric is tested on per-session sums (the delta method; never a test
    that treats one session's correlated requests as independent draws) and the per-session metrics (origin
    requests and bytes) by Welch over sessions. Replica-scoped experiments are per request (see ``spillover``)."""
    result: Comparison | None
    if experiment.scope == "session" and metric in CLUSTERED_METRICS:
        unit = "session (delta method)"
        ra, rb = control.clustered(metric).ratio_variance(), treatment.clustered(metric).ratio_variance()
        result = ratio_difference(ra[0], ra[1], rb[0], rb[1], experiment.alpha) if ra and rb else None
        values = {"control": ra[0] if ra else None, "treatment": rb[0] if rb else None}
    elif metric in RATIO_METRICS:
        unit = "request"
        a, b = _ratio(control, metric), _ratio(treatment, metric)
        result = two_proportions(a.successes, a.trials, b.successes, b.trials, experiment.alpha)
        values = {"control": a.successes / a.trials if a.trials else None,
                  "treatment": b.successes / b.trials if b.trials else None}
    else:
        ma, mb = _moments(control, metric), _moments(treatment, metric)
        result = welch(ma.mean, ma.variance, ma.n, mb.mean, mb.variance, mb.n, experiment.alpha) \
            if ma.n >= 2 and mb.n >= 2 else None
        values = {"control": ma.mean if ma.n else None, "treatment": mb.mean if mb.n else None}
        unit = "session" if metric.startswith("origin") else "request"
    if result is None or not math.isfinite(result.se):
        return {"status": INSUFFICIENT, "unit": unit, **values}
    seq = msprt(result.diff, result.se, _tau(metric, experiment, control), experiment.alpha)
    return {
        "status": "ok", "unit": unit, **values, "fixedHorizon": result.as_dict(), "sequential": seq.as_dict(),
        "significant": seq.p_value < experiment.alpha,
    }


def readout(experiment: Experiment, arms: Mapping[str, ArmStats]) -> dict[str, Any]:
    control_name = experiment.control.name
    control = arms.get(control_name, ArmStats())
    counts = [arms.get(a.name, ArmStats()).sessions for a in experiment.arms]
    srm = sample_ratio_mismatch(counts, [a.weight for a in experiment.arms])
    base = _ratio(control, PRIMARY)
    p0 = base.successes / base.trials if base.trials else None
    needed = None
    design_effect = 1.0
    if p0 is not None and 0 < p0 < 1 and p0 + experiment.mde < 1:
        needed = min_sample_size_proportion(p0, experiment.mde, experiment.alpha, experiment.power)
        clustered = control.session_hits.ratio_variance() if experiment.scope == "session" else None
        if clustered is not None and 0 < clustered[0] < 1:
            # correlated requests within sessions carry less information than independent ones
            design_effect = max(1.0, clustered[1] / (clustered[0] * (1 - clustered[0]) / control.session_hits.n))
            needed = math.ceil(needed * design_effect)
    out: dict[str, Any] = {
        "experiment": experiment.id, "kind": experiment.kind, "scope": experiment.scope,
        "status": experiment.status, "control": control_name,
        "assignments": dict(zip([a.name for a in experiment.arms], counts, strict=True)),
        "sampleRatio": srm.as_dict() if srm else {"status": INSUFFICIENT},
        "minSampleSize": {"metric": PRIMARY, "perArm": needed, "unit": "requests", "mde": experiment.mde,
                          "power": experiment.power, "designEffect": round(design_effect, 3)},
        "arms": {},
    }
    if experiment.scope == "replica":
        out["spillover"] = ("arms are assigned per replica: entries shared through L2 mix both arms' policies, "
                            "so differences are diluted toward zero; and the unit of randomization is the replica, "
                            "so with few replicas the per-request tests here are too confident")
    for arm in experiment.arms[1:]:
        treatment = arms.get(arm.name, ArmStats())
        metrics = {m: compare(m, control, treatment, experiment) for m in (*RATIO_METRICS, *MEAN_METRICS)}
        primary = metrics[PRIMARY]
        enough = needed is not None and min(base.trials, _ratio(treatment, PRIMARY).trials) >= needed
        mismatch = bool(srm and srm.mismatch)
        if primary.get("status") != "ok":
            verdict = INSUFFICIENT
        elif mismatch:
            verdict = "sample ratio mismatch: fix assignment before reading results"
        elif not primary["significant"]:
            verdict = "no significant difference yet"
        elif not enough:
            verdict = "significant, but below the minimum sample size"
        else:
            verdict = "treatment better" if primary["fixedHorizon"]["diff"] > 0 else "control better"
        out["arms"][arm.name] = {
            "metrics": metrics, "verdict": verdict,
            # descriptive only (a quantile from a summable histogram; no test): the tail the means can hide
            "p95LatencyMs": {"control": control.p95_latency_ms(), "treatment": treatment.p95_latency_ms()},
        }
    return out
