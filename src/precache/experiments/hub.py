"""What one process holds for experiments: the shared definitions, its arms, its recorder, the readouts.

Why a hub: the service's routes, its metrics summary, the dashboard and an embedded stack all need the
same few things, kept fresh from Redis off the request path. :meth:`ExperimentHub.refresh` (every
``refresh_seconds`` from :meth:`run`, and right after a change made through this process) reloads the
definitions into :attr:`params` (a :class:`precache.types.SessionParameters` for the warmer), flushes
this process's per-arm statistics, and recomputes a compact readout of every experiment that
:meth:`section` returns without I/O (the monitor adds it to each snapshot as ``experiments``).

In an application that embeds the stack::

    hub = ExperimentHub(redis_client)        # or stream="precache:events" when the caches stream their events
    await hub.refresh()
    stack = build_stack(session_params=hub.params, preload_observer=hub, replica_arm=hub.replica_arm())
    stack.cache.subscribe(hub.handle_event)  # this replica's accesses, per arm
    hub.start()

The warmer follows each session's arm and reports its preloads here; ``handle_event`` records this
replica's cache accesses for its replica-scoped arm (and for session-scoped experiments when the hub reads
no stream, so nothing is counted twice); :meth:`scored` records online HR@5 per arm (the service's monitor
calls it for every scored prediction).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from precache.defaults import SESSION_GAP_SECONDS
from precache.experiments.assignment import assign
from precache.experiments.consume import ArmAccounting, StreamArmRecorder
from precache.experiments.model import Experiment, ExperimentNotFound
from precache.experiments.params import ExperimentParameters
from precache.experiments.readout import PRIMARY, readout
from precache.experiments.recorder import ExperimentRecorder
from precache.experiments.store import PREFIX, RedisExperimentStore
from precache.monitoring.background import STOP_SECONDS, bounded, cancel_task, raise_if_cancelling
from precache.types import ReplicaArm

log = logging.getLogger("precache.experiments")
MAX_SHOWN = 20


async def experiment_readout(store: RedisExperimentStore, recorder: ExperimentRecorder,
                             experiment_id: str) -> dict[str, Any]:
    """The full readout of one experiment, summed over every process's recorded statistics."""
    experiment = await store.get(experiment_id)
    if experiment is None:
        raise ExperimentNotFound(f"no experiment {experiment_id!r}")
    out = readout(experiment, await recorder.collect(experiment_id))
    out["definition"] = experiment.as_dict()
    return out


