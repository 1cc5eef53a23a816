"""Server-side session histories: in Redis (shared by every replica), or a bounded in-process fallback.

Why server-side: a client sends only its current page, and any replica behind a load balancer must answer
any session, so the history lives in Redis -- one list per session, capped at ``max_history`` pages and
expiring ``ttl`` seconds (the session gap) after its last page. Keys are
``{prefix}hist:{<sha256 of the session id>}``: the braces are a Redis Cluster hash tag (one slot per
session, room for more per-session keys in the same slot), and hashing keeps client strings out of key
names. Without Redis, or while it fails, histories go to a bounded LRU in this process; ``/readyz`` says so.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict, deque
from typing import Any, Protocol

log = logging.getLogger("precache.serve")


class HistoryStore(Protocol):
    async def append(self, session_id: str, pages: list[str]) -> list[str]:
        """Add page views; returns the session's history (oldest first, capped)."""
        ...

    async def get(self, session_id: str) -> list[str]: ...


def redis_tag(text: str) -> str:
    """What goes inside a key's ``{hash tag}`` for a session id, a page or a cache key: a sha256 prefix, so
    any string makes a short, fixed-size, brace-free tag (and the key names reveal nothing)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class MemoryHistories:
    """At most ``max_sessions`` histories (LRU), each expiring ``ttl`` seconds after its last page."""

    def __init__(self, max_sessions: int, max_history: int, ttl: float) -> None:
        self.max_sessions, self.max_history, self.ttl = max_sessions, max_history, ttl
        self._data: OrderedDict[str, tuple[deque[str], float]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._data)

    async def append(self, session_id: str, pages: list[str]) -> list[str]:
        now = time.monotonic()
        entry = self._data.pop(session_id, None)
        history = entry[0] if entry is not None and entry[1] > now else deque(maxlen=self.max_history)
        history.extend(pages)
        self._data[session_id] = (history, now + self.ttl)
        while len(self._data) > self.max_sessions:
            self._data.popitem(last=False)
            self.evicted += 1
        return list(history)

    async def get(self, session_id: str) -> list[str]:
        entry = self._data.get(session_id)
        if entry is None:
            return []
        if entry[1] <= time.monotonic():
            del self._data[session_id]
            return []
        return list(entry[0])


class RedisHistories:
    """One capped, expiring Redis list per session; append + trim + expire + read in one round trip."""

    def __init__(self, client: Any, prefix: str, max_history: int, ttl: float) -> None:
        self.client, self.prefix, self.max_history = client, prefix, max_history
        self.ttl_ms = max(1, int(ttl * 1000))

    def key(self, session_id: str) -> str:
        return f"{self.prefix}hist:{{{redis_tag(session_id)}}}"

    async def append(self, session_id: str, pages: list[str]) -> list[str]:
        key = self.key(session_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, *pages)
        pipe.ltrim(key, -self.max_history, -1)
        pipe.pexpire(key, self.ttl_ms)
        pipe.lrange(key, 0, -1)
        results = await pipe.execute()
        return [_text(v) for v in results[-1]]

    async def get(self, session_id: str) -> list[str]:
        return [_text(v) for v in await self.client.lrange(self.key(session_id), 0, -1)]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class FailoverHistories:
    """Redis when it answers, the in-process store when it does not (counted, and reported by /readyz)."""

    def __init__(self, redis: RedisHistories | None, memory: MemoryHistories) -> None:
        self.redis, self.memory = redis, memory
        self.failures = 0
        self.last_failure: str | None = None
        self.last_failure_at = -1e9
        self.retry_after = 5.0  # after a failure, stay on memory this long (no timeout paid per request)

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
