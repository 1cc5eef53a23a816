"""The auto model chooses on validation only, records why, and saves/loads its choice (blends too)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from precache.inference import InferenceEngine
from precache.models import build_predictor, load_predictor
from precache.models.auto import AutoPredictor, blend
from precache.traces.model import Session

torch.set_num_threads(1)
ATTENTION = {"threads": 1, "epochs": 5, "batch_size": 64, "d_model": 32, "max_len": 8, "lr": 5e-3, "dropout": 0.0}


def _sessions(n: int, seed: int = 0) -> list[Session]:
    """``/a_j -> /hub -> /b_j``: attention can use the page before the hub, Markov cannot."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        j = rng.randrange(6)
        out.append(Session(str(i), f"c{i}", float(i), [f"/entry{rng.randrange(2)}", f"/a{j}", "/hub", f"/b{j}"]))
    return out


def test_blend_is_a_weighted_mixture() -> None:
    mixed = blend([("/x", 0.6), ("/y", 0.4)], [("/y", 1.0)], 0.5, 5)
    assert mixed == [("/y", 0.7), ("/x", 0.3)]
    assert blend([("/x", 0.6)], [("/y", 1.0)], 1.0, 1) == [("/x", 0.6)]


def test_auto_picks_attention_when_history_matters_and_round_trips(tmp_path: Path) -> None:
    sessions = _sessions(1500)
    auto = build_predictor("auto", candidates=["markov", "attention"], blend_with=["markov"],
                           attention_options=ATTENTION)
    assert isinstance(auto, AutoPredictor)
    auto.fit(sessions[:1200], sessions[1200:1350])
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
    sessions = _sessions(600, seed=1)
    auto = AutoPredictor(candidates=["popularity", "markov"], blend_with=[])
    auto.fit(sessions[:500], sessions[500:])
    assert auto.choice == "markov"
    assert auto.metrics["validation"]["markov"]["hr5"] >= auto.metrics["validation"]["popularity"]["hr5"]
