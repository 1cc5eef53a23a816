"""L2 on Redis (single server or Redis Cluster) through ``redis.asyncio`` with hiredis.

Timeout semantic (one timer per operation, measured from the send):

1. An operation first takes one of ``max_connections`` slots. Waiting for a slot is local saturation,
   not a Redis fault: it is bounded by ``queue_timeout`` and, when that runs out, raises
   :class:`~precache.cache.errors.L2BusyError`, which the cache counts without feeding its breaker.
2. Then the command runs under a deadline of ``op_timeout`` (default 50 ms; doubled when more operations
   run at once than connections were ever seen working, since the pool must connect first). When the
   deadline passes, the operation is cancelled and raises ``TimeoutError`` — unless its reply has
   already reached this process and the task is merely queued behind other work on the event loop (a
   busy loop is not a slow Redis): the cancellation goes twice to the back of the ready queue, so a
   task whose wake-up is already queued finishes first (counted in ``late_replies``).
3. Redis errors leave as the cache's own: :class:`~precache.cache.errors.L2KeyError` when the reply
   refuses this key only (``WRONGTYPE``, ``OOM``, a value over the size limit), else
   :class:`~precache.cache.errors.L2Error`. Only public asyncio and redis-py API is used.

The client is built with ``socket_timeout=None``: every command this tier sends is under the deadline
above, and redis-py's own socket timeout (5 s by default since redis-py 8) costs an
``asyncio.wait_for`` — a Task — per send on Python 3.11, about a third of a GET's CPU time. It is
also built without ``CLIENT SETINFO`` (``driver_info=None``): a round trip less per (re)connect,
which matters when connections are re-made after timeouts under load. Client-side retries are off:
retrying is the breaker's job.

Keys live under ``prefix``; tag sets are ``{prefix}tag:<tag>`` (one key each, so every command stays
single-slot in a cluster); leases are ``{prefix}lease:<key>``; invalidations go over the pub/sub channel
``{prefix}invalidate`` (classic PUBLISH is broadcast cluster-wide).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError

from precache.cache.errors import L2BusyError, L2Error, L2KeyError
from precache.cache.l2 import MessageHandler

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

_KEY_ERROR_MARKS = ("WRONGTYPE", "maximum allowed size")

_Pack = Callable[[tuple[str, ...]], bytes]
_hiredis_pack: _Pack | None
try:  # hiredis is installed with redis[hiredis] (a core dependency); the fallback keeps redis-py's packer
    from hiredis import pack_command as _hiredis_pack_command

    _hiredis_pack = _hiredis_pack_command  # type: ignore[assignment]  # its stub types a 1-tuple
except ImportError:  # pragma: no cover - hiredis missing from the environment
    _hiredis_pack = None


def _direct_pool(client: Any) -> ConnectionPool | None:
    """The pool ``RedisTier`` may send its reads through directly, or None when it must use
    ``execute_command`` (Redis Cluster, a single-connection client, or no hiredis packer)."""
    if _hiredis_pack is None or not isinstance(client, Redis) or client.single_connection_client:
        return None
    return client.connection_pool


def _translate(exc: RedisError) -> Exception:
    """redis-py's error → the cache's: a reply that refuses this key only (``WRONGTYPE``, ``OOM`` for
    this write, a value over the server's size limit) is an :class:`L2KeyError`; anything else (lost
    connection, cluster down, read-only replica, ``MISCONF`` …) is an :class:`L2Error`."""
    message = str(exc)
    if isinstance(exc, OutOfMemoryError):  # redis-py strips the "OOM" code from the message
        return L2KeyError(f"OOM {message}")
    if isinstance(exc, ResponseError) and any(mark in message for mark in _KEY_ERROR_MARKS):
        return L2KeyError(message)
    return L2Error(f"{type(exc).__name__}: {message}")


class _Slots:
    """A counting semaphore with a synchronous fast path: taking a free slot is a compare and a
    decrement, no coroutine (``asyncio.Semaphore.acquire`` is one even when a slot is free, and reaching
    into its private ``_value`` would tie us to one CPython version). A released slot is handed straight
    to the oldest waiter, so waiters are served in order."""

    __slots__ = ("_waiters", "free")

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # a slot was handed to us as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class _Op:
    """``async with tier._op(timeout):`` one connection slot, then a deadline armed at the send.

    Cheaper than ``asyncio.timeout(...)`` + ``async with semaphore`` (one timer, two coroutine calls)
    and with the semantic described in the module docstring. Redis errors leave as the cache's
    :class:`L2Error` / :class:`L2KeyError`.
    """

    __slots__ = ("_cancelling", "_finished", "_fired", "_handle", "_in_use", "_loop", "_task", "_tier",
                 "_timeout")

    def __init__(self, tier: RedisTier, timeout: float) -> None:
        self._tier = tier
        self._timeout = timeout
        self._fired = False
        self._finished = False
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> None:
        tier = self._tier
        slots = tier._slots
        if not slots.try_acquire():
            await tier._wait_for_slot()
        loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - an awaited coroutine always runs in a task
            slots.release()
            raise RuntimeError("RedisTier operations must run inside an asyncio task")
        self._task = task
        self._cancelling = task.cancelling()
        tier._in_use += 1
        self._in_use = tier._in_use
        timeout = self._timeout
        if self._in_use > tier._warm:
            timeout += timeout  # probably no connected idle connection: the pool connects first
        self._handle = loop.call_at(loop.time() + timeout, self._on_deadline)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._finished = True
        tier = self._tier
        handle = self._handle
        if handle is not None:
            handle.cancel()
            self._handle = None
        elif not self._fired:
            tier.late_replies += 1  # its deadline passed, but the reply was already here
        tier._slots.release()
        tier._in_use -= 1
        if exc is None:
            if self._in_use > tier._warm:
                tier._warm = min(self._in_use, tier.max_connections)
            return
        if not isinstance(exc, ResponseError):  # the connection may be gone: do not count on it
            tier._warm = max(0, tier._warm - 1)
        if self._fired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError(f"L2 operation exceeded its {self._timeout * 1000:.0f} ms deadline") from exc
        if isinstance(exc, RedisError):
            raise _translate(exc) from exc

    def _on_deadline(self) -> None:
        """The deadline passed. Do not cancel at once: if the reply already reached this process, the
        task's wake-up is already queued on the event loop (asyncio runs I/O callbacks before due timers;
        uvloop polls I/O right after its timers). Going twice to the back of the ready queue lets that
        wake-up run first; only an operation still unfinished then is cancelled. A busy event loop is
        not a slow Redis, and cancelling would throw away a good reply and its connection."""
        self._handle = None
        self._loop.call_soon(self._loop.call_soon, self._expire)

    def _expire(self) -> None:
        if self._finished:
            return  # the reply was there: it finished after its deadline (counted in __aexit__)
        self._fired = True
        self._task.cancel()


class RedisTier:
    """Shared L2. Build with a URL (``cluster=True`` for Redis Cluster) or pass a ready client.

    Times are real time (Redis expires keys itself); use it with the default ``SystemClock``.
    ``queue_timeout`` (default: ``op_timeout``) bounds the wait for a free connection slot.
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
        queue_timeout: float | None = None,
    ) -> None:
        if op_timeout <= 0:
            raise ValueError(f"op_timeout must be > 0 seconds, got {op_timeout}")
        if max_connections < 1 or connect_timeout <= 0 or (queue_timeout is not None and queue_timeout < 0):
            raise ValueError("RedisTier needs max_connections >= 1, connect_timeout > 0, queue_timeout >= 0")
        if (url is None) == (client is None):
            raise ValueError("RedisTier needs exactly one of url= or client=")
        self.prefix = prefix
        self.op_timeout = op_timeout
        self.connect_timeout = connect_timeout
        self.queue_timeout = op_timeout if queue_timeout is None else queue_timeout
        self.max_connections = max_connections
        self.cluster = cluster or isinstance(client, RedisCluster)
        self._url = url
        self.client: Any
        if client is not None:
            self.client = client
        elif cluster:
            assert url is not None
            self.client = RedisCluster.from_url(
                url, max_connections=max_connections, socket_connect_timeout=connect_timeout,
                socket_timeout=None, retry=Retry(NoBackoff(), 0), driver_info=None,
            )
        else:
            assert url is not None
            self.client = Redis.from_url(
                url, max_connections=max_connections + 4, socket_connect_timeout=connect_timeout,
                socket_timeout=None, retry=Retry(NoBackoff(), 0), health_check_interval=0,
                driver_info=None,
            )
        self.channel = f"{prefix}invalidate"
        # redis-py's pools raise MaxConnectionsError when a burst exceeds them; queue instead (bounded
        # by queue_timeout, outside the op deadline), so a burst of distinct keys never trips the breaker.
        self._slots = _Slots(max_connections)
        self._in_use = 0
        self._warm = 0  # connections known to be connected: peak concurrent successes, less failures
        self._release = self.client.register_script(_RELEASE)
        self._pool = _direct_pool(self.client)
        self.queued = 0
        """Operations that had to wait for a connection slot."""
        self.busy = 0
        """Operations refused with :class:`L2BusyError` (no slot within ``queue_timeout``)."""
        self.late_replies = 0
        """Operations whose reply arrived before the deadline but that ran after it (event-loop lag)."""

    # -- operation plumbing -----------------------------------------------------------------------
    def _op(self, timeout: float | None = None) -> _Op:
        return _Op(self, self.op_timeout if timeout is None else timeout)

    async def _wait_for_slot(self) -> None:
        self.queued += 1
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            self.busy += 1
            raise L2BusyError(
                f"all {self.max_connections} L2 connection slots stayed busy for "
                f"{self.queue_timeout * 1000:.0f} ms"
            ) from None

    # -- values -----------------------------------------------------------------------------------
    @property
    def direct_reads(self) -> bool:
        """Whether GET and MGET go through the direct pooled path (see :meth:`_read`)."""
        return self._pool is not None

    async def _read(self, *args: str) -> Any:
        """One read command (GET, MGET) and its raw reply.

        The hot reads skip ``execute_command``: on a plain pooled client they take a connection from
        the pool, send the command packed by hiredis (C; redis-py's async packer is Python, ~45 µs for
        an MGET of 100 keys) and read the reply, through redis-py's public connection API. Errors
        behave as in ``execute_command`` with retries off (the connection drops itself on any error or
        cancellation, then returns to the pool). Not done this way: redis-py's per-command
        observability hooks (this tier counts its own operations)."""
        pool = self._pool
        if pool is None:
            return await self.client.execute_command(*args)
        assert _hiredis_pack is not None
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(_hiredis_pack(args))
            return await conn.read_response()
        finally:
            await pool.release(conn)

    async def get(self, key: str) -> bytes | None:
        async with self._op():
            raw: bytes | None = await self._read("GET", self.prefix + key)
        return raw

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        prefix = self.prefix
        names = [prefix + k for k in keys]
        async with self._op():
            if self.cluster:
                values: list[bytes | None] = await self.client.mget_nonatomic(names)
            else:
                values = await self._read("MGET", *names)
        return values

    async def set(self, key: str, raw: bytes, px: int | None, tags: Sequence[str] = ()) -> None:
        name = self.prefix + key
        async with self._op():
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
        async with self._op():
            await self.client.delete(*[self.prefix + k for k in keys])

    async def put_raw(self, key: str, raw: bytes) -> None:
        """Store arbitrary bytes (tests: simulate a poisoned value written by someone else)."""
        async with self._op():
            await self.client.set(self.prefix + key, raw)

    # -- tags -------------------------------------------------------------------------------------
    async def tag_members(self, tags: Sequence[str]) -> builtins.set[str]:
        out: builtins.set[str] = builtins.set()
        async with self._op(self.op_timeout * 4):
            for tag in tags:
                members = await self.client.smembers(f"{self.prefix}tag:{tag}")
                out.update(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        return out

    async def delete_tags(self, tags: Sequence[str]) -> None:
        if tags:
            async with self._op():
                await self.client.delete(*[f"{self.prefix}tag:{t}" for t in tags])

    # -- cross-process lease ----------------------------------------------------------------------
    async def acquire_lease(self, key: str, token: str, px: int) -> bool:
        async with self._op():
            return bool(await self.client.set(f"{self.prefix}lease:{key}", token, nx=True, px=px))

    async def release_lease(self, key: str, token: str) -> None:
        async with self._op():
            await self._release(keys=[f"{self.prefix}lease:{key}"], args=[token])

    # -- invalidation broadcast -------------------------------------------------------------------
    async def publish(self, message: bytes) -> None:
        async with self._op():
            await self.client.publish(self.channel, message)

    def _pubsub_client(self) -> Redis:
        if not self.cluster:
            client: Redis = self.client
            return client
        # Classic pub/sub is cluster-wide: one plain connection to any node receives every message.
        # Explicit timeouts: without socket_connect_timeout a disconnect may wait on a dead socket forever.
        opts: dict[str, Any] = {"socket_connect_timeout": self.connect_timeout, "socket_timeout": None,
                                "retry": Retry(NoBackoff(), 0), "health_check_interval": 0,
                                "driver_info": None}
        node = self.client.get_default_node() if self._url is None else None
        if node is not None:
            return Redis(host=node.host, port=node.port, **opts)
        assert self._url is not None
        return Redis.from_url(self._url, **opts)

    async def listen(self, handler: MessageHandler, on_connect: Callable[[], None]) -> None:
        """Receive invalidations forever (until cancelled), reconnecting with a short backoff.
        ``on_connect`` runs after every (re)subscription: messages may have been missed meanwhile.
        Every wait inside is bounded (subscribe 1 s, each read 1 s, each close ``2 × connect_timeout``),
        so a cancel is honoured within about a second even against a wedged or killed server."""
        client = self._pubsub_client()
        close_bound = 2 * self.connect_timeout
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
                        async with asyncio.timeout(close_bound):
                            await pubsub.aclose()  # type: ignore[no-untyped-call]
                    except Exception:
                        pass
        finally:
            if client is not self.client:
                try:
                    async with asyncio.timeout(close_bound):
                        await client.aclose()  # type: ignore[no-untyped-call]
                except Exception:
                    pass

    async def xadd_many(self, stream: str, entries: Sequence[dict[str, Any]], maxlen: int) -> None:
        """Append events to a Redis Stream with ``MAXLEN ~`` trimming, in one pipeline."""
        if not entries:
            return
        async with self._op(max(self.op_timeout * 4, 0.2)):
            pipe = self.client.pipeline(transaction=False)
            for fields in entries:
                pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
            await pipe.execute()

    def unlisten(self, handler: MessageHandler) -> None:
        """Nothing to do: delivery ends when the ``listen`` task is cancelled."""

    async def ping(self) -> bool:
        async with self._op(self.op_timeout * 4):
            return bool(await self.client.ping())

    async def close(self) -> None:
        """Close every connection; bounded (a killed or wedged server cannot hold shutdown)."""
        try:
            async with asyncio.timeout(max(1.0, 4 * self.connect_timeout)):
                await self.client.aclose()
        except TimeoutError:
            log.warning("Redis connections did not close within %.1f s", max(1.0, 4 * self.connect_timeout))
