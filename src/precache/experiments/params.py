"""Running experiments turned into what the warmer and the stack consume, without I/O on their side.

:class:`ExperimentParameters` implements :class:`precache.types.SessionParameters`: it keeps the running
experiments in memory (``refresh()`` reloads them from the store, e.g. every few seconds from a background
task) and answers ``for_session`` by hashing, as :func:`~precache.experiments.assignment.assign` does on
every replica. A session can be in several experiments at once (independent seeds); their changes
combine (warming off wins; a threshold arm sets the threshold; a model arm pins the version). Only one
running experiment per kind applies: the oldest (``create`` on the store refuses a second one).
``for_replica`` gives the :class:`~precache.types.ReplicaArm` of a replica id for the replica-scoped kinds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from precache.experiments.assignment import assign
from precache.experiments.model import Experiment, replica_arm, session_arm
from precache.types import ReplicaArm, SessionArm


def running_by_kind(experiments: Iterable[Experiment]) -> dict[str, Experiment]:
    """The running experiment that applies for each kind (the oldest when, against the rule, two run)."""
    out: dict[str, Experiment] = {}
    for e in sorted((e for e in experiments if e.status == "running"), key=lambda e: (e.created, e.id)):
        out.setdefault(e.kind, e)
    return out


class ExperimentParameters:
    """Per-session and per-replica arms of the running experiments (a ``SessionParameters``)."""

    def __init__(self, experiments: Iterable[Experiment] = ()) -> None:
        self.by_kind: dict[str, Experiment] = {}
        self.set(experiments)

    def set(self, experiments: Iterable[Experiment]) -> None:
        self.by_kind = running_by_kind(experiments)

    async def refresh(self, store: Any) -> None:
        """Reload the definitions from a :class:`~precache.experiments.store.RedisExperimentStore`."""
        self.set(await store.list())

    def session_experiments(self) -> list[Experiment]:
        return [e for e in self.by_kind.values() if e.scope == "session"]

    def for_session(self, session_id: str) -> SessionArm | None:
        warming, threshold, version = True, None, None
        labels: list[tuple[str, str]] = []
        for experiment in self.session_experiments():
            arm = assign(experiment, session_id)
            if arm is None:  # held out of this experiment: its defaults
                continue
            change = session_arm(experiment, arm)
            labels.append((experiment.id, arm.name))
            warming = warming and change.warming
            threshold = change.threshold if change.threshold is not None else threshold
            version = change.model_version if change.model_version is not None else version
        if not labels:
            return None
        return SessionArm(warming, threshold, version, ",".join(e for e, _ in labels), ",".join(a for _, a in labels))

    def for_replica(self, replica_id: str) -> ReplicaArm | None:
        policy = ttl = None
        labels: list[tuple[str, str]] = []
        for experiment in self.by_kind.values():
            if experiment.scope != "replica":
                continue
            arm = assign(experiment, replica_id)
            if arm is None:
                continue
            change = replica_arm(experiment, arm)
            labels.append((experiment.id, arm.name))
            policy = change.cache_policy or policy
            ttl = change.ttl_mode or ttl
        if not labels:
            return None
        return ReplicaArm(policy, ttl, ",".join(e for e, _ in labels), ",".join(a for _, a in labels))
