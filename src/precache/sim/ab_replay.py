"""An experiment replayed on a real trace: arms assigned per session, one shared cache, the real warmer.

Why one replay and not one per arm: in production the arms of a session-scoped experiment share the
cache, so a page warmed for a session in arm "on" can serve a session in arm "off" (interference that
can dilute the difference toward zero; ``bench/bench_experiments.py`` compares it with warming on vs off
for everyone). Replaying both arms together through one cache keeps that, exactly
as a live experiment would see it. The warmer gets the arms through
:class:`precache.types.SessionParameters` (:class:`~precache.experiments.params.ExperimentParameters`),
and tells a :class:`_ArmCosts` observer what each session's preloads cost and earned.

Per arm, from the replay's per-request records (the measured part only): hit ratio and load latency
per request, and per session the origin requests and bytes it caused (its own misses plus the preloads
made for it) and its requests and hits (the readout's hit-ratio test is per session, by the delta
method: requests of one session are not independent). Preload efficiency per arm is the warmer's (used /
loaded preloads made for that arm's sessions); HR@5 per arm is the replay's online score of the
predictions made for that arm's sessions (none in a "warming off" arm: no prediction is made there). The
readout is the same :func:`~precache.experiments.readout.readout` the service shows, plus ``looks``: the
hit-ratio comparison read at ten points in time, with the always-valid p-value, as someone checking a
dashboard during the experiment would have seen it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import numpy as np

from precache.experiments.arms import ArmStats, Clustered
from precache.experiments.assignment import assign
from precache.experiments.model import Experiment
from precache.experiments.params import ExperimentParameters
from precache.experiments.readout import readout
from precache.experiments.stats import SequentialTracker, ratio_difference, two_proportions
from precache.sim.metrics import HIT_CODES, ORIGIN_CODE, ReplayResult
from precache.sim.replay import Mode, ReplayConfig, replay
from precache.sim.workload import PreparedTrace
from precache.warming.assets import AssetModel
from precache.warming.warmer import Predictor


class _ArmCosts:
    """Per session: preloads loaded for it (requests, bytes) and how many of them a user request used."""

    def __init__(self) -> None:
        self.loads: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.uses: defaultdict[str, int] = defaultdict(int)
        self.hr5: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])  # session -> [hits, scored]

    def loaded(self, session: str, key: str, size: int) -> None:
        entry = self.loads[session]
        entry[0] += 1
        entry[1] += size

    def used(self, session: str, key: str) -> None:
        self.uses[session] += 1

    def scored(self, session: str, hit5: bool) -> None:
        entry = self.hr5[session]
        entry[0] += hit5
        entry[1] += 1


def replay_experiment(
    trace: PreparedTrace,
    experiment: Experiment,
    base: Mode,
    config: ReplayConfig,
    predictor: Predictor | None,
    assets: AssetModel | None = None,
    looks: int = 10,
) -> tuple[ReplayResult, dict[str, ArmStats], dict[str, Any]]:
    """Replay ``trace`` once under ``base`` (a warming mode) with ``experiment``'s arms applied per session.

    Returns the replay, the per-arm statistics and the readout (with ``looks``)."""
    if experiment.scope != "session":
        raise ValueError("only session-scoped experiments can share one replay (replica arms need one cache each)")
    costs = _ArmCosts()
    mode = dataclasses.replace(base, name=f"{base.name}+{experiment.id}", params=ExperimentParameters([experiment]),
                               observer=costs, scored=costs.scored)
    result = replay(trace, mode, config, predictor, assets)
    arms, series = _arm_stats(trace, experiment, result, costs)
    out = readout(experiment, arms)
    out["looks"] = _looks(experiment, series, looks)
    out["interference"] = ("the arms share one cache: pages warmed for one arm's sessions can also serve the "
                           "other's, which pulls the difference toward zero; compare warming on vs off for everyone")
    return result, arms, out


def _arm_stats(trace: PreparedTrace, experiment: Experiment, result: ReplayResult,
               costs: _ArmCosts) -> tuple[dict[str, ArmStats], dict[str, Any]]:
    sessions = trace.events.sessions
    arm_of: dict[str, str | None] = {}
    arms = {a.name: ArmStats() for a in experiment.arms}
    per_session: dict[str, list[float]] = {}  # session -> [requests, hits, origin requests, origin bytes, ms]
    outcomes = np.asarray(result.outcomes, dtype=np.int8)
    order = np.argsort(np.asarray(result.times), kind="stable")
    series: dict[str, Any] = {"arm": [], "hit": [], "session": []}
    for k in order.tolist():
        idx = result.indices[k]
        sid = sessions[idx]
        if sid not in arm_of:
            chosen = assign(experiment, sid)
            arm_of[sid] = chosen.name if chosen is not None else None
        name = arm_of[sid]
        if name is None:
            continue
        outcome = int(outcomes[k])
        hit = outcome in HIT_CODES
        arms[name].record_request(hit, result.latencies[k] * 1000.0)
        row = per_session.setdefault(sid, [0.0, 0.0, 0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += hit
        row[4] += result.latencies[k] * 1000.0
        if outcome == ORIGIN_CODE:
            row[2] += 1
            row[3] += result.sizes[k]
        series["arm"].append(name)
        series["hit"].append(hit)
        series["session"].append(sid)
    for sid, (requests, hits, origin_requests, origin_bytes, latency_ms) in per_session.items():
        name = arm_of[sid]
        assert name is not None
        stats = arms[name]
        stats.sessions += 1
        preload_requests, preload_bytes = costs.loads.get(sid, (0, 0))
        stats.record_session(origin_requests + preload_requests, origin_bytes + preload_bytes, requests, hits,
                             latency_ms)
        used = min(costs.uses.get(sid, 0), preload_requests)
        stats.preloads.trials += preload_requests
        stats.preloads.successes += used
        hr_hits, hr_scored = costs.hr5.get(sid, (0, 0))
        stats.accuracy.successes += hr_hits
        stats.accuracy.trials += hr_scored
        if preload_requests:  # the per-session sums behind the clustered tests of preload use and HR@5
            stats.session_preloads.add(preload_requests, used)
        if hr_scored:
            stats.session_accuracy.add(hr_scored, hr_hits)
    return arms, series


def _clustered(hit: np.ndarray[Any, Any], session: np.ndarray[Any, Any], n_sessions: int) -> Clustered:
    trials = np.bincount(session, minlength=n_sessions).astype(np.float64)
    hits = np.bincount(session, weights=hit, minlength=n_sessions)
    seen = trials > 0
    trials, hits = trials[seen], hits[seen]
    return Clustered(float(seen.sum()), float(trials.sum()), float(hits.sum()), float((trials * trials).sum()),
                     float((hits * hits).sum()), float((trials * hits).sum()))


def _looks(experiment: Experiment, series: dict[str, Any], looks: int) -> list[dict[str, Any]]:
    """The primary comparison (hit ratio per session, delta method; control vs the first treatment) read at
    ``looks`` evenly spaced points of the measured requests, each time on everything seen so far: once with
    the fixed-horizon test (what a naive dashboard shows) and once always-valid (the running mSPRT); and,
    for comparison, the p-value of a test that wrongly treats requests as independent."""
    if len(experiment.arms) < 2 or not series["arm"]:
        return []
    control, treatment = experiment.arms[0].name, experiment.arms[1].name
    arm = np.asarray(series["arm"])
    hit = np.asarray(series["hit"], dtype=np.float64)
    names: dict[str, int] = {}
    session = np.asarray([names.setdefault(s, len(names)) for s in series["session"]], dtype=np.int64)
    n = len(hit)
    tracker = SequentialTracker(experiment.mde, experiment.alpha)
    out = []
    for look in range(1, looks + 1):
        end = max(1, n * look // looks)
        part = {name: _clustered(hit[:end][mask], session[:end][mask], len(names))
                for name in (control, treatment) for mask in [arm[:end] == name]}
        a, b = part[control].ratio_variance(), part[treatment].ratio_variance()
        row: dict[str, Any] = {"requests": end, "sessions": {k: int(v.m) for k, v in part.items()}}
        if a is None or b is None or a[1] + b[1] == 0:
            row["status"] = "insufficient data"
        else:
            cmp = ratio_difference(a[0], a[1], b[0], b[1], experiment.alpha)
            seq = tracker.update(cmp.diff, cmp.se)
            naive = two_proportions(part[control].x, part[control].n, part[treatment].x, part[treatment].n)
            row.update(diff=cmp.diff, fixedPValue=cmp.p_value, alwaysValidPValue=seq.p_value,
                       significant=seq.p_value < experiment.alpha,
                       requestLevelPValue=naive.p_value if naive is not None else None)
        out.append(row)
    return out
