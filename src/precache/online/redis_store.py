"""The online counts in Redis (or Redis Cluster), shared by every replica; increments only, no pickle.

Key layout (``prefix`` defaults to ``precache:online:``; ``h`` = the first 16 hex digits of the blake2b of
the context page, so any page id, braces included, makes a valid hash tag):

- ``{prefix}{h}:e<epoch>``: a hash, successor page -> stored forward-decayed weight (float text);
- ``{prefix}{idx}:e<epoch>``: a sorted set, context page -> last update time (the contexts cap evicts the
  lowest scores: the least recently updated rows);
- ``{prefix}{pop}:e<epoch>``: a hash, page -> stored weight (popularity).

The hash tag ``{h}`` puts each row on one Cluster slot and spreads rows over the nodes; the index and
popularity keys are one slot each. Why increments only: with forward decay (:mod:`precache.online.state`)
an update is ``HINCRBYFLOAT`` of a weight every replica computes from the clock alone, so concurrent
replicas need no lock and no Lua. Epoch keys expire two epochs after their own (data that old weighs
``2 ** -64``); a reader adds the previous epoch's row scaled by ``2 ** -64``.

Writes are batched off the request path: :meth:`RedisCounts.flush` sends one pipeline of the increments a
caller aggregated (many page views of a popular pair become one command). Values are plain floats and page
strings; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from precache.online.state import EPOCH_HALF_LIVES, epoch_of

Increments = Mapping[tuple[int, str, str], float]  # (epoch, context or "" for popularity, page) -> weight


def row_tag(context: str) -> str:
    return hashlib.blake2b(context.encode(), digest_size=8).hexdigest()


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

    # -- keys --------------------------------------------------------------------------------------
    def row_key(self, context: str, epoch: int) -> str:
        return f"{self.prefix}{{{row_tag(context)}}}:e{epoch}"

    def index_key(self, epoch: int) -> str:
        return f"{self.prefix}{{idx}}:e{epoch}"

    def popularity_key(self, epoch: int) -> str:
        return f"{self.prefix}{{pop}}:e{epoch}"

    def ttl(self) -> int | None:
        return None if self.half_life is None else int(3 * EPOCH_HALF_LIVES * self.half_life) + 1

    # -- writes ------------------------------------------------------------------------------------
    async def flush(self, increments: Increments, now: float | None = None) -> int:
        """Send the aggregated increments in one pipeline; returns the number of commands sent."""
        if not increments:
            return 0
        stamp = time.time() if now is None else now
        ttl = self.ttl()
        pipe = self.client.pipeline(transaction=False)
        touched: dict[int, set[str]] = defaultdict(set)
        keys: set[str] = set()
        commands = 0
        for (epoch, context, page), weight in increments.items():
            key = self.popularity_key(epoch) if context == "" else self.row_key(context, epoch)
            pipe.hincrbyfloat(key, page, weight)
            keys.add(key)
            commands += 1
            if context:
                touched[epoch].add(context)
        for epoch, contexts in touched.items():
            pipe.zadd(self.index_key(epoch), dict.fromkeys(contexts, stamp))
            keys.add(self.index_key(epoch))
            commands += 1
        if ttl is not None:
            for key in keys:
                pipe.expire(key, ttl)
                commands += 1
        await pipe.execute()
        return commands

    async def trim(self, epoch: int) -> int:
        """Enforce the contexts cap: drop the least recently updated rows past ``max_contexts``."""
        excess = int(await self.client.zcard(self.index_key(epoch))) - self.max_contexts
        if excess <= 0:
            return 0
        popped = await self.client.zpopmin(self.index_key(epoch), excess)
        contexts = [c.decode() if isinstance(c, bytes) else str(c) for c, _ in popped]
        pipe = self.client.pipeline(transaction=False)
        for context in contexts:
            pipe.delete(self.row_key(context, epoch))
        await pipe.execute()
        self.trimmed_contexts += len(contexts)
        return len(contexts)

    # -- reads -------------------------------------------------------------------------------------
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

    async def memory_bytes(self, sample: int = 200) -> int:
        """Redis ``MEMORY USAGE`` of the current epoch's keys, estimated from a sample of rows."""
        epoch = epoch_of(time.time(), self.half_life)
        members = await self.client.zrange(self.index_key(epoch), 0, sample - 1)
        total = int(await self.client.memory_usage(self.index_key(epoch)) or 0)
        if members:
            sizes = [int(await self.client.memory_usage(self.row_key(_text(m), epoch)) or 0) for m in members]
            total += int(sum(sizes) / len(sizes) * int(await self.client.zcard(self.index_key(epoch))))
        return total


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _floats(reply: Any) -> dict[str, float]:
    return {_text(k): float(v) for k, v in (reply or {}).items()}
