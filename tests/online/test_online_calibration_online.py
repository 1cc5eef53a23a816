"""The online calibrator: a Platt map of the online answers learned test-then-learn from their outcomes."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import hub_sessions
from precache.config import ConfigError
from precache.models.calibration import ece
from precache.online.calibration import CAL_BINS, OnlineCalibrator, calibrated_online
from precache.online.settings import load_online_settings
from precache.scoring import RankingTally
from precache.types import Prediction


def _miscalibrated(n: int, seed: int = 0, slope: float = 0.5, shift: float = -0.8) -> tuple[list[Prediction],
                                                                                           list[str]]:
    """Lists whose top-1 states p but is right with probability sigmoid(slope * logit(p) + shift)."""
    rng = random.Random(seed)
    lists, targets = [], []
    for _ in range(n):
        p = rng.uniform(0.1, 0.9)
        true = 1 / (1 + math.exp(-(slope * math.log(p / (1 - p)) + shift)))
        rest = min(p, 1 - p)
        lists.append([("/a", p), ("/b", rest * 0.6), ("/c", rest * 0.3)])
        targets.append("/a" if rng.random() < true else "/b")
    return lists, targets


def _ece(lists: list[Prediction], targets: list[str]) -> float:
    return ece(np.array([r[0][1] for r in lists]), np.array([r[0][0] == t for r, t in zip(lists, targets,
                                                                                           strict=True)]))


def test_it_starts_at_identity_and_learns_a_known_miscalibration() -> None:
    lists, targets = _miscalibrated(6000)
    cal = OnlineCalibrator()
    assert cal.params == (1.0, 0.0) and cal.apply(lists[0]) == lists[0]  # the merge as it is
    mapped = calibrated_online(lists, targets, cal)
    a, b = cal.params
    assert a == pytest.approx(0.5, abs=0.12) and b == pytest.approx(-0.8, abs=0.15)
    assert _ece(lists[-2000:], targets[-2000:]) > 0.1  # unmapped: far off
    assert _ece(mapped[-2000:], targets[-2000:]) < 0.04  # once learned, the later answers are calibrated
    assert cal.refits == 6000 // cal.refit_every


def test_the_map_keeps_every_lists_order_so_hr_at_k_is_untouched() -> None:
    lists, targets = _miscalibrated(3000, seed=1, slope=0.3, shift=-2.0)
    mapped = calibrated_online(lists, targets)
    for raw, out in zip(lists, mapped, strict=True):
        assert [p for p, _ in out] == [p for p, _ in raw]
        assert all(x[1] >= y[1] for x, y in itertools.pairwise(out)) and sum(q for _, q in out) <= 1 + 1e-12
    before, after = RankingTally(ks=(1, 5)), RankingTally(ks=(1, 5))
    for raw, out, target in zip(lists, mapped, targets, strict=True):
        before.add(raw, target)
        after.add(out, target)
    assert (after.hr(1), after.hr(5), after.mrr) == (before.hr(1), before.hr(5), before.mrr)
    assert after.ece < before.ece


def test_an_outcome_is_never_learned_before_its_answer_was_scored() -> None:
    lists, targets = _miscalibrated(500, seed=2)
    cal = OnlineCalibrator(refit_every=1)
    for i, (ranked, target) in enumerate(zip(lists, targets, strict=True)):
        outcomes = cal.outcomes
        out = calibrated_online([ranked], [target], cal)[0]
        assert outcomes == i  # list i was mapped with what lists 0..i-1 taught, nothing more
        expected = OnlineCalibrator(refit_every=1)
        calibrated_online(lists[:i], targets[:i], expected)
        assert out == expected.apply(ranked)
        if i == 60:
            break
    # changing a future outcome never changes an earlier answer
    flipped = [*targets[:100], *("/a" if t == "/b" else "/b" for t in targets[100:])]
    assert calibrated_online(lists, targets)[:101] == calibrated_online(lists, flipped)[:101]
    assert calibrated_online(lists, targets)[101:] != calibrated_online(lists, flipped)[101:]


def test_a_services_answer_waits_for_its_sessions_next_page_view_in_bounded_memory() -> None:
    cal = OnlineCalibrator(max_sessions=3, refit_every=1, inline=False)
    cal.served("s1", [("/a", 0.9), ("/b", 0.05)])
    assert cal.outcomes == 0  # served, not yet answered by the visitor
    assert cal.outcome("s1", "/b") and cal.outcomes == 1 and not cal.outcome("s1", "/b")  # one outcome per answer
    assert cal.params == (1.0, 0.0) and cal.maybe_refit() and cal.params != (1.0, 0.0)  # refit off the path
    assert not cal.outcome("unknown", "/a")
    for i in range(10):
        cal.served(f"s{i}", [("/a", 0.5)])
    assert len(cal.waiting) == 3 and set(cal.waiting) == {"s7", "s8", "s9"}  # the least recent dropped
    cal.served("s9", [])
    cal.forget("s8")
    assert set(cal.waiting) == {"s7", "s9"}
    for i in range(20_000):  # the statistics are a fixed set of bins, whatever the traffic
        cal.learn(random.Random(i).random(), i % 3 == 0)
    assert len(cal.weight) == len(cal.hits) == len(cal.logits) == CAL_BINS
    assert cal.scale < 2.0**41 and all(math.isfinite(w) for w in cal.weight)
    assert cal.snapshot()["weight"] == pytest.approx(1000 / math.log(2), rel=0.01)  # ~1,443 effective outcomes


def test_it_forgets_an_old_miscalibration() -> None:
    old, old_targets = _miscalibrated(4000, seed=3, slope=0.5, shift=-0.8)
    new, new_targets = _miscalibrated(4000, seed=4, slope=1.0, shift=0.0)  # the drift: now calibrated as stated
    cal = OnlineCalibrator()
    calibrated_online(old, old_targets, cal)
    calibrated_online(new, new_targets, cal)
    assert cal.params[0] == pytest.approx(1.0, abs=0.15) and cal.params[1] == pytest.approx(0.0, abs=0.15)


def test_ml_online_calibrate_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_online_settings().calibrate == "online"
    assert isinstance(load_online_settings().calibrator(), OnlineCalibrator)
    for value, mode in (("true", "online"), ("online", "online"), ("stored", "stored"), ("false", "false"),
                        ("0", "false"), ("OFF", "false")):
        monkeypatch.setenv("ML_ONLINE_CALIBRATE", value)
        assert load_online_settings().calibrate == mode
    assert load_online_settings().calibrator() is None
    monkeypatch.setenv("ML_ONLINE_CALIBRATE", "sometimes")
    with pytest.raises(ConfigError, match="ML_ONLINE_CALIBRATE"):
        load_online_settings()
    with pytest.raises(ValueError):
        OnlineCalibrator(half_life=0)


def test_the_library_warmer_learns_its_calibration_from_what_visitors_did_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from precache.config import load_settings
    from precache.models.kinds import build_predictor
    from precache.stack import build_stack
    from precache.warming.resolver import MappingResolver

    model = build_predictor("ppm")
    model.fit(hub_sessions(200))
    monkeypatch.setenv("ML_ONLINE_WEIGHT", "0")  # the frozen answers, through the online calibrator alone
    stack = build_stack(load_settings(), model_dir=model.save(tmp_path / "ppm"), resolver=MappingResolver({}),
                        l2=False)
    assert stack.online is not None and stack.warmer is not None and stack.online.calibrator is not None
    ranker = stack.warmer.predictor
    page, before = ranker.predict(["/b3"], 3)[0]
    for i in range(64):  # the warmer predicts from the history, then the visitor goes elsewhere: a miss
        stack.warmer.observe(f"s{i}", "/b3")
        assert ranker.predict(stack.warmer.history.read(f"s{i}"), 3)[0][0] == page
        stack.warmer.observe(f"s{i}", "/elsewhere")
    assert stack.online.calibrator.outcomes == 64 and stack.online.calibrator.refits == 2  # inline: no task
    again, after = ranker.predict(["/b3"], 3)[0]
    assert again == page and after < before


async def test_a_crawlers_next_page_teaches_the_service_calibrator_nothing() -> None:
    from precache.online.guards import ContributionGuard
    from precache.online.hook import OnlineHook
    from precache.online.layer import OnlineLayer
    from precache.online.merge import MergeParams
    from precache.types import RequestContext

    layer = OnlineLayer(MergeParams(), guard=ContributionGuard(bot_filter=lambda agent: "bot" in agent),
                        calibrator=OnlineCalibrator())
    hook = OnlineHook(layer)
    assert layer.calibrator is not None
    for session, agent in (("visitor", "Firefox"), ("crawler", "Googlebot")):
        await hook.rerank(session, ["/a"], [("/b", 0.6), ("/c", 0.3)], 2)  # the answer waits
        await hook.observe(session, ["/c"], ["/a", "/c"], RequestContext(f"10.0.0.{len(session)}", agent))
    assert layer.calibrator.outcomes == 1 and not layer.calibrator.waiting  # the visitor's outcome only
