"""Drain the access-event Redis Stream into dated event files, so trimming the stream loses nothing.

One consumer group (``precache-training``) reads the stream the cache's ``StreamSink`` writes; each
collector is one consumer. An entry is acknowledged only after its line is written and fsynced, so a
collector that dies leaves its unacknowledged entries pending; another collector takes them over with
``XAUTOCLAIM`` once they have been idle for ``claim_idle_ms``. A crash between write and ack can write a
line twice; readers drop duplicates by stream entry id (:func:`precache.training.collect.read_event_files`).

Each collector appends to its own files, ``<YYYY-MM-DD>.<consumer>.jsonl`` (UTC date of the event), so two
collectors never interleave writes in one file.
"""

from __future__ import annotations

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
        by_file: dict[Path, list[str]] = {}
        for entry_id, fields in entries:
            line = event_line(_text(entry_id), fields)
            if line is None:
                self.skipped += 1
                continue
            day = dt.datetime.fromtimestamp(line["time"], tz=dt.UTC).strftime("%Y-%m-%d")
            by_file.setdefault(self.out_dir / f"{day}.{self.consumer}{EVENT_SUFFIX}", []).append(json.dumps(line))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for path, lines in by_file.items():
            with path.open("a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        self.client.xack(self.stream, self.group, *[entry_id for entry_id, _ in entries])
        written = sum(len(lines) for lines in by_file.values())
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
