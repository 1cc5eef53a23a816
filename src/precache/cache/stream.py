"""Optional sink that appends access events to a Redis Stream (``XADD ... MAXLEN ~``) for training.

It is an :class:`EventBus` handler: it only buffers (sync, O(1)); a background task flushes the buffer
in pipelined batches, so the request path never touches Redis for events. A full buffer drops events
(counted); a failed flush drops its batch (counted) rather than retrying into a dead server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from precache.cache.events import AccessEvent
from precache.cache.l2 import StreamWriter

log = logging.getLogger(__name__)


def event_fields(event: AccessEvent) -> dict[str, Any]:
    """The stream entry for an event (flat string fields; context as JSON)."""
    try:
        context = orjson.dumps(event.context).decode() if event.context is not None else ""
    except TypeError:
        context = repr(event.context)[:200]
    return {
        "time": repr(event.time),
        "key": event.key,
        "session": event.session_id or "",
        "context": context,
        "tier": event.tier,
        "latency": repr(event.latency),
        "size": event.size,
        "preloaded_hit": int(event.preloaded_hit),
    }


class StreamSink:
    """Buffers events and flushes them to ``stream`` on ``writer`` (a RedisTier) in the background."""

    def __init__(self, writer: StreamWriter, stream: str = "precache:events", maxlen: int = 100_000,
                 batch: int = 500, buffer_limit: int = 20_000) -> None:
        self.writer = writer
        self.stream = stream
        self.maxlen = maxlen
        self.batch = batch
        self.buffer_limit = buffer_limit
        self.written = 0
        self.dropped = 0
        self._buffer: list[AccessEvent] = []
        self._task: asyncio.Task[None] | None = None

    def __call__(self, event: AccessEvent) -> None:
        if len(self._buffer) >= self.buffer_limit:
            self.dropped += 1
            return
        self._buffer.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def aclose(self) -> None:
        """Wait for the running flush (the caller bounds the wait; ``xadd_many`` is bounded per batch)."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.gather(task, return_exceptions=True)

    async def _flush(self) -> None:
        while self._buffer:
            chunk, self._buffer = self._buffer[: self.batch], self._buffer[self.batch :]
            try:
                await self.writer.xadd_many(self.stream, [event_fields(e) for e in chunk], self.maxlen)
                self.written += len(chunk)
            except Exception as exc:
                self.dropped += len(chunk)
                log.debug("event stream write failed, %d events dropped: %s", len(chunk), exc)
