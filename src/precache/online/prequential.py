"""The prequential (test-then-learn) protocol: score each transition with the state as it stands, then learn it.

Why: a model that learns from live traffic must be measured the way it runs. The test period is walked in
time order (every transition of every session sorted by its timestamp; sequence files without times keep
session order, and their clock is the transition's index); each transition is scored first and only then
added to the online counts. Frozen rows score the same transitions with the model as trained, so frozen and
online are compared on identical queries, and the frozen row equals the split protocol's score.

How the merge is chosen (:func:`choose`): on the training period only. The validation slice (the end of
the training part) plays the test period: a *selection* model fitted on the training slice alone is the
frozen model, the online counts are seeded with the training slice and walk the validation slice
test-then-learn; the half-life (from a grid relative to the slice's time span), weight and evidence with
the best validation HR@5 win (ties: less weight, then no decay). The calibration map of the merged answers
(:mod:`precache.online.calibration`) is fit on the same walk's lists of the chosen merge. The test run then
uses the model fitted on train + validation and counts seeded with train + validation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from precache.models.base import BatchPredictor
from precache.online.calibration import calibrated_online, fit_online_map
from precache.online.guards import ContributionGuard
from precache.online.merge import FROZEN_DEPTH, LIVE_DEPTH, MergeParams, counts_only
from precache.online.state import OnlineCounts
from precache.scoring import RankingTally
from precache.traces.model import Session
from precache.types import Prediction

WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)
EVIDENCE = (1.0, 5.0, 25.0)
SPAN_FRACTIONS = (None, 4.0, 1.0, 0.25, 0.0625)  # half-life = fraction x the walked period's span (None: no decay)
POPULARITY_REFRESH = 256


@dataclass(frozen=True, slots=True)
class Event:
    """One transition of the stream: the pages before it (at most 50), the next page, when, and whose."""

    history: list[str]
    target: str
    t: float
    session: str
    client: str
    scored: bool = True
    position: int = 0  # the target's index in its session


def events(sessions: Sequence[Session], start: float = 0.0, max_history: int = 50) -> list[Event]:
    """Every transition in time order (see the module doc); ``start`` offsets the index clock of untimed
    sessions so a seed and its test stream share one clock."""
    timed = bool(sessions) and all(len(s.times) == len(s.pages) for s in sessions)
    out: list[tuple[float, int, int, Event]] = []
    index = 0
    for order, s in enumerate(sessions):
        for i in range(1, len(s.pages)):
            t = s.times[i] if timed else start + index
            out.append((t, order, i, Event(s.pages[max(0, i - max_history) : i], s.pages[i], t, s.session_id,
                                           s.client, position=i)))
            index += 1
    if timed:
        out.sort(key=lambda e: (e[0], e[1], e[2]))
    return [e[3] for e in out]


def span(stream: Sequence[Event]) -> float:
    return max(1.0, stream[-1].t - stream[0].t) if stream else 1.0


@dataclass(slots=True)
class LivePass:
    """For each scored event: the live row's head, its decayed evidence and the live popularity head."""

    rows: list[Prediction]
    evidence: list[float]
    popularity: list[Prediction]
    targets: list[str]
    state: OnlineCounts
    seed_seconds: float = 0.0
    walk_seconds: float = 0.0
    learned: int = 0
    seeded: int = 0


def live_pass(seed: Sequence[Event], stream: Sequence[Event], half_life: float | None,
              guard: ContributionGuard | None = None, max_scored: int | None = None,
              max_contexts: int = 1_000_000, max_successors: int = 64) -> LivePass:
    """Seed the counts (unguarded: the training period is what the frozen model learned too), then walk
    ``stream`` test-then-learn through ``guard``; stops after ``max_scored`` scored events."""
    state = OnlineCounts(half_life, max_contexts=max_contexts, max_successors=max_successors)
    started = time.perf_counter()
    for e in seed:
        state.add(e.history[-1], e.target, e.t)
    out = LivePass([], [], [], [], state, seed_seconds=time.perf_counter() - started, seeded=len(seed))
    started = time.perf_counter()
    popularity: Prediction = []
    for j, e in enumerate(stream):
        if e.scored:
            if max_scored is not None and len(out.targets) >= max_scored:
                break
            if j % POPULARITY_REFRESH == 0 or not popularity:
                popularity = state.head(None, LIVE_DEPTH, e.t)[0]
            row, n = state.head(e.history[-1], LIVE_DEPTH, e.t)
            out.rows.append(row)
            out.evidence.append(n)
            out.popularity.append(popularity)
            out.targets.append(e.target)
        if guard is None or guard.allow(e.session, e.client, e.history[-1], e.target, e.t):
            state.add(e.history[-1], e.target, e.t)
            out.learned += 1
    out.walk_seconds = time.perf_counter() - started
    return out


def tally(lists: Sequence[Prediction], targets: Sequence[str]) -> RankingTally:
    t = RankingTally(ks=(1, 5, 10), mrr_k=5)
    for ranked, target in zip(lists, targets, strict=True):
        t.add(ranked, target)
    return t


def row(model: str, protocol: str, t: RankingTally, **extra: Any) -> dict[str, Any]:
    """One result row (the ``--json`` / benchmark layout)."""
    return {"model": model, "protocol": protocol, "hr5": round(t.hr(5), 4), "ece": round(t.ece, 4),
            "hr1": round(t.hr(1), 4), "hr10": round(t.hr(10), 4), "mrr5": round(t.mrr, 4),
            "transitions": t.transitions, **extra}


