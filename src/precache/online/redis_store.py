"""The online counts in Redis (or Redis Cluster), shared by every replica; increments only, no pickle.

Key layout (``prefix`` defaults to ``precache:online:``; ``h`` = the first 16 hex digits of the blake2b of
the context page, ``b`` = ``h`` modulo :data:`BUCKETS`, so any page id, braces included, makes valid keys):

- ``{prefix}{b}:<h>:e<epoch>``: a hash, successor page -> stored forward-decayed weight (float text);
- ``{prefix}{b}:idx:e<epoch>``: a sorted set, context page -> last update time (the contexts cap evicts the
  lowest scores: the least recently updated rows, ``max_contexts / BUCKETS`` per bucket);
- ``{prefix}{pop}:e<epoch>``: a hash, page -> stored weight (popularity).

The hash tag ``{b}`` puts a bucket's rows and its index on one Cluster slot, and the buckets over all the
nodes. Why increments only: with forward decay (:mod:`precache.online.state`) an update adds a weight every
replica computes from the clock alone, so concurrent replicas need no lock and no read-modify-write. Epoch
keys expire two epochs after their own (data that old weighs ``2 ** -64``); a reader adds the previous
epoch's row scaled by ``2 ** -64``.

Writes are batched off the request path: :meth:`RedisCounts.flush` sends the increments a caller aggregated
(many page views of a popular pair become one increment) as a few short Lua script calls (``HINCRBYFLOAT``
of each field; now and then ``ZADD`` to the index and ``EXPIRE`` of a key that has none). On Redis Cluster a
call's keys must share one slot: one call per bucket, in one pipeline (the calls go to several nodes). On a
single Redis one call carries up to :data:`ROWS_PER_CALL` rows of any buckets, one call per round trip: Redis
runs a pipeline's commands back to back while every other client waits, and between round trips it serves
them. Why (measured in issue 25, ``bench/profile_online.py``): with one call per row in one pipeline, each
100 ms flush held Redis ~1 ms in one stretch, and the requests' own history writes waited behind it (a tail).
So calls are grouped, weights travel as text (no ``string.format`` per field), and a row this replica keeps
updating is stamped in its index (``ZADD``) and checked for an expiry at most every :data:`INDEX_EVERY`
seconds, not at every flush: between stamps a hot row costs only its ``HINCRBYFLOAT`` s (the cap's "least
recently updated" is exact to 10 seconds). Arguments travel as one JSON array per call. Values are plain
floats and page strings; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from redis.exceptions import NoScriptError

from precache.online.state import EPOCH_HALF_LIVES, epoch_of

BUCKETS = 128
ROWS_PER_CALL = 16  # rows per script call on a single Redis (bounds how long one call holds Redis)
INDEX_EVERY = 10.0  # seconds: how often a replica re-stamps a row it keeps updating in the index (and expiry)
# ARGV[1] the expiry in seconds (0: none), ARGV[2] the update time, ARGV[3] JSON [[row key position, index key
# position (0: only the increments; -1: popularity, expiry only), context, [page, weight text, ...]], ...].
INCREMENT = """
local rows = cjson.decode(ARGV[3])
local ttl = tonumber(ARGV[1])
for _, row in ipairs(rows) do
  local key, fields = KEYS[row[1]], row[4]
  for j = 1, #fields, 2 do redis.call('HINCRBYFLOAT', key, fields[j], fields[j + 1]) end
  if row[2] ~= 0 and ttl > 0 and redis.call('TTL', key) == -1 then redis.call('EXPIRE', key, ttl) end
  if row[2] > 0 then
    local index = KEYS[row[2]]
    redis.call('ZADD', index, ARGV[2], row[3])
    if ttl > 0 and redis.call('TTL', index) == -1 then redis.call('EXPIRE', index, ttl) end
  end
