"""A thin synchronous facade for WSGI apps (Flask, Django): the async cache runs on one background
event-loop thread; each call hands a coroutine to it and waits for the result.

Sync loaders run in that loop's default thread pool (``asyncio.to_thread``), so a slow origin call
does not stall other requests' cache hits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from precache.cache.layered import PredictiveCache

T = TypeVar("T")


class SyncCache:
    """``SyncCache(lambda: PredictiveCache(...))``: builds the cache inside its own loop thread."""

    def __init__(self, factory: Callable[[], PredictiveCache], call_timeout: float = 30.0) -> None:
        self.call_timeout = call_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="precache-sync", daemon=True)
        self._thread.start()

        async def build() -> PredictiveCache:
            cache = factory()
            await cache.start()
            return cache

        self.cache = self._run(build())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncCache cannot be called from its own loop thread; use .cache (async)")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.call_timeout)

    def get(self, key: str, loader: Callable[[], Any] | None = None, ttl: float | None = None,
            tags: Sequence[str] = (), session_id: str | None = None, context: Any = None) -> Any:
        aloader = None
        if loader is not None:
            sync_loader = loader

            async def aloader() -> Any:
                return await asyncio.to_thread(sync_loader)

        return self._run(self.cache.get(key, session_id, context, aloader, ttl, tags))

    def set(self, key: str, value: Any, ttl: float | None = None, tags: Sequence[str] = ()) -> None:
        self._run(self.cache.set(key, value, ttl, tags))

    def delete(self, key: str) -> None:
        self._run(self.cache.delete(key))

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return self._run(self.cache.get_many(keys))

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        return self._run(self.cache.invalidate_tags(tags))

    def close(self) -> None:
        """Close the cache and stop the loop thread. Idempotent."""
        if not self._loop.is_running():
            return
        self._run(self.cache.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
