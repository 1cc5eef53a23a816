"""Auto's edge fallback (issue 18): when auto's choice has no n-gram component, it also ships the n-gram
baseline the edge's one-standard-error rule picks, refit on train + validation, saved and verified like a
component, within the size budget, and never used by auto's own predictions. Directories saved before the
fallback existed load as they did.

NASA Jul (the trace whose benchmark auto ships attention + session-kNN) keeps each fit under a second; the
Worker serving the fallback is in tests/edge/test_edge_auto.py.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from conftest import shared_file
from precache.evaluation import time_split, transitions
from precache.models import ModelFileError, build_predictor, load_predictor
from precache.models.auto import AUTO_FILE, AUTO_FILE_ALLOWANCE, EDGE_FALLBACK_DIR, AutoPredictor
from precache.scoring import ranking_scores
from precache.traces import read_sessions
from precache.traces.model import Session

pytestmark = pytest.mark.realdata
TABLES = ("markov-count", "markov", "ppm")
SIMPLEST_FIRST = ["popularity", "markov-count", "markov", "ppm"]


@cache
def sessions() -> tuple[list[Session], list[Session]]:
    split = time_split(read_sessions(shared_file("nasa-http/NASA_access_log_small.gz")))
    return split.train, split.validation


def sknn_auto(**options: Any) -> AutoPredictor:
    """Auto restricted to session-kNN (the only candidate); the n-gram models are fitted as blend partners."""
    train, validation = sessions()
    auto = AutoPredictor(candidates=["sknn"], blend_with=list(TABLES), weights=[], gates=[], **options)
    auto.fit(train, validation)
    assert auto.choice == "sknn"
    return auto


@pytest.fixture(scope="module")
def auto() -> AutoPredictor:
    return sknn_auto()


def expected_fallback() -> tuple[str, dict[str, float]]:
    """The rule, independently: each n-gram model fitted on train, HR@5 on the validation transitions; the
    simplest within one binomial standard error of the best one's."""
    train, validation = sessions()
    pairs = list(transitions(validation, max_history=50))
    scores = {}
    for kind in TABLES:
        model = build_predictor(kind)
        model.fit(train)
        scores[kind] = ranking_scores(model.predict_batch([h for h, _ in pairs], 10), [t for _, t in pairs])["hr5"]
    best = max(scores.values())
    se = math.sqrt(best * (1 - best) / len(pairs))
    near = [kind for kind in TABLES if scores[kind] >= best - se - 1e-12]
    return min(near, key=lambda k: (SIMPLEST_FIRST.index(k), -scores[k])), scores


def test_an_auto_without_an_ngram_component_ships_the_rules_fallback_refit_on_train_and_validation(
        auto: AutoPredictor, tmp_path: Path) -> None:
    kind, scores = expected_fallback()
    record = auto.metrics["edge_fallback"]
    assert record["kind"] == kind and auto.edge_fallback is not None and auto.edge_fallback.kind == kind
    assert record["validation_hr5"] == pytest.approx(scores[kind], abs=1e-12)
    assert record["validation"] == pytest.approx(scores, abs=1e-12)
    assert "no n-gram component" in record["reason"] and auto.config()["edge_fallback"] is True
    # refit like the components: what it ranks is a fresh model's fitted on train + validation
    train, validation = sessions()
    fresh = build_predictor(kind)
    fresh.fit(train, validation)
    histories = [h for h, _ in transitions(validation)] + [[], ["/never/seen"]]
    assert auto.edge_fallback.predict_batch(histories, 10) == fresh.predict_batch(histories, 10)

    auto.save(tmp_path / "auto")
    entry = json.loads((tmp_path / "auto" / AUTO_FILE).read_text())["edge_fallback"]
    assert entry["dir"] == EDGE_FALLBACK_DIR and entry["kind"] == kind
    loaded = load_predictor(tmp_path / "auto")
    assert isinstance(loaded, AutoPredictor) and loaded.edge_fallback is not None
    assert loaded.edge_fallback.predict_batch(histories, 10) == fresh.predict_batch(histories, 10)
    assert loaded.predict_batch(histories, 10) == auto.predict_batch(histories, 10)
    # the size budget counts it: the whole directory, fallback included, is within 1 MB
    assert auto.size_bytes(tmp_path / "auto") <= 1_000_000
    assert auto.size_bytes(tmp_path / "auto" / EDGE_FALLBACK_DIR) == record["bytes"]


