"""precache.scoring: the one definition of HR@k, MRR@k, ECE and "misses removed", checked on hand-made
numbers and against the copies it replaced (evaluation, auto, calibration, replay, experiment)."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precache.evaluation import evaluate
from precache.models.calibration import ece, reliability_table
from precache.scoring import (
    RankingTally,
    expected_calibration_error,
    hit_at,
    misses_removed,
    page_rank,
    rank_of,
    ranking_scores,
    reliability_bins,
)
from precache.traces.model import Session
from precache.types import Prediction

ROOT = Path(__file__).resolve().parents[2]


def test_ranks_hits_and_reciprocal_ranks_on_hand_made_lists() -> None:
    ranked = [("/a", 0.5), ("/b", 0.3), ("/c", 0.1)]
    assert [rank_of(ranked, page, 5) for page in ("/a", "/b", "/c", "/z")] == [1, 2, 3, 0]
    assert rank_of(ranked, "/c", 2) == 0 and not hit_at(ranked, "/c", 2) and hit_at(ranked, "/c", 3)
    assert [page_rank(["/a", "/b", "/c"], page, 2) for page in ("/a", "/b", "/c")] == [1, 2, 0]
    scores = ranking_scores([ranked, ranked, ranked, []], ["/a", "/b", "/z", "/a"])
    assert scores == {"hr1": 0.25, "hr5": 0.5, "mrr5": (1 + 0.5) / 4, "transitions": 4.0}
    tally = RankingTally(ks=(1, 2))
    with pytest.raises(ValueError, match="HR@5 was not tallied"):
        tally.hr(5)
    assert tally.hr(1) == 0.0 and tally.mrr == 0.0 and tally.ece == 0.0  # nothing scored is not an error


def test_ece_and_reliability_bins_on_hand_made_numbers() -> None:
    confidence, correct = [0.95, 0.95, 0.15, 0.15], [True, False, False, False]
    bins = reliability_bins(confidence, correct)
    assert (bins[9].count, bins[9].accuracy, bins[1].count, bins[1].accuracy) == (2, 0.5, 2, 0.0)
    assert bins[0].count == 0 and bins[0].confidence == 0.0
    assert reliability_bins([1.0, 0.0], [True, False])[9].count == 1  # 1.0 falls in the last bin
    assert expected_calibration_error(confidence, correct) == pytest.approx((2 * 0.45 + 2 * 0.15) / 4)
    assert expected_calibration_error([], []) == 0.0
    with pytest.raises(ValueError, match="same length"):
        reliability_bins([0.5], [])


def test_misses_removed() -> None:
    assert misses_removed(0.9, 0.8) == pytest.approx(0.5)  # 20% misses -> 10%
    assert misses_removed(0.7, 0.8) == pytest.approx(-0.5)  # warming added misses
    assert misses_removed(1.0, 1.0) == 0.0  # no misses to remove


def _old_evaluation_ece(confidences: list[float], correct: list[bool], bins: int = 10) -> float:
    """The copy that lived in precache.evaluation."""
    if not confidences:
        return 0.0
    totals, conf_sum, hit_sum = [0] * bins, [0.0] * bins, [0] * bins
    for p, ok in zip(confidences, correct, strict=True):
        b = min(bins - 1, max(0, int(p * bins)))
        totals[b] += 1
        conf_sum[b] += p
        hit_sum[b] += int(ok)
    return sum(abs(conf_sum[b] - hit_sum[b]) for b in range(bins) if totals[b]) / len(confidences)


def _old_auto_score(predictions: list[Prediction], targets: list[str]) -> dict[str, float]:
    """The copy that lived in precache.models.auto."""
    n = max(1, len(targets))
    hr1 = hr5 = rr5 = 0.0
    for ranked, target in zip(predictions, targets, strict=True):
        pages = [p for p, _ in ranked[:5]]
        if target in pages:
            rank = pages.index(target) + 1
            hr5 += 1
            rr5 += 1.0 / rank
            hr1 += rank == 1
    return {"hr1": hr1 / n, "hr5": hr5 / n, "mrr5": rr5 / n, "transitions": float(len(targets))}


pages = st.sampled_from([f"/p{i}" for i in range(12)])
rankings = st.lists(st.tuples(pages, st.floats(0, 1)), max_size=10).map(lambda r: list(dict(r).items()))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(rankings, pages), max_size=40))
def test_scoring_equals_the_copies_it_replaced(rows: list[tuple[Prediction, str]]) -> None:
    predictions, targets = [r for r, _ in rows], [t for _, t in rows]
    assert ranking_scores(predictions, targets) == pytest.approx(_old_auto_score(predictions, targets))
    confidence = [r[0][1] for r in predictions if r]
    correct = [r[0][0] == t for r, t in rows if r]
    new = expected_calibration_error(confidence, correct)
    assert new == pytest.approx(_old_evaluation_ece(confidence, correct), abs=1e-12)
    assert ece(np.array(confidence), np.array(correct)) == pytest.approx(new, abs=1e-12)
    assert sum(b.count for b in reliability_table(np.array(confidence), np.array(correct))) == len(confidence)


class _Fixed:
    """A predictor that answers from a table (so the evaluation's counting is all that is tested)."""

    name = "fixed"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def fit(self, train: object, validation: object = None) -> None: ...

    def predict(self, history: list[str], k: int) -> Prediction:
        pages = [f"/p{i}" for i in range(8)]
        self.rng.shuffle(pages)
        return [(p, 0.5 / (i + 1)) for i, p in enumerate(pages[:k])]


def test_evaluate_counts_as_scoring_does() -> None:
    rng = random.Random(1)
    sessions = [Session(str(i), "c", float(i), [f"/p{rng.randrange(10)}" for _ in range(5)]) for i in range(50)]
    scores = evaluate(_Fixed(7), sessions, vocabulary_size=10)
    replay, tally = _Fixed(7), RankingTally()
    for s in sessions:
        for i in range(1, len(s.pages)):
            tally.add(replay.predict(s.pages[:i], 10), s.pages[i])
    assert (scores.transitions, scores.hr1, scores.hr5, scores.hr10, scores.mrr5, scores.ece) == (
        tally.transitions, tally.hr(1), tally.hr(5), tally.hr(10), tally.mrr, tally.ece)
    assert 0 < scores.hr1 < scores.hr5 < scores.hr10 < 1


def test_prediction_is_defined_once() -> None:
    """`Prediction` was defined five times; now only precache.types assigns it."""
    definitions = []
    for path in (ROOT / "src" / "precache").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
            if isinstance(node, ast.Assign | ast.AnnAssign) and any(
                isinstance(t, ast.Name) and t.id == "Prediction" for t in targets
            ):
                definitions.append(str(path.relative_to(ROOT)))
    assert definitions == ["src/precache/types.py"]


def test_scoring_is_light() -> None:
    code = "import sys, precache.scoring; print(sorted(m for m in ('numpy', 'pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
