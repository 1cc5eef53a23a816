"""Training jobs started over HTTP: one at a time across every replica, recorded in Redis, run out of process.

``POST /api/ml/train`` takes a Redis lock (``SET NX PX``) naming the job; a second request while it is held
gets ``409`` with the running job's id. The job record (``{prefix}train:{jobs}:job:<id>``, JSON, kept
``PRECACHE_TRAINING_JOB_RETENTION_SECONDS``) is what ``GET /api/ml/train/{id}`` reads on any replica. The
job runs in its own process (``python -m precache.serve.trainjob <id>``), which runs the training pipeline
(itself training in a worker process with a timeout), updates the record's stage as it goes, and releases
the lock at the end. The keys share the ``{jobs}`` hash tag, so they live in one Redis Cluster slot.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

LOCK_MARGIN_SECONDS = 120.0  # the lock outlives the pipeline's own timeout by this much, then frees itself
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lock_key(prefix: str) -> str:
    return f"{prefix}train:{{jobs}}:lock"


def job_key(prefix: str, job_id: str) -> str:
    return f"{prefix}train:{{jobs}}:job:{job_id}"


def new_job(request: dict[str, Any]) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"jobId": uuid.uuid4().hex, "status": "queued", "stage": "queued", "created": now, "updated": now,
            "request": request, "outcomes": [], "error": None}


class JobStore:
    """Async access for the service (the job process uses :class:`SyncJobStore`)."""

    def __init__(self, redis: Any, prefix: str, retention: float) -> None:
        self.redis, self.prefix, self.retention_ms = redis, prefix, int(retention * 1000)

    async def claim(self, job: dict[str, Any], lock_seconds: float) -> str | None:
        """Record ``job`` and take the lock; returns ``None``, or the id of the job already running."""
        ttl = int((lock_seconds + LOCK_MARGIN_SECONDS) * 1000)
        if await self.redis.set(lock_key(self.prefix), job["jobId"], nx=True, px=ttl):
            await self.save(job)
            return None
        running = await self.redis.get(lock_key(self.prefix))
        return (running.decode() if isinstance(running, bytes) else str(running)) if running else "unknown"

    async def save(self, job: dict[str, Any]) -> None:
        await self.redis.set(job_key(self.prefix, job["jobId"]), json.dumps(job), px=self.retention_ms)

    async def get(self, job_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(job_key(self.prefix, job_id))
        if raw is None:
            return None
        data = json.loads(raw)
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
        job.update(changes, updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.redis.set(job_key(self.prefix, job["jobId"]), json.dumps(job), px=self.retention_ms)

    def release(self, job_id: str) -> None:
        self.redis.eval(_RELEASE, 1, lock_key(self.prefix), job_id)
