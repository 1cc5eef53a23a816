"""``InvalidationChannel``: drop other instances' L1 copies when this one writes, and ours when they do.

Messages go over the L2's broadcast (Redis pub/sub; ``MemoryL2`` delivers in-process) as
``{"o": instance id, "k": [keys], "t": [tags]}`` JSON. A listener that reconnects may have missed
messages, so on every re-subscription after the first, L1 is cleared rather than risk serving stale.

The channel also keeps the *generation*: a counter bumped by every local write, delete and tag
invalidation and by every invalidation received. A read from L2 records it when sent; its L1 fill is
dropped (``stats.fills_skipped``) if the generation moved meanwhile, since the read may have returned
the value just replaced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import orjson

from precache.cache.l2 import L2Tier
from precache.cache.memory import MemoryTier
from precache.cache.stats import CacheStats

log = logging.getLogger(__name__)


class InvalidationChannel:
    """Publish and receive invalidations for one cache instance; owns the listener task."""

    __slots__ = ("_connected_once", "_l1", "_listener", "_stats", "_subscribed", "_tier", "enabled",
                 "generation", "instance_id")

    def __init__(self, l1: MemoryTier, tier: L2Tier | None, enabled: bool, instance_id: str,
                 stats: CacheStats) -> None:
        self._l1 = l1
        self._tier = tier
        self.enabled = enabled and tier is not None
        self.instance_id = instance_id
        self._stats = stats
        self.generation = 0
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event() if self.enabled else None
        self._connected_once = False

    def bump(self) -> None:
        """A local write or invalidation happened: L2 reads in flight must not fill L1."""
        self.generation += 1

    def message(self, keys: Sequence[str] = (), tags: Sequence[str] = ()) -> bytes:
        return orjson.dumps({"o": self.instance_id, "k": list(keys), "t": list(tags)})

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self.enabled and self._listener is None and self._tier is not None:
            self._listener = asyncio.get_running_loop().create_task(
                self._tier.listen(self._on_message, self._on_connect))

    async def wait_subscribed(self, within: float) -> None:
        if self._subscribed is None or within <= 0:
            return
        try:
            async with asyncio.timeout(within):
                await self._subscribed.wait()
        except TimeoutError:
            log.warning("invalidation listener not subscribed after %.1fs; continuing", within)

    async def close(self) -> None:
        """Stop the listener (bounded: a wedged socket cannot hold shutdown)."""
        if self._listener is not None:
            self._listener.cancel()
            try:
                async with asyncio.timeout(2.0):
                    await asyncio.gather(self._listener, return_exceptions=True)
            except TimeoutError:
                log.warning("invalidation listener did not stop within 2 s")
        if self._tier is not None and self.enabled:
            self._tier.unlisten(self._on_message)

    # -- receiving ---------------------------------------------------------------------------------
    def _on_message(self, message: bytes) -> None:
        try:
            body = orjson.loads(message)
            if body.get("o") == self.instance_id:
                return
            keys = [k for k in body.get("k", ()) if isinstance(k, str)]
            tags = [t for t in body.get("t", ()) if isinstance(t, str)]
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            log.warning("ignoring malformed invalidation message %r", message[:80])
            return
        self._stats.invalidations_received += 1
        self.generation += 1
        l1 = self._l1
        for key in keys:
            l1.delete(key)
        for tag in tags:
            l1.delete_tag(tag)

    def _on_connect(self) -> None:
        if self._connected_once:
            # We were disconnected and may have missed invalidations: drop L1 rather than serve stale.
            self.generation += 1
            self._l1.clear()
        self._connected_once = True
        if self._subscribed is not None:
            self._subscribed.set()
