"""Auto's candidates scored on the validation slice: the single models, attention blends and learned gates.

Why apart from :mod:`precache.models.auto`: fitting and scoring what auto chooses from is one job (its
inputs are the training sessions, the validation transitions and auto's settings; its output is a table of
scores and the fitted models), choosing among them under the size and latency budgets is another. Every
candidate is scored on the same validation transitions, by models fitted on the training sessions only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from precache.models.base import PagePredictorBase, Prediction
from precache.models.combine import blend, cross_fitted
from precache.models.kinds import build_predictor
from precache.scoring import ranking_scores
from precache.traces.model import Session


@runtime_checkable
class AttentionRecount(Protocol):
    """A model whose count part can be refit without retraining (the attention model's Markov term)."""

    def recount(self, sessions: Sequence[Session]) -> None: ...


@dataclass(slots=True)
class Candidates:
    """What auto chooses from, in the order it was scored (ties go to the earlier entry)."""

    histories: list[list[str]]
    targets: list[str]
    fitted: dict[str, PagePredictorBase] = field(default_factory=dict)
    heads: dict[str, list[Prediction]] = field(default_factory=dict)  # each model's top lists, per history
    results: dict[str, dict[str, float]] = field(default_factory=dict)  # candidate -> validation scores
    errors: dict[str, str] = field(default_factory=dict)  # kind -> why it could not be fitted here
    fit_seconds: dict[str, float] = field(default_factory=dict)
    gate_lists: dict[str, list[Prediction]] = field(default_factory=dict)  # spec -> cross-fitted gate lists


def predict_all(model: PagePredictorBase, histories: list[list[str]], k: int, chunk: int = 256) -> list[Prediction]:
    out: list[Prediction] = []
    for i in range(0, len(histories), chunk):
        out.extend(model.predict_batch(histories[i : i + chunk], k))
    return out


def fit_models(c: Candidates, kinds: Sequence[str], scored: Sequence[str], attention_options: Mapping[str, Any],
               train: Sequence[Session], validation: Sequence[Session], depth: int) -> None:
    """Fit each of ``kinds`` on ``train``, keep its top ``depth`` lists, and score those in ``scored``. A kind
    that cannot be fitted here (not installed, bad options) is skipped and said so in ``c.errors``."""
    for kind in kinds:
        # the attention model's Markov term must not count the validation transitions it is scored on
        options = {**attention_options, "recount_with_validation": False} if kind == "attention" else {}
        started = time.perf_counter()
        try:
            model = build_predictor(kind, **options)
            # Only the attention model sees the validation slice while fitting, and only for early
            # stopping; the baselines count train + validation when given it, which would make the
            # choice below score them on sessions they were fitted on.
            model.fit(train, validation if kind == "attention" else None)
        except (ImportError, ValueError) as exc:
            c.errors[kind] = str(exc)
            continue
        c.fit_seconds[kind] = round(time.perf_counter() - started, 2)
        c.fitted[kind] = model
        c.heads[kind] = predict_all(model, c.histories, depth)
        if kind in scored:
            c.results[kind] = ranking_scores(c.heads[kind], c.targets)


def score_blends(c: Candidates, partners: Sequence[str], weights: Sequence[float]) -> None:
    """``attention+<kind>@<weight>``: the attention model's lists blended with each partner's."""
    if "attention" not in c.heads:
        return
    for kind in partners:
        if kind not in c.heads or kind == "attention":
            continue
        for w in weights:
            merged = [blend(a, b, w, 10) for a, b in zip(c.heads["attention"], c.heads[kind], strict=True)]
            c.results[f"attention+{kind}@{w:g}"] = ranking_scores(merged, c.targets)


def score_gates(c: Candidates, gates: Sequence[str]) -> None:
    """``gate(a+b+...)``: a learned gate over fitted kinds, scored on cross-fitted lists (honest confidences)."""
    for spec in gates:
        kinds = spec.split("+")
        if len(kinds) < 2 or any(kind not in c.heads for kind in kinds):
            continue  # a gate mixes only kinds fitted as candidates or blend partners
        c.gate_lists[spec] = cross_fitted([c.heads[kind] for kind in kinds], c.histories, c.targets)
        c.results[f"gate({spec})"] = ranking_scores(c.gate_lists[spec], c.targets)


def refit(c: Candidates, train: Sequence[Session], validation: Sequence[Session]) -> None:
    """What ships counts the latest sessions too: every fitted model again on train + validation (the
    attention network stays; its Markov counts take the validation sessions)."""
    for kind, model in c.fitted.items():
        started = time.perf_counter()
        if isinstance(model, AttentionRecount):
            model.recount([*train, *validation])
        else:
            model.fit(train, validation)
        c.fit_seconds[kind] = round(c.fit_seconds[kind] + time.perf_counter() - started, 2)
