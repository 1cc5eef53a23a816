"""The auto model chooses on validation only, records why, and saves/loads its choice (blends too)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import hub_sessions
from precache.inference import InferenceEngine
from precache.models import build_predictor, load_predictor
from precache.models.auto import AUTO_FILE_ALLOWANCE, AutoPredictor
from precache.models.calibration import apply_platt, fit_platt
from precache.models.combine import Gate, blend, cross_fitted, gate_features, gated, target_probabilities
from precache.traces.model import Session

torch.set_num_threads(1)
ATTENTION = {"threads": 1, "epochs": 5, "batch_size": 64, "d_model": 32, "max_len": 8, "lr": 5e-3, "dropout": 0.0}




def test_blend_is_a_weighted_mixture() -> None:
    mixed = blend([("/x", 0.6), ("/y", 0.4)], [("/y", 1.0)], 0.5, 5)
    assert mixed == [("/y", 0.7), ("/x", 0.3)]
    assert blend([("/x", 0.6)], [("/y", 1.0)], 1.0, 1) == [("/x", 0.6)]


@pytest.mark.slow
def test_auto_picks_attention_when_history_matters_and_round_trips(tmp_path: Path) -> None:
    sessions = hub_sessions(1500)
    # 2 calibration folds, not 5: the out-of-fold path is exercised with 3 fewer attention fits
    auto = build_predictor("auto", candidates=["markov", "attention"], blend_with=["markov"],
                           attention_options=ATTENTION, calibration_folds=2)
    assert isinstance(auto, AutoPredictor)
    auto.fit(sessions[:1200], sessions[1200:1350])
    assert auto.metrics["calibration"]["source"].startswith("out-of-fold")
    validation = auto.metrics["validation"]
    assert {"markov", "attention", "attention+markov@0.5"} <= set(validation)
    assert validation["attention"]["hr5"] > validation["markov"]["hr5"]
    assert auto.metrics["choice"].startswith("attention")
    assert "highest validation HR@5" in auto.metrics["reason"]
    history = ["/entry1", "/a4", "/hub"]
    assert auto.predict(history, 1)[0][0] == "/b4"

    root = auto.save(tmp_path / "auto")
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["kind"] == "auto" and manifest["metrics"]["choice"] == auto.choice
    loaded = load_predictor(root)
    assert loaded.predict_batch([history, []], 3) == auto.predict_batch([history, []], 3)
    engine = InferenceEngine.load(root)  # the serving side loads the auto directory (blend included)
    assert engine.predict(history, 3) == auto.predict(history, 3)

    component = next(root.glob("component-*/manifest.json"))
    component.write_text(component.read_text() + " ")
    with pytest.raises(ValueError, match="sha256"):
        load_predictor(root)


def test_auto_picks_a_baseline_when_attention_is_not_a_candidate() -> None:
    sessions = hub_sessions(600, seed=1)
    auto = AutoPredictor(candidates=["popularity", "markov"], blend_with=[])
    auto.fit(sessions[:500], sessions[500:])
    assert auto.choice == "markov"
    assert auto.metrics["validation"]["markov"]["hr5"] >= auto.metrics["validation"]["popularity"]["hr5"]


def test_gate_learns_which_component_to_trust() -> None:
    """A is right when confident (p=0.9), B is right otherwise: a fixed weight cannot get both, the gate can."""
    heads_a, heads_b, targets, histories = [], [], [], []
    for i in range(2000):
        target = f"/t{i % 7}"
        if i % 2:
            heads_a.append([(target, 0.9), ("/x", 0.05)])
            heads_b.append([("/wrong", 0.95), (target, 0.01)])
        else:
            heads_a.append([("/x", 0.3), ("/y", 0.3), (target, 0.01)])
            heads_b.append([(target, 0.6), ("/wrong", 0.3)])
        targets.append(target)
        histories.append(["/p"] * (1 + i % 5))
    gate = Gate.fit(gate_features([heads_a, heads_b], histories), target_probabilities([heads_a, heads_b], targets))
    ranked = gated([heads_a, heads_b], histories, gate, 3)
    assert sum(r[0][0] == t for r, t in zip(ranked, targets, strict=True)) / len(targets) > 0.95
    for w in (0.2, 0.5, 0.8):
        fixed = [blend(a, b, w, 3) for a, b in zip(heads_a, heads_b, strict=True)]
        assert sum(r[0][0] == t for r, t in zip(fixed, targets, strict=True)) / len(targets) < 0.9
    honest = cross_fitted([heads_a, heads_b], histories, targets)
    assert sum(r[0][0] == t for r, t in zip(honest, targets, strict=True)) / len(targets) > 0.95


def test_gated_auto_round_trips(tmp_path: Path) -> None:
    sessions = hub_sessions(600)
    auto = AutoPredictor(candidates=[], blend_with=["markov", "ppm"], weights=[], gates=["markov+ppm"])
    auto.fit(sessions[:500], sessions[500:])
    assert auto.choice == "gate(markov+ppm)" and auto.gate is not None
    assert "gate(markov+ppm)" in auto.metrics["validation"]
    root = auto.save(tmp_path / "gated")
    assert json.loads((root / "auto.json").read_text())["gate"]["theta"]
    loaded = load_predictor(root)
    histories = [["/entry0", "/a1", "/hub"], [], ["/unknown"]]
    assert loaded.predict_batch(histories, 3) == auto.predict_batch(histories, 3)
    ranked = auto.predict(["/entry0", "/a1"], 5)
    assert ranked[0][0] == "/hub" and sum(p for _, p in ranked) <= 1.0 + 1e-9


def test_auto_ships_only_what_fits_the_size_budget(tmp_path: Path) -> None:
    sessions = hub_sessions(800, seed=2)
    unlimited = AutoPredictor(candidates=["markov-count", "sknn"], blend_with=[], gates=[], size_budget=None)
    unlimited.fit(sessions[:600], sessions[600:])
    sizes = unlimited.metrics["component_bytes"]
    assert sizes["sknn"] > sizes["markov-count"]
    budget = sizes["markov-count"] + AUTO_FILE_ALLOWANCE + 1
    small = AutoPredictor(candidates=["markov-count", "sknn"], blend_with=[], gates=[], size_budget=budget)
    small.fit(sessions[:600], sessions[600:])
    assert small.choice == "markov-count" and set(small.metrics["over_budget"]) == {"sknn"}
    assert small.metrics["best_single_baseline"]["name"] == "markov-count"
    root = small.save(tmp_path / "small")
    assert small.size_bytes(root) <= budget
    with pytest.raises(ValueError, match="size budget"):
        AutoPredictor(candidates=["markov-count"], blend_with=[], gates=[], size_budget=100).fit(
            sessions[:600], sessions[600:])


def test_calibration_map_is_chosen_by_cross_fitted_ece() -> None:
    """Stated 0.9 but right 60% of the time: Platt maps it near 0.6, and auto picks a map that helps."""
    rng = np.random.default_rng(0)
    confidence = np.full(400, 0.9)
    correct = rng.random(400) < 0.6
    a, b = fit_platt(confidence, correct)
    assert abs(float(apply_platt(np.array([0.9]), (a, b))[0]) - correct.mean()) < 0.02
    auto = AutoPredictor()
    chosen = [[("/t", 0.9), ("/u", 0.05)] if ok else [("/w", 0.9), ("/t", 0.05)] for ok in correct]
    report = auto._fit_calibration(chosen, ["/t"] * len(chosen))
    assert report["method"] in ("platt", "isotonic") and report["validation_ece_after"] < 0.05
    assert set(report["held_period_ece"]) == {"none", "platt", "isotonic"}
    mapped = auto._calibrated([("/t", 0.9), ("/u", 0.05)])
    assert abs(mapped[0][1] - correct.mean()) < 0.05


@pytest.mark.slow
def test_validation_is_scored_without_its_own_transitions_in_the_markov_counts() -> None:
    """The attention model's Markov term counts the training sessions while the validation slice is scored
    (temperature, auto's choice): with the validation pairs in the counts every validation transition is
    "seen" and the score optimistic (auto once saw +3 pts over Markov on BMS validation, none on test).
    What ships counts the validation slice too, like the baselines: fit() recounts, auto recounts after
    its choice."""
    train = hub_sessions(400)  # /b_j always ends a session: no successor of /b3 in training
    validation = [Session(f"v{i}", "v", 1e4 + i, ["/b3", "/entry1"]) for i in range(60)]
    honest = build_predictor("attention", recount_with_validation=False, **ATTENTION)
    honest.fit(train, validation)
    assert "/entry1" not in [page for page, _ in honest.predict(["/b3"], 3)]
    shipped = build_predictor("attention", **ATTENTION)
    shipped.fit(train, validation)
    assert shipped.predict(["/b3"], 1)[0][0] == "/entry1"
    honest.recount([*train, *validation])
    assert honest.predict(["/b3"], 3) == shipped.predict(["/b3"], 3)

    auto = AutoPredictor(candidates=["attention"], blend_with=[], gates=[], attention_options=ATTENTION,
                         min_calibration_transitions=0)
    auto.fit(train, validation)
    assert auto.metrics["validation"]["attention"]["hr5"] < 0.5  # /b3 -> /entry1 is new to the model
    assert auto.components[0].predict(["/b3"], 1)[0][0] == "/entry1"  # shipped: recounted
