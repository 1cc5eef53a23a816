"""Experiment definitions in Redis, so every replica assigns and reads out the same way.

One JSON document per experiment under a hash-tagged key (Redis Cluster safe); ``create`` refuses an id
already used (``SET NX``), ``stop`` flips the status, and weights or arms of an existing experiment can
never change: that would make the running readout meaningless (start a new experiment instead).
"""

from __future__ import annotations

import json
import time
from typing import Any

from precache.experiments.model import Experiment, ExperimentConflict, ExperimentError, ExperimentNotFound

PREFIX = "{precache:experiments}"


class RedisExperimentStore:
    def __init__(self, redis: Any, prefix: str = PREFIX) -> None:
        self.redis = redis  # a redis.asyncio client
        self.prefix = prefix
        self.index = f"{prefix}:ids"

    def _key(self, experiment_id: str) -> str:
        return f"{self.prefix}:def:{experiment_id}"

    async def create(self, experiment: Experiment) -> Experiment:
        """Store a new experiment. Refused: an id already used, or a second running experiment of the same
        kind (two warming experiments would fight over the same sessions; stop the first one). The kind
        check and the write are two commands: two creates racing can both pass it, and then the oldest
        applies (:func:`precache.experiments.params.running_by_kind`)."""
        experiment.validate()
        clash = [e.id for e in await self.list()
                 if e.kind == experiment.kind and e.status == "running" and e.id != experiment.id]
        if clash and experiment.status == "running":
            raise ExperimentConflict(f"experiment {clash[0]!r} of kind {experiment.kind} is running: stop it first")
        if not experiment.created:
            experiment = Experiment(**{**_fields(experiment), "created": time.time()})
        stored = await self.redis.set(self._key(experiment.id), json.dumps(experiment.as_dict()), nx=True)
        if not stored:
            raise ExperimentConflict(f"experiment {experiment.id!r} exists: definitions are immutable, use a new id")
        await self.redis.sadd(self.index, experiment.id)
        return experiment

    async def get(self, experiment_id: str) -> Experiment | None:
        raw = await self.redis.get(self._key(experiment_id))
        if raw is None:
            return None
        try:
            return Experiment.from_dict(json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise ExperimentError(f"stored experiment {experiment_id!r} is malformed: {exc}") from exc

    async def list(self) -> list[Experiment]:
        ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in await self.redis.smembers(self.index))
        found = [await self.get(i) for i in ids]
        return [e for e in found if e is not None]

    async def stop(self, experiment_id: str) -> Experiment:
        current = await self.get(experiment_id)
        if current is None:
            raise ExperimentNotFound(f"no experiment {experiment_id!r}")
        stopped = Experiment(**{**_fields(current), "status": "stopped"})
        await self.redis.set(self._key(experiment_id), json.dumps(stopped.as_dict()), xx=True)
        return stopped

    async def change_weights(self, experiment_id: str, weights: dict[str, float]) -> None:
        """Always refused: a weight change mid-run biases every metric that drifts over time."""
        raise ExperimentConflict(
            f"experiment {experiment_id!r} is running: weights cannot change mid-run; stop it and start a new one")


def _fields(experiment: Experiment) -> dict[str, Any]:
    return {name: getattr(experiment, name) for name in (
        "id", "kind", "arms", "holdout", "seed", "status", "created", "alpha", "power", "mde", "description")}
