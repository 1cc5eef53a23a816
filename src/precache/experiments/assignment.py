"""Sticky assignment: the same (experiment, session) always lands in the same arm, on every replica.

A SHA-256 of ``seed:experiment:unit`` gives a uniform number in [0, 1): below ``holdout`` the unit is
held out (no experiment treatment: control behaviour, not counted in the arms); the rest is split by the
arm weights. Each experiment has its own seed, so several experiments running at once assign
independently. The unit is the session id for session-scoped kinds and the replica id for the others.
"""

from __future__ import annotations

import hashlib

from precache.experiments.model import Arm, Experiment

HOLDOUT = "holdout"


def unit_interval(seed: str, experiment_id: str, unit: str) -> float:
    digest = hashlib.sha256(f"{seed}:{experiment_id}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: Experiment, unit: str) -> Arm | None:
    """The arm for ``unit`` (None = held out)."""
    u = unit_interval(experiment.seed or experiment.id, experiment.id, unit)
    if u < experiment.holdout:
        return None
    u = (u - experiment.holdout) / (1 - experiment.holdout)
    total = sum(a.weight for a in experiment.arms)
    edge = 0.0
    for arm in experiment.arms:
        edge += arm.weight / total
        if u < edge:
            return arm
    return experiment.arms[-1]
