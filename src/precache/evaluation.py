"""The evaluation protocol every accuracy figure in precache uses.

Sessions are ordered by start time; the first 80% train, the last 20% test. A validation slice, when a
model wants one, comes out of the *end of the training part* only, so nothing about the test sessions
(vocabulary, tuning, early stopping) leaks into training. Each transition of a test session is one
prediction of the next page from the pages before it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from precache.traces.model import Session

Prediction = list[tuple[str, float]]


@runtime_checkable
class PagePredictor(Protocol):
    """What the protocol evaluates: learn from sessions, then rank next pages with probabilities."""

    name: str

    def fit(self, train: Sequence[Session], validation: Sequence[Session] | None = None) -> None: ...

    def predict(self, history: Sequence[str], k: int) -> Prediction: ...


@dataclass(frozen=True, slots=True)
class Split:
    train: list[Session]
    validation: list[Session]
    test: list[Session]

    @property
    def train_and_validation(self) -> list[Session]:
        return self.train + self.validation


def time_split(
    sessions: Iterable[Session], test_fraction: float = 0.2, validation_fraction: float = 0.1
) -> Split:
    """Order by start time; last ``test_fraction`` is test; the last ``validation_fraction`` of the rest is
    validation. Sessions with the same start keep their input order (stable sort)."""
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1) and validation_fraction in [0, 1)")
    ordered = sorted(sessions, key=lambda s: s.start)
    n_test = round(len(ordered) * test_fraction)
    train_all = ordered[: len(ordered) - n_test]
    n_val = round(len(train_all) * validation_fraction)
    return Split(
        train=train_all[: len(train_all) - n_val],
        validation=train_all[len(train_all) - n_val :],
        test=ordered[len(ordered) - n_test :],
    )


def transitions(sessions: Iterable[Session], max_history: int | None = None) -> Iterable[tuple[list[str], str]]:
    """Every (pages so far, next page) pair of the sessions, in order."""
    for session in sessions:
        pages = session.pages
        for i in range(1, len(pages)):
            start = 0 if max_history is None else max(0, i - max_history)
            yield pages[start:i], pages[i]


@dataclass(slots=True)
class Scores:
    """Ranking quality over all test transitions. ``coverage`` is the share of the training vocabulary that
    appeared in at least one top-10 list (how much of the catalogue the model ever recommends)."""

    model: str
    transitions: int
    hr1: float
    hr5: float
    hr10: float
    mrr5: float
    coverage: float
    ece: float
    predict_seconds: float
    fit_seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE of the top-1 probability: the bin-weighted gap between stated confidence and accuracy."""
    if not confidences:
        return 0.0
    totals = [0] * bins
    conf_sum = [0.0] * bins
    hit_sum = [0] * bins
    for p, ok in zip(confidences, correct, strict=True):
        b = min(bins - 1, max(0, int(p * bins)))
        totals[b] += 1
        conf_sum[b] += p
        hit_sum[b] += int(ok)
    n = len(confidences)
    return sum(abs(conf_sum[b] - hit_sum[b]) for b in range(bins) if totals[b]) / n


def evaluate(
    model: PagePredictor,
    test: Sequence[Session],
    vocabulary_size: int | None = None,
    max_history: int | None = 50,
    max_transitions: int | None = None,
) -> Scores:
    """Score ``model`` on every transition of ``test`` (or the first ``max_transitions``)."""
    n = hits1 = hits5 = hits10 = 0
    rr5 = 0.0
    recommended: set[str] = set()
    top1_conf: list[float] = []
    top1_ok: list[bool] = []
    started = time.perf_counter()
    for history, target in transitions(test, max_history):
        if max_transitions is not None and n >= max_transitions:
            break
        ranked = model.predict(history, 10)
        n += 1
        pages = [page for page, _ in ranked]
        recommended.update(pages)
        if ranked:
            top1_conf.append(float(ranked[0][1]))
            top1_ok.append(pages[0] == target)
        if target in pages:
            rank = pages.index(target) + 1
            hits10 += 1
            if rank <= 5:
                hits5 += 1
                rr5 += 1.0 / rank
            if rank == 1:
                hits1 += 1
    elapsed = time.perf_counter() - started
    denom = max(n, 1)
    coverage = len(recommended) / vocabulary_size if vocabulary_size else math.nan
    return Scores(
        model=getattr(model, "name", type(model).__name__),
        transitions=n,
        hr1=hits1 / denom,
        hr5=hits5 / denom,
        hr10=hits10 / denom,
        mrr5=rr5 / denom,
        coverage=coverage,
        ece=expected_calibration_error(top1_conf, top1_ok),
        predict_seconds=elapsed,
    )
