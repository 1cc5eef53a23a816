"""How precache scores predictions, defined once: HR@k, MRR@k, ECE and "misses removed".

Why one module: the offline evaluation, auto's choice on the validation slice, the replay's online
accuracy and the experiment's headline all quote these numbers side by side, and copies of the counting
had started to drift. Conventions (the evaluation protocol's):

* A prediction is a ranked list of ``(page, probability)`` pairs, best first. The rank of the true next page
  is its 1-based position; HR@k counts ranks <= k, MRR@k averages ``1 / rank`` over ranks <= k (0 beyond).
* ECE is the expected calibration error of the top-1 probability: equal-width confidence bins, each
  weighted by its share of predictions, ``|mean confidence - accuracy|`` per bin.
* "Misses removed" compares two hit rates: the share of the baseline's misses the other run did not have.

Standard library only, so the replay's hot loop and ``import precache`` stay light; it accepts numpy arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from precache.types import Prediction

__all__ = [
    "Bin",
    "RankingTally",
    "expected_calibration_error",
    "hit_at",
    "misses_removed",
    "page_rank",
    "rank_of",
    "ranking_scores",
    "reliability_bins",
]


def rank_of(ranked: Prediction, target: str, k: int) -> int:
    """1-based rank of ``target`` among the first ``k`` pages of ``ranked``; 0 when it is not there."""
    for position, (page, _) in enumerate(ranked[:k], start=1):
        if page == target:
            return position
    return 0


def page_rank(pages: Sequence[str], target: str, k: int) -> int:
    """:func:`rank_of` for a ranked list of pages without probabilities (what a tracker keeps)."""
    for position, page in enumerate(pages[:k], start=1):
        if page == target:
            return position
    return 0


def hit_at(ranked: Prediction, target: str, k: int) -> bool:
    """Is ``target`` among the first ``k`` pages of ``ranked``?"""
    return rank_of(ranked, target, k) > 0


@dataclass(slots=True)
class RankingTally:
    """Running HR@k for several k, MRR@``mrr_k``, and the top-1 confidences for ECE, one prediction at a time
    (so a caller can stream millions of transitions, time them, or stop early)."""

    ks: tuple[int, ...] = (1, 5, 10)
    mrr_k: int = 5
    transitions: int = 0
    hits: dict[int, int] = field(default_factory=dict)
    reciprocal_ranks: float = 0.0
    top1_confidence: list[float] = field(default_factory=list)
    top1_correct: list[bool] = field(default_factory=list)

    def add(self, ranked: Prediction, target: str) -> None:
        self.transitions += 1
        rank = rank_of(ranked, target, max(*self.ks, self.mrr_k))
        if rank:
            for k in self.ks:
                if rank <= k:
                    self.hits[k] = self.hits.get(k, 0) + 1
            if rank <= self.mrr_k:
                self.reciprocal_ranks += 1.0 / rank
        if ranked:
            self.top1_confidence.append(float(ranked[0][1]))
            self.top1_correct.append(rank == 1)

    def hr(self, k: int) -> float:
        if k not in self.ks:
            raise ValueError(f"HR@{k} was not tallied (ks={self.ks})")
        return self.hits.get(k, 0) / max(self.transitions, 1)

    @property
    def mrr(self) -> float:
        return self.reciprocal_ranks / max(self.transitions, 1)

    @property
    def ece(self) -> float:
        return expected_calibration_error(self.top1_confidence, self.top1_correct)


def ranking_scores(predictions: Iterable[Prediction], targets: Iterable[str]) -> dict[str, float]:
    """HR@1, HR@5, MRR@5 and the number of transitions of ranked lists against the true next pages."""
    tally = RankingTally(ks=(1, 5), mrr_k=5)
    for ranked, target in zip(predictions, targets, strict=True):
        tally.add(ranked, target)
    return {"hr1": tally.hr(1), "hr5": tally.hr(5), "mrr5": tally.mrr, "transitions": float(tally.transitions)}


@dataclass(frozen=True, slots=True)
class Bin:
    """One equal-width confidence bin: its bounds, how many predictions fell in it, their mean confidence
    and the share of them that was right (0 for an empty bin)."""

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


def reliability_bins(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[Bin]:
    """Equal-width bins over [0, 1] (empty bins kept; 1.0 falls in the last bin)."""
    if len(confidence) != len(correct):
        raise ValueError("confidence and correct must have the same length")
    counts = [0] * bins
    confidence_sums = [0.0] * bins
    correct_sums = [0] * bins
    for p, ok in zip(confidence, correct, strict=True):
        b = min(bins - 1, max(0, int(p * bins)))
        counts[b] += 1
        confidence_sums[b] += float(p)
        correct_sums[b] += int(bool(ok))
    return [
        Bin(
            lower=b / bins,
            upper=(b + 1) / bins,
            count=counts[b],
            confidence=confidence_sums[b] / counts[b] if counts[b] else 0.0,
            accuracy=correct_sums[b] / counts[b] if counts[b] else 0.0,
        )
        for b in range(bins)
    ]


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE of the top-1 probability: the bin-weighted gap between stated confidence and accuracy (0 when
    there is nothing to score)."""
    n = len(confidence)
    if n == 0:
        return 0.0
    return sum(b.count * abs(b.confidence - b.accuracy) for b in reliability_bins(confidence, correct, bins)) / n


def misses_removed(hit_rate: float, baseline_hit_rate: float) -> float:
    """Share of the baseline's misses that the other run turned into hits (negative when it missed more;
    0 when the baseline never missed)."""
    baseline_misses = 1.0 - float(baseline_hit_rate)
    if baseline_misses <= 0.0:
        return 0.0
    return 1.0 - (1.0 - float(hit_rate)) / baseline_misses
