"""Temperature scaling recovers a known temperature and brings ECE down; the reliability table adds up."""

from __future__ import annotations

import numpy as np

from precache.models.calibration import (
    apply_isotonic,
    calibrate,
    ece,
    fit_isotonic,
    fit_temperature,
    reliability_table,
    softmax,
)


def _synthetic(true_temperature: float, n: int = 20_000, vocab: int = 30, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(n, vocab))
    probs = softmax(logits, true_temperature)
    targets = np.array([rng.choice(vocab, p=p) for p in probs])
    return logits, targets


def test_temperature_is_recovered_and_ece_drops() -> None:
    logits, targets = _synthetic(2.5)
    assert abs(fit_temperature(logits, targets) - 2.5) < 0.15
    report = calibrate(logits, targets, excluded=0)
    assert report.ece_before > 0.1  # the raw logits are over-confident
    assert report.ece_after < 0.02
    assert report.nll_after < report.nll_before
    assert sum(b.count for b in report.table) == len(targets)


def test_calibrated_model_stays_calibrated() -> None:
    logits, targets = _synthetic(1.0, seed=1)
    report = calibrate(logits, targets, excluded=0)
    assert abs(report.temperature - 1.0) < 0.1
    assert report.ece_after < 0.02


def test_reliability_table_and_ece_on_hand_made_numbers() -> None:
    confidence = np.array([0.95, 0.95, 0.15, 0.15])
    correct = np.array([True, False, False, False])
    table = reliability_table(confidence, correct, bins=10)
    assert table[9].count == 2 and table[9].accuracy == 0.5
    assert table[1].count == 2 and table[1].accuracy == 0.0
    assert abs(ece(confidence, correct) - (2 * 0.45 + 2 * 0.15) / 4) < 1e-9
    assert ece(np.array([]), np.array([])) == 0.0


def test_isotonic_map_fixes_a_miscalibrated_list_model() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0, 1, 5000)
    correct = rng.uniform(0, 1, 5000) < confidence**2  # says 0.5 when right 25% of the time
    knots = fit_isotonic(confidence, correct)
    mapped = apply_isotonic(confidence, knots)
    assert ece(confidence, correct) > 0.1 and ece(mapped, correct) < 0.02
    assert np.all(np.diff(apply_isotonic(np.linspace(0, 1, 50), knots)) >= 0)  # ranking kept
