"""Drain the access-event Redis Stream (or, without Redis, the in-process event bus) into dated event files.

Why files: the stream is trimmed (``MAXLEN ~``), so anything training may need later is copied out first.

One consumer group (``precache-training``) reads the stream the cache's ``StreamSink`` writes; each
collector is one consumer. An entry is acknowledged only after its line is written and fsynced, so a
collector that dies leaves its unacknowledged entries pending; another collector takes them over with
``XAUTOCLAIM`` once they have been idle for ``claim_idle_ms``. A crash between write and ack can write a
line twice; readers drop duplicates by stream entry id (:func:`precache.training.collect.read_event_files`).

Each collector appends to its own files, ``<YYYY-MM-DD>.<consumer>.jsonl`` (UTC date of the event), so two
collectors never interleave writes in one file. :class:`EventFileSink` writes the same files straight from
a process's :class:`~precache.cache.events.EventBus`, for a single process without Redis.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from precache.cache.events import AccessEvent
from precache.cache.stream import event_fields
from precache.training.collect import EVENT_SUFFIX

log = logging.getLogger(__name__)

STREAM = "precache:events"
GROUP = "precache-training"
MAX_FIELD = 2048  # a key or page longer than this is cut: bounded lines whatever the producer sends
_CONSUMER_RE = re.compile(r"[^A-Za-z0-9_.-]")

Entry = tuple[Any, dict[Any, Any]]


def _text(value: Any) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))[:MAX_FIELD]


def event_line(entry_id: str, fields: dict[Any, Any]) -> dict[str, Any] | None:
    """The stored form of one stream entry; None for an entry that is not an access event."""
    f = {_text(k): v for k, v in fields.items()}
    try:
        when = float(_text(f["time"]))
    except (KeyError, ValueError):
        return None
    page = None
    raw_context = _text(f.get("context", ""))
    if raw_context:
        try:
            context = json.loads(raw_context)
        except json.JSONDecodeError:
            context = None
        if isinstance(context, dict) and isinstance(context.get("currentPath"), str):
            page = context["currentPath"][:MAX_FIELD]
    try:
        size = int(_text(f.get("size", "0")))
    except ValueError:
        size = 0
    return {"id": entry_id, "time": when, "session": _text(f.get("session", "")), "key": _text(f.get("key", "")),
            "page": page, "size": size, "tier": _text(f.get("tier", ""))}


def append_events(out_dir: Path, writer: str, lines: Sequence[dict[str, Any]]) -> int:
    """Append event lines to ``out_dir/<UTC date>.<writer>.jsonl`` and fsync; returns how many were written."""
    by_file: dict[Path, list[str]] = {}
    for line in lines:
        day = dt.datetime.fromtimestamp(line["time"], tz=dt.UTC).strftime("%Y-%m-%d")
        by_file.setdefault(out_dir / f"{day}.{writer}{EVENT_SUFFIX}", []).append(json.dumps(line))
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, chunk in by_file.items():
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(chunk) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return len(lines)


class StreamCollector:
    """One consumer of the group. ``client`` is a synchronous ``redis.Redis``."""

    def __init__(self, client: Any, out_dir: str | Path, *, stream: str = STREAM, group: str = GROUP,
                 consumer: str | None = None, batch: int = 500, claim_idle_ms: int = 60_000) -> None:
        self.client = client
        self.out_dir = Path(out_dir)
        self.stream = stream
        self.group = group
        default = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.consumer = _CONSUMER_RE.sub("_", consumer or default)
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self.written = 0
        self.skipped = 0

    def ensure_group(self) -> None:
        import redis

        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, block_ms: int | None = 1000) -> list[Entry]:
        """New entries for this consumer (they stay pending until :meth:`store` acknowledges them)."""
        reply = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.batch, block=block_ms)
        return [entry for _stream, entries in reply or [] for entry in entries]

    def claim_stale(self) -> int:
        """Take over entries another consumer read and never acknowledged (it died); store them."""
        total = 0
        cursor: Any = "0-0"
        while True:
            reply = self.client.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms,
                                           start_id=cursor, count=self.batch)
            cursor, entries = reply[0], reply[1]
            total += self.store([e for e in entries if e[1] is not None])
            if _text(cursor) == "0-0" or not entries:
                return total

    def store(self, entries: Sequence[Entry]) -> int:
        """Append entries to their dated files, fsync, then acknowledge them. Returns how many were written."""
        if not entries:
            return 0
        lines = [line for entry_id, fields in entries if (line := event_line(_text(entry_id), fields)) is not None]
        self.skipped += len(entries) - len(lines)
        written = append_events(self.out_dir, self.consumer, lines)
        self.client.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        self.written += written
        return written

    def run(self, stop: threading.Event, block_ms: int = 1000, claim_every: int = 30) -> None:
        """Collect until ``stop`` is set: new entries, and every ``claim_every`` polls a dead peer's."""
        self.ensure_group()
        polls = 0
        while not stop.is_set():
            if polls % claim_every == 0:
                self.claim_stale()
            self.store(self.read(block_ms))
            polls += 1


class EventFileSink:
    """An :class:`~precache.cache.events.EventBus` handler that writes access events to dated event files.

    The handler only buffers (O(1) on the loop); full batches are appended in a worker thread, so the event
    loop never waits on the disk. A full buffer drops and counts events, as the stream sink does.
    """

    def __init__(self, out_dir: str | Path, name: str | None = None, batch: int = 500,
                 buffer_limit: int = 20_000) -> None:
        self.out_dir = Path(out_dir)
        self.name = _CONSUMER_RE.sub("_", name or f"bus-{socket.gethostname()}-{os.getpid()}")
        self.batch = batch
        self.buffer_limit = buffer_limit
        self.written = 0
        self.dropped = 0
        self._count = 0
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def __call__(self, event: AccessEvent) -> None:
        if len(self._buffer) >= self.buffer_limit:
            self.dropped += 1
            return
        self._count += 1
        line = event_line(f"{self.name}-{self._count}", event_fields(event))
        if line is not None:
            self._buffer.append(line)
        if len(self._buffer) >= self.batch and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> None:
        """Write everything buffered so far."""
        while self._buffer:
            chunk, self._buffer = self._buffer, []
            self.written += await asyncio.to_thread(append_events, self.out_dir, self.name, chunk)

    async def aclose(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()
