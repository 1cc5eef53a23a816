"""``StalePoller``: act on the keys a :class:`~precache.cache.policy.StalenessSource` policy flags.

Off the hit path: the cache calls :meth:`StalePoller.maybe_poll` on the miss path, and a background task
polls a cache that sees few misses. Each flagged key is reloaded in the background with its last known
loader ("revalidate", through the cache's single-flight refresh) or its L1 copy is dropped ("evict", or
no loader known). With a built-in policy (not a StalenessSource) the poller is inactive and costs nothing:
no loaders are remembered and no task runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from precache.cache.config import StalenessConfig
from precache.cache.memory import MemoryTier
from precache.cache.policy import StalenessSource
from precache.cache.stats import CacheStats
from precache.types import Clock, Loader

log = logging.getLogger(__name__)

KnownLoader = tuple[Loader, float | None, tuple[str, ...]]
Revalidate = Callable[[str, Loader, float | None, tuple[str, ...], bool], bool]
"""``revalidate(key, loader, ttl, tags, preloaded) -> started?`` (the cache's background refresh)."""


class StalePoller:
    """Polls the policy at most once per ``poll_interval`` on the injected clock (see the module doc)."""

    __slots__ = ("_background", "_clock", "_l1", "_next_poll", "_revalidate", "_stats", "closed", "config",
                 "loaders", "source", "task")

    def __init__(self, l1: MemoryTier, config: StalenessConfig, clock: Clock, stats: CacheStats,
                 revalidate: Revalidate, background_default: bool) -> None:
        policy = l1.policy
        self.source: StalenessSource | None = (
            policy if config.enabled and isinstance(policy, StalenessSource) else None)
        self.config = config
        self._l1 = l1
        self._clock = clock
        self._stats = stats
        self._revalidate = revalidate
        self._background = background_default if config.background is None else config.background
        self._next_poll = -math.inf
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.loaders: dict[str, KnownLoader] | None = (
            {} if self.source is not None and config.max_known_loaders > 0 else None)

    @property
    def active(self) -> bool:
        return self.source is not None

    def remember(self, key: str, loader: Loader, ttl: float | None, tags: tuple[str, ...]) -> None:
        """Keep ``key``'s loader for a later "revalidate" (bounded; least recently loaded out first)."""
        loaders = self.loaders
        if loaders is None:
            return
        loaders.pop(key, None)  # re-insert: the dict's order is oldest-used first
        loaders[key] = (loader, ttl, tags)
        if len(loaders) > self.config.max_known_loaders:
            del loaders[next(iter(loaders))]

    def start(self) -> None:
        if self.source is not None and self._background and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _loop(self) -> None:
        """Wakes every ``poll_interval`` real seconds (at most 1 s) and polls when that interval has
        also passed on the injected clock."""
        while not self.closed:
            await asyncio.sleep(min(self.config.poll_interval, 1.0))
            try:
                self.poll(False)
            except Exception:  # never let a policy bug kill the task
                log.exception("polling the policy for stale keys failed")

    def poll(self, force: bool) -> int:
        """Ask the policy for stale keys (at most once per interval unless ``force``) and act on them;
        returns how many keys were revalidated or dropped."""
        source = self.source
        if source is None or self.closed:
            return 0
        now = self._clock.now()
        if not force and now < self._next_poll:
            return 0
        self._next_poll = now + self.config.poll_interval
        limit = self.config.poll_limit
        try:
            flagged = source.stale_keys(limit)
        except Exception:
            log.exception("policy.stale_keys failed")
            return 0
        l1 = self._l1
        loaders = self.loaders
        done: set[str] = set()
        for key, action in flagged[:limit]:
            if key in done:
                continue
            entry = l1.peek(key)
            if entry is None:
                continue  # gone meanwhile
            done.add(key)
            known = loaders.get(key) if loaders is not None and action == "revalidate" else None
            if known is not None:
                loader, ttl, tags = known
                if not self._revalidate(key, loader, ttl, tags, entry.preloaded):
                    done.discard(key)  # a load of it is already running: that one refreshes it
                continue
            if l1.delete(key):
                self._stats.policy_evictions += 1
        return len(done)
