"""``RedisHistories``: one capped, expiring Redis list per session, shared by every process and replica.

Keys are ``{prefix}hist:{<sha256 of the session id>}``: the braces are a Redis Cluster hash tag (one slot
per session, room for more per-session keys in the same slot), and hashing keeps client strings out of key
names. Values are plain strings (never unpickled).
"""

from __future__ import annotations

import hashlib
from typing import Any


def redis_tag(text: str) -> str:
    """What goes inside a key's ``{hash tag}`` for a session id, a page or a cache key: a sha256 prefix, so
    any string makes a short, fixed-size, brace-free tag (and the key names reveal nothing)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class RedisHistories:
    """Append + trim + expire + read in one round trip. ``client``: a ``redis.asyncio`` client (or cluster
    client); typed loosely so this module does not import redis."""

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
