"""Seeded simulations of repeated peeking: how often each test declares a difference.

Each run feeds two Bernoulli arms ``batch`` observations at a time and reads both tests after every
batch, as a person refreshing a dashboard would. The naive fixed-horizon z-test "rejects" if any look has
p < alpha; the mSPRT rejects if its always-valid p-value ever drops below alpha. With identical arms
(A/A) the share of runs that reject is the false-positive rate; with an effect it is the power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from precache.experiments.stats import SequentialTracker, two_proportions


@dataclass(frozen=True, slots=True)
class PeekingResult:
    runs: int
    looks: int
    batch: int
    naive_rejections: int
    sequential_rejections: int

    @property
    def naive_rate(self) -> float:
        return self.naive_rejections / self.runs

    @property
    def sequential_rate(self) -> float:
        return self.sequential_rejections / self.runs

    def standard_error(self, rate: float) -> float:
        return math.sqrt(rate * (1 - rate) / self.runs)


def peeking(runs: int = 2000, looks: int = 20, batch: int = 200, p_control: float = 0.3, effect: float = 0.0,
            alpha: float = 0.05, tau: float = 0.02, seed: int = 0) -> PeekingResult:
    rng = np.random.default_rng(seed)
    a = rng.binomial(batch, p_control, size=(runs, looks)).cumsum(axis=1)
    b = rng.binomial(batch, p_control + effect, size=(runs, looks)).cumsum(axis=1)
    naive = sequential = 0
    for r in range(runs):
        tracker = SequentialTracker(tau, alpha)
        naive_hit = seq_hit = False
        for look in range(looks):
            n = batch * (look + 1)
            cmp = two_proportions(float(a[r, look]), n, float(b[r, look]), n, alpha)
            if cmp is None or cmp.se == 0:
                continue
            naive_hit = naive_hit or cmp.p_value < alpha
            seq_hit = seq_hit or tracker.update(cmp.diff, cmp.se).p_value < alpha
        naive += naive_hit
        sequential += seq_hit
    return PeekingResult(runs, looks, batch, naive, sequential)
