"""``FailoverHistories``: Redis when it answers, this process's memory when it does not.

Without Redis, or while it fails, histories go to a bounded in-process store; the failures are counted and
``where`` says which store answers (the service's ``/readyz`` shows it). After a failure the store stays on
memory for ``retry_after`` seconds, so a down Redis costs no timeout per request.
"""

from __future__ import annotations

import logging
import time

from precache.history.memory import MemoryHistories
from precache.history.redis import RedisHistories

log = logging.getLogger("precache.history")


class FailoverHistories:
    def __init__(self, redis: RedisHistories | None, memory: MemoryHistories) -> None:
        self.redis, self.memory = redis, memory
        self.failures = 0
        self.last_failure: str | None = None
        self.last_failure_at = -1e9
        self.retry_after = 5.0

    @property
    def where(self) -> str:
        if self.redis is None:
            return "memory (no Redis: this replica only, bounded)"
        if self.last_failure is not None and time.monotonic() - self.last_failure_at < 30.0:
            return f"redis, with memory fallback in use (last Redis error: {self.last_failure})"
        return "redis"

    def _use_redis(self) -> bool:
        return self.redis is not None and time.monotonic() - self.last_failure_at >= self.retry_after

    async def append(self, session_id: str, pages: list[str]) -> list[str]:
        if self.redis is not None and self._use_redis():
            try:
                return await self.redis.append(session_id, pages)
            except Exception as exc:  # Redis down or slow: keep answering from this replica's memory
                self._failed(exc)
        return await self.memory.append(session_id, pages)

    async def get(self, session_id: str) -> list[str]:
        if self.redis is not None and self._use_redis():
            try:
                return await self.redis.get(session_id)
            except Exception as exc:
                self._failed(exc)
        return await self.memory.get(session_id)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_failure = f"{type(exc).__name__}: {exc}"[:200]
        self.last_failure_at = time.monotonic()
        log.warning("session history in memory: Redis failed (%s)", self.last_failure)
