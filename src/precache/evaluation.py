"""The evaluation protocol every accuracy figure in precache uses.

Sessions are ordered by start time; the first 80% train, the last 20% test. A validation slice, when a
model wants one, comes out of the *end of the training part* only, so nothing about the test sessions
(vocabulary, tuning, early stopping) leaks into training. Each transition of a test session is one
prediction of the next page from the pages before it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from precache.scoring import RankingTally, expected_calibration_error
from precache.traces.model import Session
from precache.types import Prediction

__all__ = [
    "ComparablePredictor",
    "ModelReport",
    "PagePredictor",
    "Prediction",
    "Scores",
    "Split",
    "compare_predictors",
    "evaluate",
    "expected_calibration_error",
    "measure_latency",
    "sample_histories",
    "time_split",
    "transitions",
]


@runtime_checkable
class PagePredictor(Protocol):
    """What the protocol evaluates: learn from sessions, then rank next pages with probabilities."""

    name: str

    def fit(self, train: Sequence[Session], validation: Sequence[Session] | None = None) -> None: ...

    def predict(self, history: Sequence[str], k: int) -> Prediction: ...


class ComparablePredictor(PagePredictor, Protocol):
    """What :func:`compare_predictors` measures besides accuracy: size on disk and vocabulary."""

    @property
    def vocabulary_size(self) -> int: ...

    def save(self, directory: str) -> object: ...

    def size_bytes(self, directory: str) -> int: ...


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


def evaluate(
    model: PagePredictor,
    test: Sequence[Session],
    vocabulary_size: int | None = None,
    max_history: int | None = 50,
    max_transitions: int | None = None,
) -> Scores:
    """Score ``model`` on every transition of ``test`` (or the first ``max_transitions``), counting as
    :mod:`precache.scoring` does."""
    tally = RankingTally(ks=(1, 5, 10), mrr_k=5)
    recommended: set[str] = set()
    started = time.perf_counter()
    for history, target in transitions(test, max_history):
        if max_transitions is not None and tally.transitions >= max_transitions:
            break
        ranked = model.predict(history, 10)
        recommended.update(page for page, _ in ranked)
        tally.add(ranked, target)
    elapsed = time.perf_counter() - started
    coverage = len(recommended) / vocabulary_size if vocabulary_size else math.nan
    return Scores(
        model=getattr(model, "name", type(model).__name__),
        transitions=tally.transitions,
        hr1=tally.hr(1),
        hr5=tally.hr(5),
        hr10=tally.hr(10),
        mrr5=tally.mrr,
        coverage=coverage,
        ece=tally.ece,
        predict_seconds=elapsed,
    )


# -- comparing predictors: quality, cost and speed (used by `precache evaluate` and the benchmark) -------


@dataclass(slots=True)
class ModelReport:
    """One row of the comparison table: the protocol's scores plus what the model costs to run."""

    scores: Scores
    size_bytes: int
    p50_us: float
    p99_us: float
    throughput_256: float
    vocabulary_size: int
    error: str | None = None

    def as_dict(self) -> dict[str, float | int | str | None]:
        row: dict[str, float | int | str | None] = dict(self.scores.as_dict())
        row.update(
            size_bytes=self.size_bytes,
            p50_us=self.p50_us,
            p99_us=self.p99_us,
            throughput_256=self.throughput_256,
            vocabulary_size=self.vocabulary_size,
            error=self.error,
        )
        return row


def sample_histories(test: Sequence[Session], limit: int, max_history: int | None = 50) -> list[list[str]]:
    """The first ``limit`` prediction inputs of the test sessions (the histories the protocol scores)."""
    histories: list[list[str]] = []
    for history, _ in transitions(test, max_history):
        if len(histories) >= limit:
            break
        histories.append(history)
    return histories


def measure_latency(
    model: PagePredictor, histories: Sequence[Sequence[str]], k: int = 10, batch: int = 256
) -> tuple[float, float, float]:
    """(p50 µs, p99 µs) of single ``predict`` calls and predictions/s of ``predict_batch`` at ``batch``.

    Per-model memo caches are cleared first (``clear_cache`` when the model has one), so the figures are
    for a model that starts cold on these histories, as after a load.
    """
    if not histories:
        return math.nan, math.nan, math.nan
    clear = getattr(model, "clear_cache", None)
    if callable(clear):
        clear()
    samples: list[float] = []
    for history in histories:
        started = time.perf_counter()
        model.predict(history, k)
        samples.append(time.perf_counter() - started)
    samples.sort()
    p50 = samples[len(samples) // 2] * 1e6
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6
    if callable(clear):
        clear()
    predict_batch = getattr(model, "predict_batch", None)
    batches = [list(histories[i : i + batch]) for i in range(0, len(histories), batch)]
    batches = [b for b in batches if len(b) == batch] or batches[:1]
    started = time.perf_counter()
    done = 0
    for chunk in batches:
        if callable(predict_batch):
            predict_batch(chunk, k)
        else:
            for history in chunk:
                model.predict(history, k)
        done += len(chunk)
    elapsed = time.perf_counter() - started
    return p50, p99, done / elapsed if elapsed > 0 else math.inf


def compare_predictors(
    split: Split,
    builders: Mapping[str, Callable[[], ComparablePredictor]],
    max_transitions: int | None = None,
    latency_samples: int = 2000,
    on_progress: Callable[[str], None] | None = None,
) -> list[ModelReport]:
    """Build each named predictor (``builders``: name -> a fresh, unfitted model; the caller picks the
    kinds, so this protocol module knows no model class), fit it on the split's train (+ validation),
    score it on the test sessions and measure size on disk and latency. A model that fails to fit is
    reported with ``error`` set, so one broken model never hides the others' figures."""
    import tempfile

    histories = sample_histories(split.test, latency_samples)
    reports: list[ModelReport] = []
    for name, build in builders.items():
        if on_progress:
            on_progress(f"{name}: fitting")
        model = build()
        started = time.perf_counter()
        try:
            model.fit(split.train, split.validation)
        except (ImportError, RuntimeError, ValueError, MemoryError) as exc:
            empty = Scores(name, 0, *(math.nan,) * 6, predict_seconds=0.0)
            reports.append(ModelReport(empty, 0, math.nan, math.nan, math.nan, 0, error=f"{type(exc).__name__}: {exc}"))
            continue
        fit_seconds = time.perf_counter() - started
        if on_progress:
            on_progress(f"{name}: scoring")
        scores = evaluate(model, split.test, model.vocabulary_size, max_transitions=max_transitions)
        scores.fit_seconds = fit_seconds
        with tempfile.TemporaryDirectory(prefix="precache-model-") as tmp:
            model.save(tmp)
            size = model.size_bytes(tmp)
        if on_progress:
            on_progress(f"{name}: timing")
        p50, p99, throughput = measure_latency(model, histories)
        reports.append(ModelReport(scores, size, p50, p99, throughput, model.vocabulary_size))
    return reports
