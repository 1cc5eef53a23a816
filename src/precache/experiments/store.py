"""Experiment definitions in Redis, so every replica assigns and reads out the same way.

One JSON document per experiment under a hash-tagged key (Redis Cluster safe: every key of a store shares
one slot, so its transactions work there too); ``create`` refuses an id already used or a second running
experiment of a kind (one transaction), ``stop`` flips the status and frees the kind, and weights or arms
of an existing experiment can never change: that would make the running readout meaningless (start a new
experiment instead).
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.exceptions import WatchError

from precache.experiments.model import Experiment, ExperimentConflict, ExperimentError, ExperimentNotFound

PREFIX = "{precache:experiments}"


class RedisExperimentStore:
    def __init__(self, redis: Any, prefix: str = PREFIX) -> None:
        self.redis = redis  # a redis.asyncio client
        self.prefix = prefix
        self.index = f"{prefix}:ids"

    def _key(self, experiment_id: str) -> str:
        return f"{self.prefix}:def:{experiment_id}"

    def _kind_key(self, kind: str) -> str:
        return f"{self.prefix}:running:{kind}"

    async def create(self, experiment: Experiment) -> Experiment:
        """Store a new experiment. Refused: an id already used, or a second running experiment of the same
        kind (two warming experiments would fight over the same sessions; stop the first one). Atomic: one
        transaction (WATCH on the definition and on the kind's "running" key) writes the definition and
        claims the kind, so of two racing creates one wins and the other is refused."""
        experiment.validate()
        if not experiment.created:
            experiment = Experiment(**{**_fields(experiment), "created": time.time()})
        for _ in range(5):
            try:
                return await self._create_once(experiment)
            except WatchError:
                continue  # something changed between our reads and the write: look again
        raise ExperimentConflict(f"experiments of kind {experiment.kind} kept changing: try again")

    async def _create_once(self, experiment: Experiment) -> Experiment:
        definition, kind_key = self._key(experiment.id), self._kind_key(experiment.kind)
        running = experiment.status == "running"
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(definition, kind_key)
            # reads go through the client: WATCH catches any change made by anyone until EXEC, and a
            # cluster pipeline (unlike a single-server one) queues commands after WATCH instead of running them
            if await self.redis.exists(definition):
                raise ExperimentConflict(
                    f"experiment {experiment.id!r} exists: definitions are immutable, use a new id")
            if running:
                holder = await self.redis.get(kind_key)
                current = await self.get(_text(holder)) if holder is not None else None
                clash = [current.id] if current is not None and current.status == "running" else [
                    e.id for e in await self.list() if e.kind == experiment.kind and e.status == "running"]
                if clash:
                    raise ExperimentConflict(
                        f"experiment {clash[0]!r} of kind {experiment.kind} is running: stop it first")
            pipe.multi()
            pipe.set(definition, json.dumps(experiment.as_dict()))
            if running:
                pipe.set(kind_key, experiment.id)
            pipe.sadd(self.index, experiment.id)
            await pipe.execute()
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
        kind_key = self._kind_key(current.kind)
        for _ in range(5):
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(kind_key)
                    holder = await self.redis.get(kind_key)
                    pipe.multi()
                    pipe.set(self._key(experiment_id), json.dumps(stopped.as_dict()), xx=True)
                    if holder is not None and _text(holder) == experiment_id:
                        pipe.delete(kind_key)  # the kind is free for a new experiment
                    await pipe.execute()
                return stopped
            except WatchError:
                continue
        raise ExperimentConflict(f"experiment {experiment_id!r}: kind {current.kind} kept changing: try again")

    async def change_weights(self, experiment_id: str, weights: dict[str, float]) -> None:
        """Always refused: a weight change mid-run biases every metric that drifts over time."""
        raise ExperimentConflict(
            f"experiment {experiment_id!r} is running: weights cannot change mid-run; stop it and start a new one")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(experiment: Experiment) -> dict[str, Any]:
    return {name: getattr(experiment, name) for name in (
        "id", "kind", "arms", "holdout", "seed", "status", "created", "alpha", "power", "mde", "description")}