end
return #rows
"""
Increments = Mapping[tuple[int, str, str], float]  # (epoch, context or "" for popularity, page) -> weight


def row_tag(context: str) -> str:
    return hashlib.blake2b(context.encode(), digest_size=8).hexdigest()


def bucket_of(context: str) -> int:
    return int(row_tag(context), 16) % BUCKETS


class RedisCounts:
    """Shared online counts over a ``redis.asyncio`` client (plain or cluster: pipelines work on both)."""

    def __init__(self, client: Any, half_life: float | None, prefix: str = "precache:online:",
                 max_contexts: int = 100_000, max_successors: int = 64, cluster: bool | None = None) -> None:
        self.client = client
        self.cluster = _is_cluster(client) if cluster is None else cluster
        self.half_life = half_life
        self.prefix = prefix
        self.max_contexts = max_contexts
        self.max_successors = max_successors
        self.trimmed_contexts = 0
        self.trimmed_successors = 0
        self._stamped: dict[tuple[int, str], float] = {}  # (epoch, context) -> when this replica last stamped it
        self._sha = hashlib.sha1(INCREMENT.encode()).hexdigest()  # Redis names scripts by SHA-1
        self._loaded = False

    # -- keys --------------------------------------------------------------------------------------
    def row_key(self, context: str, epoch: int) -> str:
        tag = row_tag(context)
        return f"{self.prefix}{{{int(tag, 16) % BUCKETS}}}:{tag}:e{epoch}"

    def index_key(self, bucket: int, epoch: int) -> str:
        return f"{self.prefix}{{{bucket}}}:idx:e{epoch}"

    def popularity_key(self, epoch: int) -> str:
        return f"{self.prefix}{{pop}}:e{epoch}"

    def ttl(self) -> int | None:
        return None if self.half_life is None else int(3 * EPOCH_HALF_LIVES * self.half_life) + 1

    # -- writes ------------------------------------------------------------------------------------
    async def flush(self, increments: Increments, now: float | None = None) -> int:
        """Send the aggregated increments as a few script calls (see the module doc): on a single Redis one
        call per round trip, so that between two calls Redis serves the requests' own commands (a pipeline's
        calls would run back to back, one long stretch); on a Cluster one pipeline (its calls go to several
        nodes). Returns the number of script calls sent. A failure after some calls raises
        :class:`FlushError` with the increments not sent (so the caller resends only those)."""
        if not increments:
            return 0
        now = time.time() if now is None else now
        stamp = repr(now)
        rows: dict[tuple[int, str], list[str]] = defaultdict(list)
        for (epoch, context, page), weight in increments.items():
            rows[(epoch, context)] += (page, repr(float(weight)))
        stamped = [row for row in rows if now - self._stamped.get(row, -1e18) >= INDEX_EVERY]
        calls = self._calls(rows, set(stamped))
        args = [(len(keys), *keys, self.ttl() or 0, stamp, json.dumps(payload)) for keys, payload, _ in calls]
        if self.cluster:
            await self._pipelined(args)
        else:
            for i, call in enumerate(args):
                try:
                    await self._call_script(call)
                except Exception as exc:
                    if i == 0:
                        raise
                    sent = {row for _, _, members in calls[:i] for row in members}
                    raise FlushError({k: w for k, w in increments.items() if (k[0], k[1]) not in sent}) from exc
        if len(self._stamped) > 4 * self.max_contexts:
            self._stamped.clear()
        self._stamped.update(dict.fromkeys(stamped, now))
        return len(calls)

    async def _call_script(self, call: tuple[Any, ...]) -> None:
        if not self._loaded:
            await self.client.script_load(INCREMENT)
            self._loaded = True
        try:
            await self.client.evalsha(self._sha, *call)
        except NoScriptError:  # a restarted Redis: load it again, once
            self._loaded = False
            await self.client.script_load(INCREMENT)
            self._loaded = True
            await self.client.evalsha(self._sha, *call)

    async def _pipelined(self, calls: list[tuple[Any, ...]]) -> None:
        todo = list(range(len(calls)))
        for _ in range(2):  # a second round only for calls a node refused with NOSCRIPT (a restarted node)
            if not self._loaded:
                await self.client.script_load(INCREMENT)
                self._loaded = True
            pipe = self.client.pipeline(transaction=False)
            for i in todo:
                pipe.evalsha(self._sha, *calls[i])
            replies = await pipe.execute(raise_on_error=False)
            failed = [(i, r) for i, r in zip(todo, replies, strict=True) if isinstance(r, Exception)]
            todo = [i for i, r in failed if isinstance(r, NoScriptError)]
            if len(todo) < len(failed):
                raise next(r for _, r in failed if not isinstance(r, NoScriptError))
            if not todo:
                return
            self._loaded = False

    def _calls(self, rows: Mapping[tuple[int, str], list[str]], stamp: set[tuple[int, str]]
               ) -> list[tuple[list[str], list[Any], list[tuple[int, str]]]]:
        """Group rows into script calls: per (epoch, bucket) on a cluster (one slot per call), else up to
        :data:`ROWS_PER_CALL` rows per call; each call's keys listed once, the payload naming them by position.
        Only the rows in ``stamp`` are (re-)stamped in their index and given an expiry if they lack one."""
        groups: dict[tuple[int, int], list[tuple[str, list[str], bool]]] = defaultdict(list)
        for n, ((epoch, context), fields) in enumerate(rows.items()):
            if self.cluster:
                group = (epoch, -1 if context == "" else bucket_of(context))
            else:
                group = (epoch, n // ROWS_PER_CALL)
            groups[group].append((context, fields, (epoch, context) in stamp))
        return [(*self._call(epoch, members), [(epoch, context) for context, _, _ in members])
                for (epoch, _), members in groups.items()]

    def _call(self, epoch: int, members: list[tuple[str, list[str], bool]]) -> tuple[list[str], list[Any]]:
        """One script call's keys (each once) and payload (naming them by 1-based position)."""
        position: dict[str, int] = {}
        payload: list[Any] = []
        for context, fields, stamped in members:
            if context == "":
                key = self.popularity_key(epoch)
                payload.append([position.setdefault(key, len(position) + 1), -1 if stamped else 0, "", fields])
                continue
            tag = row_tag(context)
            bucket = int(tag, 16) % BUCKETS
            row = position.setdefault(f"{self.prefix}{{{bucket}}}:{tag}:e{epoch}", len(position) + 1)
            index = position.setdefault(self.index_key(bucket, epoch), len(position) + 1) if stamped else 0
            payload.append([row, index, context, fields])
        return list(position), payload

    async def trim(self, epoch: int) -> int:
        """Enforce the contexts cap, bucket by bucket: drop the least recently updated rows of a bucket past
        ``max_contexts / BUCKETS``."""
        cap = max(1, self.max_contexts // BUCKETS)
        pipe = self.client.pipeline(transaction=False)
        for bucket in range(BUCKETS):
            pipe.zcard(self.index_key(bucket, epoch))
        sizes = await pipe.execute()
        over = [(bucket, int(n) - cap) for bucket, n in enumerate(sizes) if int(n) > cap]
        if not over:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for bucket, excess in over:
            pipe.zpopmin(self.index_key(bucket, epoch), excess)
        popped = await pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        dropped = 0
        for members in popped:
            for member, _ in members:
                pipe.delete(self.row_key(_text(member), epoch))
                dropped += 1
        await pipe.execute()
        self.trimmed_contexts += dropped
        return dropped

    async def contexts(self, epoch: int) -> int:
        """How many contexts the epoch's indexes hold (all buckets)."""
        pipe = self.client.pipeline(transaction=False)
        for bucket in range(BUCKETS):
            pipe.zcard(self.index_key(bucket, epoch))
        return sum(int(n) for n in await pipe.execute())

    # -- reads -------------------------------------------------------------------------------------
    async def context_pages(self, epoch: int) -> list[str]:
        """Every context the epoch's indexes hold (all buckets; the edge refresh reads only these rows)."""
        pipe = self.client.pipeline(transaction=False)
        for bucket in range(BUCKETS):
            pipe.zrange(self.index_key(bucket, epoch), 0, -1)
        return [_text(m) for members in await pipe.execute() for m in members]

    async def rows(self, contexts: Iterable[str], now: float) -> dict[str, dict[str, float]]:
        """Each context's successors as stored weights of the current epoch (the previous epoch's added,
        scaled by ``2 ** -64``). Rows over ``max_successors`` are cut to the heaviest, and the rest deleted
        in Redis (the successors cap)."""
        wanted = list(dict.fromkeys(contexts))
        epoch = epoch_of(now, self.half_life)
        pipe = self.client.pipeline(transaction=False)
        for context in wanted:
            pipe.hgetall(self.row_key(context, epoch))
            if self.half_life is not None:
                pipe.hgetall(self.row_key(context, epoch - 1))
        replies = await pipe.execute()
        per = 2 if self.half_life is not None else 1
        out: dict[str, dict[str, float]] = {}
        over: list[tuple[str, list[str]]] = []
        for i, context in enumerate(wanted):
            row = _floats(replies[i * per])
            if per == 2:
                for page, w in _floats(replies[i * per + 1]).items():
                    row[page] = row.get(page, 0.0) + w * 2.0 ** -EPOCH_HALF_LIVES
            if len(row) > self.max_successors:
                ranked = sorted(row, key=row.__getitem__, reverse=True)
                over.append((self.row_key(context, epoch), ranked[self.max_successors :]))
                row = {page: row[page] for page in ranked[: self.max_successors]}
            out[context] = row
        if over:
            pipe = self.client.pipeline(transaction=False)
            for key, pages in over:
                pipe.hdel(key, *pages)
                self.trimmed_successors += len(pages)
            await pipe.execute()
        return out

    async def popularity(self, now: float, n: int) -> dict[str, float]:
        """The ``n`` most popular pages' stored weights (current epoch)."""
        row = _floats(await self.client.hgetall(self.popularity_key(epoch_of(now, self.half_life))))
        return dict(sorted(row.items(), key=lambda kv: -kv[1])[:n])

    async def memory_bytes(self, epoch: int, sample: int = 200) -> int:
        """``MEMORY USAGE`` of the epoch's rows and indexes, estimated from a sample of rows."""
        members = await self.client.zrange(self.index_key(0, epoch), 0, sample - 1)
        count = await self.contexts(epoch)
        total = 0
        for bucket in range(BUCKETS):
            total += int(await self.client.memory_usage(self.index_key(bucket, epoch)) or 0)
        if members:
            sizes = [int(await self.client.memory_usage(self.row_key(_text(m), epoch)) or 0) for m in members]
            total += int(sum(sizes) / len(sizes) * count)
        return total


class FlushError(Exception):
    """A flush that failed part way: ``unsent`` holds the increments Redis did not get."""

    def __init__(self, unsent: dict[tuple[int, str, str], float]) -> None:
        super().__init__(f"{len(unsent)} increments not sent")
        self.unsent = unsent


def _is_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _floats(reply: Any) -> dict[str, float]:
    return {_text(k): float(v) for k, v in (reply or {}).items()}
