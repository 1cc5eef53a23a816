"""L2 on Redis (single server or Redis Cluster) through ``redis.asyncio`` with hiredis.

Every operation runs under ``asyncio.timeout(op_timeout)`` (default 50 ms) so a slow or paused Redis
costs a request at most that bound; errors propagate to the cache, which counts them, feeds its circuit
breaker and falls back to L1 + loader. Client-side retries are off: retrying is the breaker's job.

Keys live under ``prefix``; tag sets are ``{prefix}tag:<tag>`` (one key each, so every command stays
single-slot in a cluster); leases are ``{prefix}lease:<key>``; invalidations go over the pub/sub channel
``{prefix}invalidate`` (classic PUBLISH is broadcast cluster-wide).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from precache.cache.l2 import MessageHandler

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisTier:
    """Shared L2. Build with a URL (``cluster=True`` for Redis Cluster) or pass a ready client.

    Times are real time (Redis expires keys itself); use it with the default ``SystemClock``.
    """

    name = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | RedisCluster | None = None,
        cluster: bool = False,
        prefix: str = "pc:",
        op_timeout: float = 0.05,
        max_connections: int = 64,
        connect_timeout: float = 0.5,
    ) -> None:
        if op_timeout <= 0:
            raise ValueError(f"op_timeout must be > 0 seconds, got {op_timeout}")
        if (url is None) == (client is None):
            raise ValueError("RedisTier needs exactly one of url= or client=")
        self.prefix = prefix
        self.op_timeout = op_timeout
        self.cluster = cluster or isinstance(client, RedisCluster)
        self._url = url
        self.client: Any
        if client is not None:
            self.client = client
        elif cluster:
            assert url is not None
            self.client = RedisCluster.from_url(
                url, max_connections=max_connections, socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        else:
            assert url is not None
            self.client = Redis.from_url(
                url, max_connections=max_connections + 4, socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0), health_check_interval=0,
            )
        self.channel = f"{prefix}invalidate"
        # redis-py's pools raise MaxConnectionsError when a burst exceeds them; queue instead (the
        # op timeout still bounds the wait), so a burst of distinct keys never trips the breaker.
        self._slots = asyncio.Semaphore(max_connections)
        self._release = self.client.register_script(_RELEASE)

    def k(self, key: str) -> str:
        return self.prefix + key

    # -- values -----------------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        async with asyncio.timeout(self.op_timeout), self._slots:
            raw: bytes | None = await self.client.get(self.prefix + key)
        return raw

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        names = [self.prefix + k for k in keys]
        async with asyncio.timeout(self.op_timeout), self._slots:
            if self.cluster:
                values: list[bytes | None] = await self.client.mget_nonatomic(names)
            else:
                values = await self.client.mget(names)
        return values

    async def set(self, key: str, raw: bytes, px: int | None, tags: Sequence[str] = ()) -> None:
        name = self.prefix + key
        async with asyncio.timeout(self.op_timeout), self._slots:
            if not tags:
                await self.client.set(name, raw, px=px)
                return
            pipe = self.client.pipeline(transaction=False)
            pipe.set(name, raw, px=px)
            for tag in tags:
                tag_key = f"{self.prefix}tag:{tag}"
                pipe.sadd(tag_key, key)
                if px is not None:
                    # keep the tag set alive as long as its longest-lived member
                    pipe.pexpire(tag_key, px, nx=True)
                    pipe.pexpire(tag_key, px, gt=True)
            await pipe.execute()

    async def delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        async with asyncio.timeout(self.op_timeout), self._slots:
            await self.client.delete(*[self.prefix + k for k in keys])

    async def put_raw(self, key: str, raw: bytes) -> None:
        """Store arbitrary bytes (tests: simulate a poisoned value written by someone else)."""
        async with asyncio.timeout(self.op_timeout), self._slots:
            await self.client.set(self.prefix + key, raw)

    # -- tags -------------------------------------------------------------------------------------
    async def tag_members(self, tags: Sequence[str]) -> builtins.set[str]:
        out: builtins.set[str] = builtins.set()
        async with asyncio.timeout(self.op_timeout * 4), self._slots:
            for tag in tags:
                members = await self.client.smembers(f"{self.prefix}tag:{tag}")
                out.update(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        return out

    async def delete_tags(self, tags: Sequence[str]) -> None:
        if tags:
            async with asyncio.timeout(self.op_timeout), self._slots:
                await self.client.delete(*[f"{self.prefix}tag:{t}" for t in tags])

    # -- cross-process lease ----------------------------------------------------------------------
    async def acquire_lease(self, key: str, token: str, px: int) -> bool:
        async with asyncio.timeout(self.op_timeout), self._slots:
            return bool(await self.client.set(f"{self.prefix}lease:{key}", token, nx=True, px=px))

    async def release_lease(self, key: str, token: str) -> None:
        async with asyncio.timeout(self.op_timeout), self._slots:
            await self._release(keys=[f"{self.prefix}lease:{key}"], args=[token])

    # -- invalidation broadcast -------------------------------------------------------------------
    async def publish(self, message: bytes) -> None:
        async with asyncio.timeout(self.op_timeout), self._slots:
            await self.client.publish(self.channel, message)

    def _pubsub_client(self) -> Redis:
        if not self.cluster:
            client: Redis = self.client
            return client
        # Classic pub/sub is cluster-wide: one plain connection to any node receives every message.
        node = self.client.get_default_node() if self._url is None else None
        if node is not None:
            return Redis(host=node.host, port=node.port)
        assert self._url is not None
        return Redis.from_url(self._url)

    async def listen(self, handler: MessageHandler, on_connect: Callable[[], None]) -> None:
        """Receive invalidations forever (until cancelled), reconnecting with a short backoff.
        ``on_connect`` runs after every (re)subscription: messages may have been missed meanwhile."""
        client = self._pubsub_client()
        delay = 0.05
        try:
            while True:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                try:
                    async with asyncio.timeout(1.0):
                        await pubsub.subscribe(self.channel)
                    on_connect()
                    delay = 0.05
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            data = message["data"]
                            handler(data if isinstance(data, bytes) else str(data).encode())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("invalidation listener lost Redis (%s); reconnecting", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                finally:
                    try:
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                    except Exception:
                        pass
        finally:
            if client is not self.client:
                await client.aclose()  # type: ignore[no-untyped-call]

    async def xadd_many(self, stream: str, entries: Sequence[dict[str, Any]], maxlen: int) -> None:
        """Append events to a Redis Stream with ``MAXLEN ~`` trimming, in one pipeline."""
        if not entries:
            return
        async with asyncio.timeout(max(self.op_timeout * 4, 0.2)), self._slots:
            pipe = self.client.pipeline(transaction=False)
            for fields in entries:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
            await pipe.execute()

    async def ping(self) -> bool:
        async with asyncio.timeout(self.op_timeout * 4), self._slots:
            return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()
