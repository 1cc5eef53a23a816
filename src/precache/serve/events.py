"""``POST /api/ml/events``: reported accesses go to the session histories, the per-key access records, the
page -> asset counts behind warming lists (:mod:`precache.serve.assets`) and the access-event Redis Stream
that the training pipeline's collector drains.

Stream entries have exactly the layout :class:`precache.cache.stream.StreamSink` writes for embedded
caches (:func:`precache.cache.stream.event_fields`), on the same stream name (``PRECACHE_EVENT_STREAM``,
default ``precache:events``), so the collector reads one format whichever way an event came in; the page
is ``context.currentPath``. A visitor address is stored only as a keyed hash (``context.client``).
Retention: stream entries older than ``PRECACHE_EVENT_RETENTION_SECONDS`` are trimmed (``MINID ~``) and the
stream is capped at ``PRECACHE_EVENT_STREAM_MAXLEN`` entries; per-key records expire after the same time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass
from typing import Any

from precache.cache.events import AccessEvent
from precache.cache.stream import event_fields
from precache.history import HistoryStore, redis_tag
from precache.serve.assets import AssetCounts, views_and_assets
from precache.serve.schemas import AccessEventIn

log = logging.getLogger("precache.serve")

KEY_RECORDS = 64  # accesses remembered per cache key for type=cache features
LOCAL_KEYS = 100_000  # keys remembered in process when Redis is absent or failing

Access = tuple[float, int, float, str]  # (time, size, latency, client hash)


class ClientHasher:
    """Keyed hash of visitor addresses: equal inputs give equal hashes on every replica sharing the key,
    and the address cannot be recovered by hashing candidate addresses without the key."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else secrets.token_bytes(32)

    def __call__(self, client: str | None) -> str:
        if not client:
            return ""
        return hmac.new(self._key, client.encode(), hashlib.sha256).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :meth:`EventRecorder.record` did: whether the batch reached Redis, and per session the pages it
    viewed in the batch with its history after them (for the prediction core's hooks)."""

    streamed: bool
    views: list[tuple[str, list[str], list[str]]]


class StreamUnavailable(Exception):
    """The batch could not be written to the stream (Redis away): nothing of it was stored; retry later."""


class EventRecorder:
    def __init__(self, redis: Any | None, histories: HistoryStore, *, prefix: str, stream: str,
                 maxlen: int, retention: float, hasher: ClientHasher, assets: AssetCounts | None = None) -> None:
        self.redis, self.histories, self.prefix, self.assets = redis, histories, prefix, assets
        self.stream, self.maxlen, self.retention, self.hasher = stream, maxlen, retention, hasher
        self.received = 0
        self.streamed = 0
        self.stream_failures = 0
        self._local: OrderedDict[str, deque[Access]] = OrderedDict()

    def key_records(self, key: str) -> str:
        return f"{self.prefix}keyev:{{{redis_tag(key)}}}"

    async def record(self, events: list[AccessEventIn]) -> Recorded:
        """Store a validated batch: first the stream (the durable record), then each session's page views
        (appended to the history store once) and the asset counts.

        With Redis configured, a batch the stream cannot take raises :class:`StreamUnavailable` *before*
        anything else is stored, so the answer is 503 + Retry-After and the client's retry does not count
        anything twice (issue 28: 575 of 2,404 events were acknowledged with 200 and dropped during a Redis
        pause). An acknowledged batch is in the stream; how durable that is, is Redis' persistence
        (docs/operations.md). Without Redis at all, nothing is streamed (``streamed: false``)."""
        now = time.time()
        if self.redis is not None:
            try:
                await self._write(events, now)
            except Exception as exc:
                self.stream_failures += 1
                log.warning("%d events refused: the stream is unavailable (%s: %s)", len(events),
                            type(exc).__name__, exc)
                raise StreamUnavailable(f"{type(exc).__name__}: {exc}") from exc
            self.streamed += len(events)
        self.received += len(events)
        appended = await self._views_and_assets(events)
        if self.redis is None:
            for event in events:  # no Redis: this replica remembers the key accesses itself (bounded)
                if event.key is not None:
                    self._remember(event.key, (event.time if event.time is not None else now, event.size,
                                               event.latency, self.hasher(event.client)))
        return Recorded(self.redis is not None, appended)

    async def _views_and_assets(self, events: list[AccessEventIn]) -> list[tuple[str, list[str], list[str]]]:
        by_session: defaultdict[str, list[tuple[str | None, str | None]]] = defaultdict(list)
        for event in events:
            by_session[event.sessionId].append((event.page, event.key))
        views: Counter[str] = Counter()
        together: Counter[tuple[str, str]] = Counter()
        appended: list[tuple[str, list[str], list[str]]] = []
        for session_id, accesses in by_session.items():
            viewed = [page for page, _ in accesses if page is not None]
            history = await self.histories.append(session_id, viewed) if viewed else None
            if history is not None:
                appended.append((session_id, viewed, history))
            if self.assets is None:
                continue
            before: list[str] = []
            if any(page is None for page, _ in accesses):  # key-only events: assets of the view they follow
                history = history if history is not None else await self.histories.get(session_id)
                before = history[:max(0, len(history) - len(viewed))]
            session_views, session_assets = views_and_assets(before, accesses)
            views.update(session_views)
            together.update(session_assets)
        if self.assets is not None:
            await self.assets.add(views, together)
        return appended

    def _remember(self, key: str, access: Access) -> None:
        records = self._local.pop(key, None) or deque(maxlen=KEY_RECORDS)
        records.append(access)
        self._local[key] = records
        while len(self._local) > LOCAL_KEYS:
            self._local.popitem(last=False)

    async def _write(self, events: list[AccessEventIn], now: float) -> None:
        pipe = self.redis.pipeline(transaction=False)  # type: ignore[union-attr]
        retention_ms = int(self.retention * 1000)
        min_id = f"{max(0, int(now * 1000) - retention_ms)}-0"
        for event in events:
            client = self.hasher(event.client)
            context: dict[str, Any] = {"currentPath": event.page} if event.page is not None else {}
            if client:
                context["client"] = client
            when = event.time if event.time is not None else now
            access = AccessEvent(time=when, key=event.key or event.page or "", session_id=event.sessionId,
                                 context=context, tier=event.tier, latency=event.latency, size=event.size)
            pipe.xadd(self.stream, event_fields(access), minid=min_id, approximate=True)
            if event.key is not None:
                records = self.key_records(event.key)
                pipe.rpush(records, f"{when!r} {event.size} {event.latency!r} {client}")
                pipe.ltrim(records, -KEY_RECORDS, -1)
                pipe.pexpire(records, retention_ms)
        pipe.xtrim(self.stream, maxlen=self.maxlen, approximate=True)
        await pipe.execute()

    async def key_history(self, key: str) -> list[Access]:
        """The recorded accesses of ``key`` (oldest first): (time, size, latency, client hash)."""
        local = list(self._local.get(key, ()))
        if self.redis is None:
            return local
        try:
            raws = await self.redis.lrange(self.key_records(key), 0, -1)
        except Exception:
            return local
        out: list[Access] = []
        for raw in raws:
            text = raw.decode() if isinstance(raw, bytes) else raw
            parts = text.split(" ")
            try:
                out.append((float(parts[0]), int(parts[1]), float(parts[2]), parts[3] if len(parts) > 3 else ""))
            except (ValueError, IndexError):
                continue  # a malformed record (not written by us) is skipped, never trusted
        return out or local
