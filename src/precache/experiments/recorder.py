"""Per-replica recording of what each arm saw, shared through Redis for the readout.

Why per-replica documents and not counters in Redis: latency and per-session origin costs are compared
with Welch's test, which needs means and variances; moments merge exactly across replicas (Chan's
formula) but cannot be built from independent ``INCRBYFLOAT`` calls. Each replica keeps its arms'
:class:`~precache.experiments.arms.ArmStats` in memory and writes them as one JSON document per
(experiment, replica); the readout sums every replica's document. Documents do not expire while the
experiment exists: a replica that stopped still counts.

Assignments are counted once per session (for the sample-ratio check) using a bounded set of recently
seen sessions per experiment; a session seen again after falling out of that set is counted again,
which the bound (default 200,000 sessions) makes rare for session lengths under the session gap.
"""

from __future__ import annotations

import json
import os
import socket
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from precache.experiments.arms import ArmStats
from precache.experiments.assignment import assign
from precache.experiments.model import Arm, Experiment
from precache.experiments.store import PREFIX


class ExperimentRecorder:
    def __init__(self, redis: Any | None = None, replica_id: str | None = None, prefix: str = PREFIX,
                 max_seen: int = 200_000) -> None:
        self.redis = redis
        self.replica_id = replica_id or f"{socket.gethostname()}-{os.getpid()}"
        self.prefix = prefix
        self.max_seen = max_seen
        self.arms: dict[str, dict[str, ArmStats]] = {}
        # what :meth:`collect` reads of this process: its statistics plus the sessions still open (set by the
        # accounting that feeds it); None: :attr:`arms` as they are
        self.view: Callable[[str], dict[str, ArmStats]] | None = None
        self._seen: dict[str, OrderedDict[str, str]] = {}

    def arm_for(self, experiment: Experiment, session_id: str, replica_unit: str | None = None) -> Arm | None:
        """The session's arm (None when held out), counting the assignment the first time it is seen."""
        unit = session_id if experiment.scope == "session" else (replica_unit or self.replica_id)
        arm = assign(experiment, unit)
        if arm is None:
            return None
        seen = self._seen.setdefault(experiment.id, OrderedDict())
        if session_id not in seen:
            seen[session_id] = arm.name
            self.stats(experiment.id, arm.name).sessions += 1
            if len(seen) > self.max_seen:
                seen.popitem(last=False)
        return arm

    def stats(self, experiment_id: str, arm: str) -> ArmStats:
        per_arm = self.arms.setdefault(experiment_id, {})
        found = per_arm.get(arm)
        if found is None:
            found = per_arm[arm] = ArmStats()
        return found

    def _key(self, experiment_id: str, replica: str) -> str:
        return f"{self.prefix}:stats:{experiment_id}:{replica}"

    async def flush(self) -> None:
        """Write this replica's documents (one per experiment)."""
        for experiment_id, per_arm in self.arms.items():
            await self.write(experiment_id, per_arm)

    async def write(self, experiment_id: str, per_arm: dict[str, ArmStats]) -> None:
        """Write ``per_arm`` as this replica's document for ``experiment_id``."""
        if self.redis is None:
            return
        doc = {arm: stats.as_dict() for arm, stats in per_arm.items()}
        await self.redis.hset(f"{self.prefix}:stats:{experiment_id}", self.replica_id, json.dumps(doc))

    async def adopt(self) -> None:
        """Load this replica id's documents back from Redis (a process taking over a fixed replica id, such
        as the stream reader's, continues from what its predecessor wrote instead of overwriting it)."""
        if self.redis is None:
            return
        for raw in await self.redis.smembers(f"{self.prefix}:ids"):
            experiment_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            doc = await self.redis.hget(f"{self.prefix}:stats:{experiment_id}", self.replica_id)
            if doc is not None:
                self.arms[experiment_id] = {arm: ArmStats.from_dict(data) for arm, data in json.loads(doc).items()}

    async def collect(self, experiment_id: str) -> dict[str, ArmStats]:
        """Every replica's arms for ``experiment_id``, summed (this replica's unflushed state included)."""
        merged: dict[str, ArmStats] = {}
        docs: dict[str, Any] = {}
        if self.redis is not None:
            raw = await self.redis.hgetall(f"{self.prefix}:stats:{experiment_id}")
            for replica, payload in raw.items():
                name = replica.decode() if isinstance(replica, bytes) else str(replica)
                if name != self.replica_id:
                    docs[name] = json.loads(payload)
        own = self.view(experiment_id) if self.view is not None else self.arms.get(experiment_id, {})
        docs[self.replica_id] = {arm: s.as_dict() for arm, s in own.items()}
        for doc in docs.values():
            for arm, data in doc.items():
                merged.setdefault(arm, ArmStats()).merge(ArmStats.from_dict(data))
        return merged
