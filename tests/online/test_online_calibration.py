"""The online answers' calibration map: fit on the validation walk, monotone, stored as JSON, applied."""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np
import pytest

from precache.models.calibration import apply_isotonic, apply_platt, ece
from precache.online import MergeParams
from precache.online.calibration import apply_map, fit_online_map, map_from_json, map_to_json
from precache.online.prequential import Event, choose, live_pass, online_lists, tally
from precache.types import Prediction


def test_platt_in_python_equals_the_numpy_map_keeps_the_order_and_the_top1_value() -> None:
    ranked = [("/a", 0.6), ("/b", 0.3), ("/c", 0.05), ("/d", 0.0)]
    for ab in ((1.0, 0.0), (0.7, -0.4), (2.5, 1.5), (0.05, 0.0)):
        mine = apply_map(ranked, ("platt", ab))
        values = apply_platt(np.array([p for _, p in ranked]), ab)
        assert [p for p, _ in mine] == ["/a", "/b", "/c", "/d"]
        assert mine[0][1] == pytest.approx(values[0], abs=1e-12)  # the top-1 is the fitted map's value
        if values.sum() <= 1.0:
            assert [q for _, q in mine] == pytest.approx(values.tolist(), abs=1e-12)
        assert mine[-1][1] == 0.0 and sum(q for _, q in mine) <= 1.0 + 1e-12
        assert all(x[1] >= y[1] for x, y in itertools.pairwise(mine))


def test_isotonic_in_python_equals_np_interp() -> None:
    knots = ((0.0, 0.1, 0.1, 0.5, 0.9, 1.0), (0.0, 0.05, 0.2, 0.3, 0.7, 0.7))
    probabilities = [0.0, 0.05, 0.1, 0.3, 0.5, 0.77, 0.95, 1.0]
    mine = apply_map([(str(i), p) for i, p in enumerate(sorted(probabilities, reverse=True))], ("isotonic", knots))
    theirs = apply_isotonic(np.array(sorted(probabilities, reverse=True)), knots)
    assert mine[0][1] == pytest.approx(theirs[0])
    assert all(x[1] >= y[1] for x, y in itertools.pairwise(mine)) and sum(q for _, q in mine) <= 1.0 + 1e-12
    single = [apply_map([("/a", p)], ("isotonic", knots))[0][1] for p in probabilities]
    assert single == pytest.approx(apply_isotonic(np.array(probabilities), knots).tolist())


def _overconfident(n: int, seed: int = 0) -> tuple[list[Prediction], list[str]]:
    """Lists whose top-1 says 0.9 and is right 60% of the time."""
    rng = random.Random(seed)
    lists = [[("/a", 0.9), ("/b", 0.05)] for _ in range(n)]
    return lists, ["/a" if rng.random() < 0.6 else "/b" for _ in range(n)]


def test_fit_online_map_fixes_an_overconfident_merge_on_a_few_hundred_points() -> None:
    lists, targets = _overconfident(300)
    chosen, report = fit_online_map(lists, targets)
    assert chosen is not None and report["method"] in ("platt", "isotonic") and report["transitions"] == 300
    assert report["held_block_ece"]["none"] > 0.25 and set(report["held_block_ece"]) == {"none", "platt", "isotonic"}
    assert report["validation_ece_before"] > 0.25 and report["validation_ece_after"] < 0.05
    held_lists, held_targets = _overconfident(2000, seed=1)  # and it transfers to a period it was not fit on
    mapped = [apply_map(r, chosen) for r in held_lists]
    confidence = np.array([r[0][1] for r in mapped])
    correct = np.array([t == "/a" for t in held_targets])
    assert ece(confidence, correct) < 0.05
    assert fit_online_map([[]], ["/x"]) == (None, {"method": "none", "transitions": 0})


def test_merge_params_round_trip_as_json_and_reject_bad_maps() -> None:
    params = MergeParams(0.35, 5.0, 3600.0, ("platt", (0.8, -0.2)))
    assert MergeParams.from_dict(params.as_dict()) == params
    assert params.as_dict()["calibration"] == {"method": "platt", "params": [0.8, -0.2]}
    isotonic = MergeParams(0.5, 1.0, None, ("isotonic", ((0.0, 0.5, 1.0), (0.0, 0.4, 0.4))))
    assert MergeParams.from_dict(isotonic.as_dict()) == isotonic
    assert map_to_json(None) is None
    assert MergeParams.from_dict({"weight": 0.5, "evidence": 5, "half_life": None}).calibration is None
    for bad in ({"method": "isotonic", "params": [1, 2]}, {"method": "platt", "params": [1.0]},
                {"method": "platt", "params": [-1.0, 0.0]}, {"method": "platt", "params": ["nan", 0]},
                {"method": "isotonic", "params": [[0.0, 1.0], [0.5, 0.1]]},
                {"method": "isotonic", "params": [[0.0], [0.0]]}):
        with pytest.raises(ValueError):
            map_from_json(bad)
    with pytest.raises(ValueError, match="weight"):
        MergeParams.from_dict({"evidence": 5})
    with pytest.raises(ValueError):
        MergeParams.from_dict([0.5])


def test_choose_fits_the_map_on_the_validation_walk_and_it_keeps_hr5() -> None:
    """A frozen model that is overconfident and wrong on /a -> ? ; live traffic goes /a -> /n1 or /n2."""
    rng = random.Random(3)
    stream = [Event(["/a"], rng.choice(["/n1", "/n1", "/n2", "/n3"]), float(t), f"s{t}", f"c{t}") for t in range(400)]
    seed = stream[:100]
    walk = stream[100:]
    frozen = [[("/old", 0.95), ("/n2", 0.02), ("/n1", 0.01)] for e in walk]
    choice = choose(frozen, seed, walk)
    assert choice.params.weight > 0 and choice.params.calibration is not None
    assert choice.calibration["method"] in ("platt", "isotonic")
    assert choice.calibration["validation_ece_after"] < choice.calibration["validation_ece_before"]
    assert choice.no_decay is not None and choice.no_decay.half_life is None
    live = live_pass(seed, walk, choice.params.half_life)
    unmapped = dataclasses.replace(choice.params, calibration=None)
    with_map, without = tally(online_lists(frozen, live, choice.params), live.targets), tally(
        online_lists(frozen, live, unmapped), live.targets)
    assert with_map.hr(1) == without.hr(1) and with_map.hr(5) == without.hr(5) and with_map.mrr == without.mrr
    assert with_map.ece < without.ece


def test_a_merge_that_does_not_help_stays_frozen_without_a_map() -> None:
    stream = [Event(["/a"], "/b", float(t), f"s{t}", f"c{t}") for t in range(200)]
    frozen = [[("/b", 0.99)] for _ in stream[50:]]
    choice = choose(frozen, stream[:50], stream[50:])
    assert choice.params == MergeParams(0.0, 1.0, None) and choice.params.calibration is None
    assert choice.calibration["method"] == "none"
