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

Writes are batched off the request path: :meth:`RedisCounts.flush` sends one pipeline of the increments a
caller aggregated (many page views of a popular pair become one increment): one short Lua script call per
bucket (``HINCRBYFLOAT`` of each field, ``EXPIRE``, the index's ``ZADD``; its keys share one slot, so it runs
on Redis Cluster too), whatever the number of pages, so a flush costs at most ``BUCKETS + 1`` commands.
Arguments travel as one JSON array per call. Values are plain floats and page strings; nothing is ever
unpickled.
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
# KEYS[1] the bucket's index (or, for popularity, the popularity hash itself), KEYS[2..] the rows; ARGV[1] the
# expiry in seconds (0: none), ARGV[2] the update time, ARGV[3] JSON [[context, [page, weight, ...]], ...]
# in KEYS order (context "" = popularity: no index entry).
INCREMENT = """
local rows = cjson.decode(ARGV[3])
local ttl = tonumber(ARGV[1])
for i, row in ipairs(rows) do
  local key, pairs = KEYS[i + 1], row[2]
  for j = 1, #pairs, 2 do redis.call('HINCRBYFLOAT', key, pairs[j], string.format('%.17g', pairs[j + 1])) end
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
  if row[1] ~= '' then redis.call('ZADD', KEYS[1], ARGV[2], row[1]) end
end
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
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
                 max_contexts: int = 100_000, max_successors: int = 64) -> None:
        self.client = client
        self.half_life = half_life
        self.prefix = prefix
        self.max_contexts = max_contexts
        self.max_successors = max_successors
        self.trimmed_contexts = 0
        self.trimmed_successors = 0
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
        """Send the aggregated increments in one pipeline (one script call per bucket, see the module doc).
        Returns the number of commands sent."""
        if not increments:
            return 0
        stamp = repr(time.time() if now is None else now)
        rows: dict[tuple[int, str], list[str | float]] = defaultdict(list)
        for (epoch, context, page), weight in increments.items():
            rows[(epoch, context)] += (page, float(weight))
        calls: dict[tuple[int, int], tuple[list[str], list[Any]]] = {}
        for (epoch, context), fields in rows.items():
            group = (epoch, -1 if context == "" else bucket_of(context))
            if group not in calls:
                first = self.popularity_key(epoch) if context == "" else self.index_key(group[1], epoch)
                calls[group] = ([first], [])
            keys, payload = calls[group]
            keys.append(self.popularity_key(epoch) if context == "" else self.row_key(context, epoch))
            payload.append([context, fields])
        ttl = self.ttl() or 0
        todo = list(calls)
        for _ in range(2):  # a second round only for calls a node refused with NOSCRIPT (a restarted node)
            if not self._loaded:
                await self.client.script_load(INCREMENT)
                self._loaded = True
            pipe = self.client.pipeline(transaction=False)
            for group in todo:
                keys, payload = calls[group]
                pipe.evalsha(self._sha, len(keys), *keys, ttl, stamp, json.dumps(payload))
            replies = await pipe.execute(raise_on_error=False)
            failed = [(group, r) for group, r in zip(todo, replies, strict=True) if isinstance(r, Exception)]
            todo = [group for group, r in failed if isinstance(r, NoScriptError)]
            if len(todo) < len(failed):
                raise next(r for _, r in failed if not isinstance(r, NoScriptError))
            if not todo:
                break
            self._loaded = False
        return len(calls)

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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _floats(reply: Any) -> dict[str, float]:
    return {_text(k): float(v) for k, v in (reply or {}).items()}
