"""Workers share their snapshots through Redis, so one scrape covers every ``uvicorn --workers N`` process.

Why: behind one port, a scrape reaches one worker at random. Each worker writes its snapshot (JSON, never
pickle) under its own key with an expiry of a few publish intervals and records its id in a sorted set
scored by the publish time; a scrape reads the live workers' snapshots and sums them
(:func:`~precache.monitoring.snapshot.merge`). A dead worker's snapshot expires, so its counts leave the
sum (counters then go down, which Prometheus' ``rate()`` treats as a reset). All keys share one hash tag
so the commands work on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from typing import Any

from precache.monitoring.background import STOP_SECONDS, cancel_task, raise_if_cancelling
from precache.monitoring.monitor import Monitor
from precache.monitoring.snapshot import Snapshot, merge

PREFIX = "{precache:metrics}"


class RedisSnapshotShare:
    def __init__(
        self, redis: Any, monitor: Monitor, *, worker_id: str | None = None, interval: float = 5.0,
        prefix: str = PREFIX,
    ) -> None:
        self.redis = redis  # a redis.asyncio client
        self.monitor = monitor
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.interval = interval
        self.ttl_ms = int(max(interval * 3, 1.0) * 1000)
        self.workers_key = f"{prefix}:workers"
        self.prefix = prefix
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    def _key(self, worker: str) -> str:
        return f"{self.prefix}:worker:{worker}"

    async def publish(self) -> None:
        payload = json.dumps(self.monitor.snapshot().as_dict(), separators=(",", ":"))
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key(self.worker_id), payload, px=self.ttl_ms)
            pipe.zadd(self.workers_key, {self.worker_id: now})
            pipe.zremrangebyscore(self.workers_key, "-inf", now - self.ttl_ms / 1000.0)
            await pipe.execute()

    async def collect(self) -> tuple[Snapshot, int]:
        """The sum over live workers (this one's fresh snapshot included) and how many were summed."""
        await self.publish()
        since = time.time() - self.ttl_ms / 1000.0
        workers = [w.decode() if isinstance(w, bytes) else str(w)
                   for w in await self.redis.zrangebyscore(self.workers_key, since, "+inf")]
        raw = await self.redis.mget([self._key(w) for w in workers]) if workers else []
        snapshots = []
        for data in raw:
            if data is None:
                continue
            try:
                snapshots.append(Snapshot.from_dict(json.loads(data)))
            except ValueError:
                self.errors += 1  # a malformed entry is skipped, never trusted
        return merge(snapshots), len(snapshots)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.publish()
            except Exception as exc:  # Redis down: the scrape falls back to this process's own snapshot
                raise_if_cancelling(exc)
                self.errors += 1
            await asyncio.sleep(self.interval)

    async def stop(self, within: float = STOP_SECONDS) -> None:
        await cancel_task(self._task, within)
        self._task = None
