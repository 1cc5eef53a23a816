"""build_stack(): the warmer learns every page view written to its history and ranks with the merged counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import hub_sessions
from precache.config import load_settings
from precache.models.kinds import build_predictor
from precache.online.hook import LearningHistory, OnlineRanker
from precache.stack import build_stack
from precache.warming.resolver import MappingResolver


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = build_predictor("ppm")
    model.fit(hub_sessions(200))
    return model.save(tmp_path / "ppm")


def test_the_library_warmer_learns_online_in_process(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_ONLINE_WEIGHT", "1")
    monkeypatch.setenv("ML_ONLINE_EVIDENCE", "1")
    stack = build_stack(load_settings(), model_dir=model_dir, resolver=MappingResolver({}), l2=False)
    assert stack.online is not None and stack.warmer is not None
    assert isinstance(stack.warmer.history, LearningHistory) and isinstance(stack.warmer.predictor, OnlineRanker)
    ranker = stack.warmer.predictor
    assert ranker.predict(["/b3"], 3)[0][0] != "/new-page"
    for i in range(5):
        stack.warmer.observe(f"s{i}", "/b3")
        stack.warmer.observe(f"s{i}", "/new-page")
    assert stack.online.stats["learned"] == 5
    assert ranker.predict(["/b3"], 3)[0][0] == "/new-page"


def test_the_off_switches_leave_the_warmer_frozen(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_ONLINE_ENABLED", "false")
    stack = build_stack(load_settings(), model_dir=model_dir, resolver=MappingResolver({}), l2=False)
    assert stack.online is None and stack.warmer is not None
    assert not isinstance(stack.warmer.predictor, OnlineRanker)