def test_the_fallback_never_changes_autos_own_predictions(auto: AutoPredictor) -> None:
    without = sknn_auto(edge_fallback=False)
    assert without.edge_fallback is None and without.metrics["edge_fallback"]["kind"] is None
    assert "switched off" in without.metrics["edge_fallback"]["reason"]
    _, validation = sessions()
    histories = [h for h, _ in transitions(validation)] + [[], ["/never/seen"], ["/never/seen"] * 60]
    assert auto.predict_batch(histories, 10) == without.predict_batch(histories, 10)
    assert auto.calibration_map == without.calibration_map


def test_no_fallback_when_it_does_not_fit_the_size_budget(auto: AutoPredictor, tmp_path: Path) -> None:
    sizes = auto.metrics["component_bytes"]
    kind = auto.metrics["edge_fallback"]["kind"]
    budget = sizes["sknn"] + AUTO_FILE_ALLOWANCE + sizes[kind] // 2  # room for the choice, not the fallback
    tight = sknn_auto(size_budget=budget)
    record = tight.metrics["edge_fallback"]
    assert tight.edge_fallback is None and record["kind"] is None and record["candidate"] == kind
    assert "does not fit the size budget" in record["reason"]
    tight.save(tmp_path / "tight")
    assert not (tmp_path / "tight" / EDGE_FALLBACK_DIR).exists()
    assert "edge_fallback" not in json.loads((tmp_path / "tight" / AUTO_FILE).read_text())
    assert tight.size_bytes(tmp_path / "tight") <= budget


def test_a_choice_with_an_ngram_component_ships_no_fallback() -> None:
    train, validation = sessions()
    auto = AutoPredictor(candidates=["ppm"], blend_with=["markov-count"], weights=[], gates=[])
    auto.fit(train, validation)
    assert auto.choice == "ppm" and auto.edge_fallback is None
    assert auto.metrics["edge_fallback"] == {"kind": None,
                                             "reason": "not needed: the choice has an n-gram component (ppm)"}


def save_the_old_way(auto: AutoPredictor, directory: Path) -> Path:
    """A directory as auto saved it before the edge fallback existed: no auto.json entry, no sub-directory,
    and neither the config setting nor the metrics record in the manifest."""
    fallback, metrics = auto.edge_fallback, auto.metrics
    auto.edge_fallback = None
    auto.metrics = {k: v for k, v in metrics.items() if k != "edge_fallback"}
    try:
        auto.save(directory)
    finally:
        auto.edge_fallback, auto.metrics = fallback, metrics
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["config"]["edge_fallback"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_a_directory_saved_before_the_fallback_existed_loads_and_behaves_as_before(
        auto: AutoPredictor, tmp_path: Path) -> None:
    from precache.edge.served import NothingServable, served_form

    old = load_predictor(save_the_old_way(auto, tmp_path / "old"))
    assert isinstance(old, AutoPredictor) and old.edge_fallback is None and "edge_fallback" not in old.metrics
    _, validation = sessions()
    histories = [h for h, _ in transitions(validation)] + [[]]
    assert old.predict_batch(histories, 10) == auto.predict_batch(histories, 10)
    with pytest.raises(NothingServable, match="no component the table Worker can serve"):
        served_form(old, "table")  # as before: the table Worker keeps its model


def test_a_tampered_fallback_is_refused(auto: AutoPredictor, tmp_path: Path) -> None:
    directory = auto.save(tmp_path / "auto")
    manifest = directory / EDGE_FALLBACK_DIR / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"name"', '"name" ', 1))
    with pytest.raises(ModelFileError, match="component manifest does not match"):
        load_predictor(directory)