def frozen_heads(model: BatchPredictor, stream: Sequence[Event], limit: int | None, depth: int = FROZEN_DEPTH,
                 chunk: int = 256) -> list[Prediction]:
    scored = [e.history for e in stream if e.scored][:limit]
    out: list[Prediction] = []
    for i in range(0, len(scored), chunk):
        out.extend(model.predict_batch(scored[i : i + chunk], depth))
    return out


def online_lists(frozen: Sequence[Prediction] | None, live: LivePass, params: MergeParams,
                 k: int = 10) -> list[Prediction]:
    """The online predictor's lists for a pass: the merge with the frozen lists, or counts alone."""
    if frozen is None:
        return [counts_only(r, p, k) for r, p in zip(live.rows, live.popularity, strict=True)]
    return [params.answer(f, r, n, k) for f, r, n in zip(frozen, live.rows, live.evidence, strict=True)]


def calibrated_lists(frozen: Sequence[Prediction] | None, live: LivePass, params: MergeParams,
                     mode: str = "online", k: int = 10) -> list[Prediction]:
    """The online answers of a pass calibrated as ``ML_ONLINE_CALIBRATE=mode`` does in the service: ``online``
    -- the unmapped merge through a fresh :class:`~precache.online.calibration.OnlineCalibrator`, each answer
    mapped with what the earlier answers' outcomes taught, its own outcome learned after it was scored --,
    ``stored`` -- ``params``' map, fit on the validation walk --, ``false`` -- unmapped. Counts alone (no
    frozen model) are a baseline and stay unmapped."""
    if frozen is None or mode == "stored":
        return online_lists(frozen, live, params, k)
    raw = online_lists(frozen, live, replace(params, calibration=None), k)
    return raw if mode == "false" else calibrated_online(raw, live.targets)


@dataclass(slots=True)
class Choice:
    """The chosen merge (its calibration map included), and the best merge without decay (also mapped)."""

    params: MergeParams
    validation_hr5: float
    frozen_validation_hr5: float
    grid: list[dict[str, Any]]
    no_decay: MergeParams | None = None
    calibration: dict[str, Any] = field(default_factory=dict)  # the map's fit report (validation ECE before/after)


def calibrated_choice(params: MergeParams, lists: Sequence[Prediction], targets: Sequence[str]
                      ) -> tuple[MergeParams, dict[str, Any]]:
    """``params`` with the calibration map fit on its own validation lists (none when the merge is off:
    the online answer is then the frozen model's, calibrated by its own map)."""
    if params.weight <= 0.0:
        return params, {"method": "none", "reason": "weight 0: the online answer is the frozen model's"}
    ab, report = fit_online_map(lists, targets)
    return replace(params, calibration=ab), report


def half_lives(stream: Sequence[Event]) -> list[float | None]:
    width = span(stream)
    return [None if f is None else width * f for f in SPAN_FRACTIONS]


def choose(frozen: Sequence[Prediction] | None, seed: Sequence[Event], stream: Sequence[Event],
           max_scored: int | None = None, weights: Sequence[float] = WEIGHTS,
           guard_factory: Callable[[], ContributionGuard | None] = lambda: None) -> Choice:
    """The merge (half-life, weight, evidence) with the best HR@5 on ``stream`` walked test-then-learn after
    ``seed``, and its calibration map (see the module doc). ``frozen=None`` chooses the half-life of the counts
    alone (no map: counts alone are a baseline)."""
    grid: list[dict[str, Any]] = []
    best: tuple[tuple[float, float, float, int], MergeParams, list[Prediction]] | None = None
    plain: tuple[tuple[float, float, float, int], MergeParams, list[Prediction]] | None = None
    targets: list[str] = []
    for rank, half_life in enumerate(half_lives(stream)):
        live = live_pass(seed, stream, half_life, guard_factory(), max_scored)
        targets = live.targets
        candidates = [MergeParams(1.0, 1.0, half_life)] if frozen is None else [
            MergeParams(w, ev, half_life) for w in weights for ev in EVIDENCE if w > 0]
        for params in candidates:
            lists = online_lists(frozen, live, params)
            t = tally(lists, live.targets)
            grid.append({**params.as_dict(), "hr5": round(t.hr(5), 4), "mrr5": round(t.mrr, 4)})
            key = (t.hr(5), t.mrr, -params.weight, -rank)
            if best is None or key > best[0]:
                best = (key, params, lists)
            if half_life is None and (plain is None or key > plain[0]):
                plain = (key, params, lists)
    assert best is not None and plain is not None
    if frozen is None:
        return Choice(best[1], best[0][0], float("nan"), grid)
    frozen_tally = tally(frozen, targets)
    no_decay, _ = calibrated_choice(plain[1], plain[2], targets)
    if (frozen_tally.hr(5), frozen_tally.mrr) >= best[0][:2]:  # no help: stay frozen
        stay = MergeParams(0.0, 1.0, None)
        return Choice(stay, frozen_tally.hr(5), frozen_tally.hr(5), grid, no_decay, calibrated_choice(
            stay, [], [])[1])
    params, report = calibrated_choice(best[1], best[2], targets)
    return Choice(params, best[0][0], frozen_tally.hr(5), grid, no_decay, report)
