"""Training jobs started over HTTP: one at a time across every replica, recorded in Redis, run out of process.

``POST /api/ml/train`` takes a Redis lock (``SET NX PX``) naming the job; a second request while it is held
gets ``409`` with the running job's id. The job record (``{prefix}train:{jobs}:job:<id>``, JSON, kept
``PRECACHE_TRAINING_JOB_RETENTION_SECONDS``) is what ``GET /api/ml/train/{id}`` reads on any replica. The
job runs in its own process (``python -m precache.serve.trainjob <id>``), which runs the training pipeline
(itself training in a worker process with a timeout), updates the record's stage as it goes, and releases
the lock at the end. The keys share the ``{jobs}`` hash tag, so they live in one Redis Cluster slot.

A job process that dies without recording an outcome (killed, out of memory, its host gone) must not leave
its record "running" forever nor hold the lock until the lock's TTL. Two ways it is caught: the replica that
started the process reaps it, and an exit without an outcome marks the record ``failed`` at once; and the
process keeps an *alive* key (``...:alive:<id>``, refreshed every ``HEARTBEAT_SECONDS``, expiring after
``ALIVE_SECONDS``), so any replica reading a queued or running record whose alive key has expired (the
process is gone, with or without its replica) marks it failed and frees the lock. Replicas check the lock's
job at startup, on ``GET /api/ml/train/{id}`` and when a ``POST`` finds the lock taken.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

LOCK_MARGIN_SECONDS = 120.0  # the lock outlives the pipeline's own timeout by this much, then frees itself
HEARTBEAT_SECONDS = 5.0  # how often a job process refreshes its alive key
ALIVE_SECONDS = 30.0  # an alive key not refreshed for this long: the process is gone
START_GRACE_SECONDS = 120.0  # the alive key set at claim time: the process has this long to start beating
ACTIVE = ("queued", "running")
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Mark a record lost only if it is still the one read and its alive key is still missing. The job process
# writes its outcome *before* it deletes its alive key, so a reader that finds the key gone a moment after
# the job finished sees a changed record here and must not overwrite the outcome with "failed".
_MARK_LOST = """
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def lock_key(prefix: str) -> str:
    return f"{prefix}train:{{jobs}}:lock"


def job_key(prefix: str, job_id: str) -> str:
    return f"{prefix}train:{{jobs}}:job:{job_id}"


def alive_key(prefix: str, job_id: str) -> str:
    return f"{prefix}train:{{jobs}}:alive:{job_id}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def lost(job: dict[str, Any], reason: str) -> dict[str, Any]:
    """``job`` marked failed because its process is gone (the registry is unchanged by it)."""
    return {**job, "status": "failed", "stage": "failed", "updated": _now(),
            "error": f"the training process is gone: {reason}"[:1000]}


def new_job(request: dict[str, Any]) -> dict[str, Any]:
    now = _now()
    return {"jobId": uuid.uuid4().hex, "status": "queued", "stage": "queued", "created": now, "updated": now,
            "request": request, "outcomes": [], "error": None}


class JobStore:
    """Async access for the service (the job process uses :class:`SyncJobStore`)."""

    def __init__(self, redis: Any, prefix: str, retention: float) -> None:
        self.redis, self.prefix, self.retention_ms = redis, prefix, int(retention * 1000)

    async def claim(self, job: dict[str, Any], lock_seconds: float) -> str | None:
        """Record ``job`` and take the lock; returns ``None``, or the id of the job already running."""
        ttl = int((lock_seconds + LOCK_MARGIN_SECONDS) * 1000)
        for _ in range(2):  # a second try when the holder turned out to be a dead job
            if await self.redis.set(lock_key(self.prefix), job["jobId"], nx=True, px=ttl):
                await self.redis.set(alive_key(self.prefix, job["jobId"]), "starting",
                                     px=int(START_GRACE_SECONDS * 1000))
                await self.save(job)
                return None
            running = await self.holder()
            if running is None:
                continue  # released meanwhile
            holder = await self.get(running)  # marks it failed (and frees the lock) when its process is gone
            if holder is None or holder["status"] in ACTIVE:
                return running  # running (or claimed a moment ago and not yet recorded)
            await self.release(running)  # its job is over but the lock stayed (killed right before releasing)
        return await self.holder() or "unknown"

    async def holder(self) -> str | None:
        running = await self.redis.get(lock_key(self.prefix))
        return (running.decode() if isinstance(running, bytes) else str(running)) if running else None

    async def check_holder(self) -> None:
        """At startup: the job holding the lock, if any, is marked failed when its process is gone."""
        running = await self.holder()
        if running is not None:
            await self.get(running)

    async def mark_lost(self, job: dict[str, Any], reason: str) -> dict[str, Any]:
        failed = lost(job, reason)
        await self.save(failed)
        await self.release(job["jobId"])
        return failed

    async def save(self, job: dict[str, Any]) -> None:
        await self.redis.set(job_key(self.prefix, job["jobId"]), json.dumps(job), px=self.retention_ms)

    async def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's record; a queued or running one whose process stopped beating is marked failed first."""
        raw = await self.redis.get(job_key(self.prefix, job_id))
        if raw is None:
            return None
        data = json.loads(raw)
        if not isinstance(data, dict):
            return None
        if data.get("status") in ACTIVE and not await self.redis.exists(alive_key(self.prefix, job_id)):
            failed = lost(data, f"no heartbeat for {ALIVE_SECONDS:g} s (killed, or its host is down)")
            if await self.redis.eval(_MARK_LOST, 2, job_key(self.prefix, job_id), alive_key(self.prefix, job_id),
                                     raw, json.dumps(failed), self.retention_ms):
                await self.release(job_id)
                return failed
            raw = await self.redis.get(job_key(self.prefix, job_id))  # it finished (or beat) meanwhile
            data = json.loads(raw) if raw is not None else None
        return data if isinstance(data, dict) else None

    async def release(self, job_id: str) -> None:
        await self.redis.eval(_RELEASE, 1, lock_key(self.prefix), job_id)


class SyncJobStore:
    """The job process's view of the same keys (plain redis-py; no event loop needed there)."""

    def __init__(self, redis: Any, prefix: str, retention: float) -> None:
        self.redis, self.prefix, self.retention_ms = redis, prefix, int(retention * 1000)

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(job_key(self.prefix, job_id))
        data = json.loads(raw) if raw is not None else None
        return data if isinstance(data, dict) else None

    def update(self, job: dict[str, Any], **changes: Any) -> None:
        job.update(changes, updated=_now())
        self.redis.set(job_key(self.prefix, job["jobId"]), json.dumps(job), px=self.retention_ms)

    def beat(self, job_id: str) -> None:
        """This process is alive (called every ``HEARTBEAT_SECONDS`` from a thread of the job process)."""
        self.redis.set(alive_key(self.prefix, job_id), "alive", px=int(ALIVE_SECONDS * 1000))

    def stop_beating(self, job_id: str) -> None:
        self.redis.delete(alive_key(self.prefix, job_id))

    def release(self, job_id: str) -> None:
        self.redis.eval(_RELEASE, 1, lock_key(self.prefix), job_id)
