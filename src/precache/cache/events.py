"""Access events: what each ``get`` reports to the predictor, the warmer and metrics, off the hot path.

``emit`` is a deque append (no await, no lock). Handlers run from a ``loop.call_soon`` callback after
the request has returned; an async handler's coroutine becomes a task (bounded). When the queue is
full the event is dropped and counted: a request never waits for an observer.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

Tier = Literal["l1", "l2", "origin", "stale", "error", "miss"]


@dataclass(slots=True, frozen=True)
class AccessEvent:
    """One ``get``. ``time`` is on the cache's injected clock; ``latency`` is real seconds spent.

    ``tier``: "l1" / "l2" (hit there), "origin" (the loader ran, or this get joined a running load),
    "stale" (served stale while a refresh runs), "error" (the loader raised), "miss" (no value and no
    loader). ``preloaded_hit`` is True on the first user hit of an entry the warmer prefetched.
    """

    time: float
    key: str
    session_id: str | None
    context: Any
    tier: Tier
    latency: float
    size: int
    preloaded_hit: bool = False


Handler = Callable[[AccessEvent], object]


class EventBus:
    """Bounded in-process fan-out of :class:`AccessEvent` (drop + count when full)."""

    def __init__(self, maxsize: int = 10_000, max_pending_tasks: int = 1_000) -> None:
        if maxsize <= 0:
            raise ValueError(f"event queue size must be > 0, got {maxsize}")
        self.maxsize = maxsize
        self.max_pending_tasks = max_pending_tasks
        self.handlers: list[Handler] = []
        self.dropped = 0
        self.delivered = 0
        self.handler_errors = 0
        self._queue: deque[AccessEvent] = deque()
        self._scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Register ``handler(event)`` (sync, or async returning an awaitable). Returns an unsubscribe."""
        if not callable(handler):
            raise TypeError(f"event handler must be callable, got {type(handler).__name__}")
        self.handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self.handlers:
                self.handlers.remove(handler)

        return unsubscribe

    def emit(self, event: AccessEvent) -> None:
        """Queue ``event`` without waiting; drops (and counts) it when the queue is full."""
        if len(self._queue) >= self.maxsize:
            self.dropped += 1
            return
        self._queue.append(event)
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (sync use): delivered on the next emit inside a loop, or by drain()
            self._scheduled = True
            loop.call_soon(self.drain)

    def drain(self) -> None:
        """Deliver every queued event now (runs from the event loop after the request returned)."""
        self._scheduled = False
        queue = self._queue
        handlers = self.handlers
        while queue:
            event = queue.popleft()
            for handler in handlers:
                try:
                    result = handler(event)
                except Exception:
                    self._handler_failed(handler)
                    continue
                if inspect.isawaitable(result):
                    self._spawn(result)
            self.delivered += 1

    def _spawn(self, awaitable: Awaitable[Any]) -> None:
        if len(self._tasks) >= self.max_pending_tasks:
            self.dropped += 1
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            return
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.handler_errors += 1
            if self.handler_errors <= 10:
                log.warning("async access-event handler failed: %r", task.exception())

    def _handler_failed(self, handler: Handler) -> None:
        self.handler_errors += 1
        if self.handler_errors <= 10:
            log.exception("access-event handler %r failed", handler)

    async def aclose(self) -> None:
        """Deliver what is queued and wait for running async handlers."""
        self.drain()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self._queue)
