"""Per-session sums of the outcomes a process observes outside the access stream: scored predictions (HR@5)
and preloads (loaded, then used or not).

Why per session: these outcomes come in bursts from one session (a session whose next page is easy is scored
a hit again and again), so a test on the individual outcomes is too confident; the session is the unit of
randomization. Each open session keeps its trials and successes per metric; when it has been idle for the
session gap (or the table is full) it is folded into its arms' :class:`~precache.experiments.arms.Clustered`
sums, and a flush counts the still-open sessions as they are so far. One caveat, documented: a session served
by several workers is split into one cluster per worker (the split pieces are treated as independent).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from precache.experiments.arms import ArmStats

METRICS = ("accuracy", "preloads")


@dataclass(slots=True)
class _Sums:
    arms: list[tuple[str, str]]
    counts: dict[str, list[float]] = field(default_factory=dict)  # metric -> [trials, successes]
    last_wall: float = 0.0


class SessionOutcomes:
    """``add(session, arms, metric, trials, successes, now)``; folded into ``ArmStats.session_<metric>``."""

    def __init__(self, stats: Callable[[str, str], ArmStats], session_gap: float, max_open: int = 100_000) -> None:
        self.stats = stats  # (experiment, arm) -> the statistics a closed session folds into
        self.session_gap = session_gap
        self.max_open = max_open
        self._open: OrderedDict[str, _Sums] = OrderedDict()

    def clear(self) -> None:
        self._open.clear()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, session: str, arms: list[tuple[str, str]], metric: str, trials: float, successes: float,
            now: float) -> None:
        """Count one outcome of ``session`` (in ``arms``: its (experiment, arm) pairs)."""
        if not session or not arms:
            return
        sums = self._open.get(session)
        if sums is None:
            sums = self._open[session] = _Sums(list(arms))
            if len(self._open) > self.max_open:
                self._fold(self._open.popitem(last=False)[1])
        else:
            self._open.move_to_end(session)
        pair = sums.counts.setdefault(metric, [0.0, 0.0])
        pair[0] += trials
        pair[1] += successes
        sums.last_wall = now

    def close_idle(self, now: float) -> int:
        done = [s for s, sums in self._open.items() if sums.last_wall < now - self.session_gap]
        for session in done:
            self._fold(self._open.pop(session))
        return len(done)

    def _fold(self, sums: _Sums) -> None:
        for experiment_id, arm in sums.arms:
            _fold_one(sums, self.stats(experiment_id, arm))

    def include_open(self, experiment_id: str, docs: dict[str, ArmStats]) -> None:
        """Add the open sessions, as they are so far, to copies of ``experiment_id``'s per-arm statistics."""
        for sums in self._open.values():
            for eid, arm in sums.arms:
                if eid == experiment_id and arm in docs:
                    _fold_one(sums, docs[arm])


def _fold_one(sums: _Sums, target: ArmStats) -> None:
    for metric, (trials, successes) in sums.counts.items():
        if trials > 0:
            target.clustered(metric).add(trials, successes)