def compact(full: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's row of a readout: per treatment arm, the primary metric and the verdict."""
    arms = []
    for name, arm in full["arms"].items():
        primary = arm["metrics"][PRIMARY]
        arms.append({
            "arm": name, "control": primary.get("control"), "treatment": primary.get("treatment"),
            "diff": primary.get("fixedHorizon", {}).get("diff"), "pValue": primary.get("sequential", {}).get("pValue"),
            "verdict": arm["verdict"],
        })
    return {
        "id": full["experiment"], "kind": full["kind"], "scope": full["scope"], "status": full["status"],
        "control": full["control"], "assignments": full["assignments"],
        "sampleRatioMismatch": bool(full["sampleRatio"].get("mismatch")), "arms": arms,
    }


class ExperimentHub:
    """``stream``: also record per-arm statistics from that access-event stream (the service does)."""

    def __init__(self, redis: Any, prefix: str = PREFIX, replica_id: str | None = None,
                 refresh_seconds: float = 5.0, stream: str | None = None, session_gap: float = SESSION_GAP_SECONDS,
                 poll_seconds: float = 0.5) -> None:
        self.store = RedisExperimentStore(redis, prefix)
        self.recorder = ExperimentRecorder(redis, replica_id=replica_id, prefix=prefix)
        self.consumer = (StreamArmRecorder(redis, stream, prefix, self.recorder.replica_id, session_gap)
                         if stream else None)
        self.local = ArmAccounting(self.recorder, session_gap,
                                   scopes=("replica",) if self.consumer is not None else ("replica", "session"))
        self.params = ExperimentParameters()
        self.refresh_seconds = refresh_seconds
        self.poll_seconds = poll_seconds
        self.errors = 0
        self._experiments: list[Experiment] = []
        self._section: dict[str, Any] = {"at": 0.0, "experiments": []}
        self._task: asyncio.Task[None] | None = None

    def use(self, experiments: list[Experiment]) -> None:
        """Take these definitions as the current ones (``refresh`` calls it with what Redis holds)."""
        self._experiments = list(experiments)
        self.params.set(experiments)

    def replica_arm(self) -> ReplicaArm | None:
        """This replica's arm of the running replica-scoped experiments (call after :meth:`refresh`)."""
        return self.params.for_replica(self.recorder.replica_id)

    def _arms(self, session: str) -> list[tuple[str, str]]:
        """The session's arms, without counting an assignment (whoever records its accesses counts it once)."""
        out = []
        for experiment in self.params.by_kind.values():
            arm = assign(experiment, session if experiment.scope == "session" else self.recorder.replica_id)
            if arm is not None:
                out.append((experiment.id, arm.name))
        return out

    # -- what this process observes --------------------------------------------------------------------
    def handle_event(self, event: Any) -> None:
        """A ``cache.subscribe`` handler: one of this replica's cache accesses (an ``AccessEvent``)."""
        self.local.record(event.session_id or "", event.tier, event.key, event.context, event.latency, event.size,
                          event.time, self.local.applicable(self._experiments), time.time())

    def scored(self, session: str, hit5: bool) -> None:
        """A prediction served to ``session`` was scored against its next page: HR@5 per arm."""
        arms = self._arms(session)
        for experiment_id, arm in arms:
            self.recorder.stats(experiment_id, arm).accuracy.add(hit5)
        self.local.outcomes.add(session, arms, "accuracy", 1, float(hit5), time.time())

    def loaded(self, session: str, key: str, size: int) -> None:
        """PreloadObserver: a preload for ``session`` was loaded (its arm's preload efficiency counts it)."""
        arms = self._arms(session)
        for experiment_id, arm in arms:
            self.recorder.stats(experiment_id, arm).preloads.trials += 1
        self.local.outcomes.add(session, arms, "preloads", 1, 0, time.time())

    def used(self, session: str, key: str) -> None:
        """PreloadObserver: a preload for ``session`` served a user request."""
        arms = self._arms(session)
        for experiment_id, arm in arms:
            self.recorder.stats(experiment_id, arm).preloads.successes += 1
        self.local.outcomes.add(session, arms, "preloads", 0, 1, time.time())

    def section(self) -> dict[str, Any]:
        """The latest compact readouts (no I/O): ``{at, experiments: [...]}``, newest experiments first."""
        return self._section

    async def readout(self, experiment_id: str) -> dict[str, Any]:
        await self.local.flush()
        if self.consumer is not None:
            await self.consumer.flush()
        return await experiment_readout(self.store, self.recorder, experiment_id)

    async def refresh(self) -> None:
        experiments = await self.store.list()
        self.use(experiments)
        self.local.close_idle(time.time())
        await self.local.flush()
        if self.consumer is not None:
            await self.consumer.flush()
        shown: list[Experiment] = sorted(experiments, key=lambda e: (e.status != "running", -e.created))[:MAX_SHOWN]
        rows = [compact(readout(e, await self.recorder.collect(e.id))) for e in shown]
        self._section = {"at": time.time(), "experiments": rows}

    async def run(self) -> None:
        """Read the stream and refresh, forever (cancel to stop); a failure (Redis away) keeps the last good
        state and is retried on the next round."""
        next_refresh = 0.0
        while True:
            try:
                if time.monotonic() >= next_refresh:
                    await self.refresh()
                    next_refresh = time.monotonic() + self.refresh_seconds
                if self.consumer is not None:
                    while await self.consumer.step(self._experiments) >= self.consumer.batch:
                        pass
            except Exception as exc:
                raise_if_cancelling(exc)  # a cancel turned into a Redis TimeoutError must still stop the loop
                self.errors += 1
                log.warning("experiments: refresh failed (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self, within: float = STOP_SECONDS) -> None:
        """Stop the loop and flush what this process saw, each within ``within`` seconds (Redis may be away:
        shutdown must not wait for it)."""
        task, self._task = self._task, None
        await cancel_task(task, within)
        await bounded(self._final_flush(), within, "experiments: final flush")

    async def _final_flush(self) -> None:
        await self.local.flush()  # what this process saw since the last refresh
        if self.consumer is not None:
            await self.consumer.flush()
