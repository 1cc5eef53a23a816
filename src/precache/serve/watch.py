"""Follow the model registry: every replica picks up a newly active version without a restart.

Two paths to the same check: the registry's pub/sub message (``precache.registry.CHANNEL``) wakes the
watcher at once, and a slow poll of the registry's revision counter (one tiny file on the shared
``MODEL_STORAGE_PATH`` volume) catches a message missed while Redis or this replica was down. A new version
is loaded and verified in a worker thread, then swapped in on the event loop; requests already running
finish on the model they started with. A version that fails verification is refused and the current one
keeps serving (``/readyz`` shows the error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from precache.defaults import CACHE_OPTIMIZER, PAGE_PREDICTOR
from precache.monitoring.background import STOP_SECONDS, cancel_task, raise_if_cancelling
from precache.serve.decisions import CacheAdvisor
from precache.serve.model import ModelHolder

if TYPE_CHECKING:
    from precache.registry import ModelRegistry

log = logging.getLogger("precache.serve")



class RegistryFollower:
    """Keeps ``models`` (page predictor) and the cache advisor on the registry's active versions."""

    def __init__(self, registry: ModelRegistry, models: ModelHolder, *, poll_seconds: float = 2.0,
                 pages: bool = True, optimizer: bool = True) -> None:
        self.registry, self.models, self.poll_seconds = registry, models, poll_seconds
        self.pages, self.optimizer = pages, optimizer
        self.advisor: CacheAdvisor | None = None
        self.advisor_error: str | None = ("no active cache-optimizer version in the registry (MODEL_STORAGE_PATH) "
                                          "and no PRECACHE_OPTIMIZER_DIR")
        self.revision = -1
        self.reloads = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    async def sync(self) -> None:
        """Load whatever became active since the last look (no-op when the revision did not move)."""
        async with self._lock:
            revision = await asyncio.to_thread(self.registry.revision)
            if revision == self.revision:
                return
            self.revision = revision
            if self.pages:
                await self._page_predictor()
            if self.optimizer:
                await self._optimizer()

    async def _page_predictor(self) -> None:
        try:
            info = await asyncio.to_thread(self.registry.active, PAGE_PREDICTOR)
        except Exception as exc:
            self.models.last_error = f"registry: {type(exc).__name__}: {exc}"[:300]
            return
        if info is None:
            if self.models.current is None:
                self.models.last_error = ("no active page-predictor version in the registry (MODEL_STORAGE_PATH) "
                                          "and no PRECACHE_MODEL_DIR")
            return
        current = self.models.current
        if current is not None and current.version == info.version and current.directory == info.path:
            return
        try:
            served = await asyncio.to_thread(self.models.prepare, info.path, info.version)
        except Exception as exc:
            log.error("page-predictor %s refused, keeping %s: %s", info.version,
                      current.version if current else None, exc)
            return
        self.models.install(served)
        self.reloads += 1

    async def _optimizer(self) -> None:
        try:
            info = await asyncio.to_thread(self.registry.active, CACHE_OPTIMIZER)
        except Exception as exc:
            self.advisor_error = f"registry: {type(exc).__name__}: {exc}"[:300]
            return
        if info is None or (self.advisor is not None and self.advisor.version == info.version):
            return
        try:
            advisor = await asyncio.to_thread(CacheAdvisor.load, info.path)
        except Exception as exc:
            self.advisor_error = f"{info.path}: {type(exc).__name__}: {exc}"[:300]
            log.error("cache-optimizer %s refused: %s", info.version, exc)
            return
        advisor.version = info.version
        self.advisor, self.advisor_error = advisor, None
        self.reloads += 1

    async def run(self, redis_url: str, channel: str) -> None:
        """Until cancelled: wake on a registry message or every ``poll_seconds``, then :meth:`sync`."""
        listener = asyncio.get_running_loop().create_task(self._listen(redis_url, channel))
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                self._wake.clear()
                try:
                    await self.sync()
                except Exception as exc:  # the watcher must outlive a bad moment of the shared volume
                    raise_if_cancelling(exc)
                    log.warning("registry check failed: %s", exc)
        finally:
            await cancel_task(listener, STOP_SECONDS)

    async def _listen(self, redis_url: str, channel: str) -> None:
        # a plain connection without a read timeout (it waits for messages); classic pub/sub reaches every
        # node of a Redis Cluster, so one node's URL is enough there too
        from redis.asyncio import Redis

        while True:
            try:
                redis = Redis.from_url(redis_url, socket_connect_timeout=1.0)
                pubsub = redis.pubsub()
                await pubsub.subscribe(channel)
                try:
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._wake.set()
                finally:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await redis.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelling(exc)
                await asyncio.sleep(self.poll_seconds)  # Redis away: the poll keeps working meanwhile
