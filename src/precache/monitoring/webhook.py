"""Alert notifications POSTed as JSON to ``ML_ALERT_WEBHOOK``, with retries and back-off.

Why a queue and a task: an alert must never slow a request. :meth:`WebhookNotifier.notify` only puts
the event on a bounded queue (a full queue drops it and counts the drop); a background task sends each
event, retrying failures (connection errors, timeouts, 5xx, 429) with exponential back-off up to
``attempts`` times. 4xx other than 429 are not retried: the receiver refused the payload.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from precache.monitoring.background import STOP_SECONDS, cancel_task


@dataclass(slots=True)
class WebhookStats:
    queued: int = 0
    sent: int = 0
    retries: int = 0
    failed: int = 0
    dropped: int = 0


class WebhookNotifier:
    def __init__(
        self, url: str, *, attempts: int = 5, backoff_initial: float = 0.5, backoff_max: float = 30.0,
        timeout: float = 5.0, max_queue: int = 1000, transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"alert webhook must be an http(s) URL, got {url!r}")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.url = url
        self.attempts, self.backoff_initial, self.backoff_max = attempts, backoff_initial, backoff_max
        self.timeout = timeout
        self.stats = WebhookStats()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_queue)
        self._transport = transport
        self._task: asyncio.Task[None] | None = None

    def notify(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for sending; never blocks, never raises (a full queue drops and counts)."""
        try:
            self._queue.put_nowait(event)
            self.stats.queued += 1
        except asyncio.QueueFull:
            self.stats.dropped += 1

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, transport=self._transport) as client:
            while True:
                event = await self._queue.get()
                try:
                    await self._send(client, event)
                finally:
                    self._queue.task_done()

    async def _send(self, client: httpx.AsyncClient, event: dict[str, Any]) -> None:
        delay = self.backoff_initial
        for attempt in range(1, self.attempts + 1):
            try:
                response = await client.post(self.url, json=event)
                if response.status_code < 300:
                    self.stats.sent += 1
                    return
                if response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refused this payload: retrying will not help
            except httpx.HTTPError:
                pass
            if attempt < self.attempts:
                self.stats.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
        self.stats.failed += 1

    async def flush(self) -> None:
        """Wait until every queued event was sent or given up on (tests, shutdown; bound it with a timeout)."""
        await self._queue.join()

    async def stop(self, within: float = STOP_SECONDS) -> None:
        await cancel_task(self._task, within)
        self._task = None
