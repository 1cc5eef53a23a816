"""``SingleFlight``: at most one running load per key in this process; everyone else joins it.

``get``, ``prefetch`` and background refreshes share one map, so a user ``get`` of a key being prefetched
joins that load instead of calling the origin twice. Joiners await the shared task through
``asyncio.shield`` (one caller's cancellation never cancels the load the others wait for); a load
cancelled by ``close()`` reaches its joiners as :class:`LoadCancelledError`, never as a ``CancelledError``
that would look like their own cancellation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from precache.cache.errors import CacheError

log = logging.getLogger(__name__)

T = TypeVar("T")


class LoadCancelledError(CacheError):
    """The shared load this caller joined was cancelled by ``close()`` (not by this caller)."""


class SingleFlight:
    """The in-flight map (key → task) plus the set of background refreshes, and their shutdown."""

    __slots__ = ("background", "running")

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.background: set[asyncio.Task[Any]] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.running

    def start(self, key: str, coro: Coroutine[Any, Any, T], background: bool = False) -> asyncio.Task[T]:
        """Run ``coro`` as the load of ``key`` (the caller checked that none is running)."""
        task = asyncio.get_running_loop().create_task(coro)
        running = self.running
        running[key] = task

        def done(t: asyncio.Task[Any]) -> None:
            if running.get(key) is t:
                del running[key]
            if not t.cancelled():
                t.exception()  # mark retrieved: joiners re-raise it themselves

        task.add_done_callback(done)
        if background:
            self.background.add(task)
            task.add_done_callback(self.background.discard)
        return task

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run background work that ``close`` waits for (bounded) like the loads."""
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    @staticmethod
    async def join(task: asyncio.Task[T], key: str) -> T:
        """Await a shared load without letting this caller's cancellation cancel it."""
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                raise LoadCancelledError(f"cache closed while loading {key!r}") from None
            raise

    async def close(self, within: float) -> None:
        """Wait up to ``within`` s for running loads, then cancel what is left (bounded)."""
        pending = {*self.background, *self.running.values()}
        if not pending:
            return
        _, stuck = await asyncio.wait(pending, timeout=within)
        if stuck:
            log.warning("%d cache loads still running after %.1f s at close; cancelling them", len(stuck), within)
            for task in stuck:
                task.cancel()
            await asyncio.wait(stuck, timeout=1.0)
