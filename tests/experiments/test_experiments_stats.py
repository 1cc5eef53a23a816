"""The statistics: valid under peeking, sensitive to a real effect, loud about a broken split."""

from __future__ import annotations

import math

import pytest

from precache.experiments.arms import ArmStats, Moments
from precache.experiments.model import Arm, Experiment, ExperimentError
from precache.experiments.readout import INSUFFICIENT, readout
from precache.experiments.simulate import peeking
from precache.experiments.stats import (
    min_sample_size_proportion,
    msprt,
    sample_ratio_mismatch,
    two_proportions,
    welch,
)


@pytest.mark.slow
def test_aa_peeking_sequential_stays_within_alpha_while_naive_tests_inflate() -> None:
    """2,000 seeded A/A runs, both tests read after each of 20 batches."""
    result = peeking(runs=2000, looks=20, batch=200, p_control=0.3, effect=0.0, alpha=0.05, tau=0.02, seed=1)
    bound = 0.05 + 2 * math.sqrt(0.05 * 0.95 / 2000)
    assert result.sequential_rate <= bound, result
    assert result.naive_rate > bound, result  # repeated fixed-horizon tests exceed alpha


def test_a_known_effect_is_detected() -> None:
    result = peeking(runs=300, looks=20, batch=200, p_control=0.3, effect=0.05, alpha=0.05, tau=0.02, seed=2)
    assert result.sequential_rate > 0.8


def test_fewer_than_two_observations_are_insufficient_data() -> None:
    assert two_proportions(1, 1, 0, 5) is None
    assert welch(1.0, 0.0, 1, 2.0, 1.0, 10) is None
    exp = Experiment("e1", "warming", (Arm("off", 1), Arm("on", 1)))
    out = readout(exp, {"off": ArmStats(), "on": ArmStats()})
    assert out["arms"]["on"]["verdict"] == INSUFFICIENT
    assert out["arms"]["on"]["metrics"]["hits"]["status"] == INSUFFICIENT
    assert out["sampleRatio"] == {"status": INSUFFICIENT}


def test_srm_fires_on_a_52_48_split_of_a_50_50_experiment() -> None:
    flagged = sample_ratio_mismatch([5200, 4800], [1, 1])
    assert flagged is not None and flagged.mismatch
    fine = sample_ratio_mismatch([5030, 4970], [1, 1])
    assert fine is not None and not fine.mismatch
    small = sample_ratio_mismatch([52, 48], [1, 1])  # the same ratio on little traffic is not evidence
    assert small is not None and not small.mismatch


def test_tests_agree_with_textbook_values() -> None:
    cmp = two_proportions(300, 1000, 350, 1000)
    assert cmp is not None and cmp.diff == pytest.approx(0.05)
    assert cmp.p_value == pytest.approx(0.0178, abs=0.002)
    w = welch(10.0, 4.0, 50, 11.0, 9.0, 40)
    assert w is not None and w.diff == pytest.approx(1.0) and 0.05 < w.p_value < 0.1
    assert msprt(0.0, 0.01, 0.02).p_value == 1.0
    assert msprt(0.1, 0.01, 0.02).p_value < 1e-6
    n = min_sample_size_proportion(0.3, 0.05)
    assert 1300 < n < 1450  # the usual figure for 30% -> 35%, alpha 0.05, power 0.8 is ~1,376


def test_moments_merge_exactly() -> None:
    a, b, whole = Moments(), Moments(), Moments()
    for i, x in enumerate([1.0, 4.0, 2.5, 9.0, 3.0, 7.5]):
        (a if i % 2 else b).add(x)
        whole.add(x)
    a.merge(b)
    assert a.n == whole.n and a.mean == pytest.approx(whole.mean) and a.variance == pytest.approx(whole.variance)


def test_definitions_are_validated() -> None:
    with pytest.raises(ExperimentError):
        Experiment("e", "warming", (Arm("only", 1),)).validate()
    with pytest.raises(ExperimentError):
        Experiment("e", "warming", (Arm("a", 1), Arm("a", 1))).validate()
    with pytest.raises(ExperimentError):
        Experiment("bad id!", "warming", (Arm("a", 1), Arm("b", 1))).validate()
    assert Experiment("e", "cache_policy", (Arm("s3fifo", 1), Arm("learned", 1))).validate().scope == "replica"
