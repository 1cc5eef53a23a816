"""The ``send`` the application gets behind the middleware: store a storable response, pass anything else.

Why a module of its own: this is where a response's fate is decided once its headers are known (store,
hold for the body, pass through), where unsafe methods invalidate (RFC 9111 §4.4) and where the session
cookie and hints are added to whatever goes out; the middleware keeps the request side.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Message, Send

from precache.cache.errors import CacheError
from precache.cache.layered import PredictiveCache
from precache.web.cached import ResponseCache, unsafe_method
from precache.web.config import WebConfig
from precache.web.marks import PageMarks
from precache.web.rules import RequestView, StoreDecision
from precache.web.sessions import BoundedSet
from precache.web.stored import StoredResponse

HeaderList = list[tuple[bytes, bytes]]
Shared = tuple[StoredResponse, dict[str, str]]
"""A render's stored response and the request headers it was rendered for (to check ``Vary``)."""


def header_map(raw: HeaderList | list[tuple[str, str]]) -> dict[str, str]:
    """Lower-case name -> value, repeated headers joined with ", " (Set-Cookie included: only presence matters)."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = (name.decode("latin-1") if isinstance(name, bytes) else name).lower()
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out


@dataclass(slots=True)
class Exchange:
    """One request's session facts, used to decorate whatever response it gets."""

    session_id: str | None
    new_session: bool
    page: str | None
    prefetch: bool
    secure: bool
    headers: dict[str, str]
    url: str
    """The absolute URL of the request (scheme, host, path): where the page's relative links point."""



def is_html(raw: HeaderList) -> bool:
    for name, value in raw:
        if name.lower() == b"content-type":
            return value.split(b";")[0].strip().lower() in (b"text/html", b"application/xhtml+xml")
    return False




@dataclass(slots=True)
class Job:
    """One request on its way through the application: what decides and decorates its response."""

    view: RequestView
    """The request as the application saw it (anonymous on the cached path)."""
    key: str
    exchange: Exchange
    label: str
    store: bool
    flight: asyncio.Future[Shared | None] | None = None
    generation: str | None = None
    path: str = ""
    query: str = ""

    @property
    def invalidates(self) -> bool:
        return unsafe_method(self.view.method)


class Host(Protocol):
    """What :class:`Capture` needs of the middleware."""

    config: WebConfig
    cache: PredictiveCache
    responses: ResponseCache
    marks: PageMarks
    uncacheable: BoundedSet

    @property
    def stats(self) -> Counter[str]: ...

    def decision(self, view: RequestView, status: int, headers: dict[str, str],
                 body_length: int | None = None) -> StoreDecision: ...

    def not_stored(self, job: Job, decision: StoreDecision) -> None: ...

    async def invalidate_after(self, job: Job, raw: HeaderList) -> None: ...

    def decorate(self, status: int, raw: HeaderList, exchange: Exchange, status_label: str) -> HeaderList: ...

    async def send_stored(self, response: StoredResponse, method: str, exchange: Exchange, send: Send,
                          status_label: str = "hit", age: bool = True) -> None: ...


class Capture:
    """The ``send`` the application gets: holds a storable response until its body is complete, stores it
    and sends it; passes anything else straight through, decorated (session cookie, status, hints).

    A response without ``Content-Length`` is held until its first body message: when that message is the
    whole body, it is not a stream and may be stored; otherwise it passes through at once."""

    def __init__(self, mw: Host, job: Job, send: Send) -> None:
        self.mw, self.job, self.send = mw, job, send
        self.start: Message | None = None
        self.ttl = 0.0
        self.pending_length = False
        self.buffered: list[bytes] = []
        self.passing = False
        self.scan: list[bytes] | None = None
        """A passed-through HTML page's body (bounded), scanned for marked links at its end."""

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            await self._on_start(message)
        elif kind == "http.response.body" and self.start is not None and not self.passing:
            await self._on_body(message)
        else:
            if kind == "http.response.body" and self.scan is not None:
                self._scan_chunk(message)
            await self.send(message)

    async def _on_start(self, message: Message) -> None:
        mw, job = self.mw, self.job
        raw: HeaderList = list(message.get("headers", []))
        status = message["status"]
        if job.invalidates and 200 <= status < 400:
            await mw.invalidate_after(job, raw)
        headers = header_map(raw)
        decision = mw.decision(job.view, status, headers) if job.store else StoreDecision(0.0, "off")
        if decision.reason == "streamed" and "content-length" not in headers:
            self.start, self.pending_length = dict(message, headers=raw), True
        elif decision.store:
            self.start, self.ttl = dict(message, headers=raw), decision.ttl
        else:
            mw.not_stored(job, decision)
            await self._pass(status, raw)

    async def _pass(self, status: int, raw: HeaderList) -> None:
        self.passing = True
        if self.job.exchange.page is not None and status == 200 and is_html(raw):
            self.scan = []
        await self.send({"type": "http.response.start", "status": status,
                         "headers": self.mw.decorate(status, raw, self.job.exchange, self.job.label)})

    def _scan_chunk(self, message: Message) -> None:
        assert self.scan is not None
        if sum(map(len, self.scan)) <= self.mw.config.max_body_bytes:
            self.scan.append(message.get("body", b""))
        if not message.get("more_body", False):
            self.mw.marks.scan(self.job.exchange.url, b"".join(self.scan))
            self.scan = None

    async def _on_body(self, message: Message) -> None:
        assert self.start is not None
        mw, job, start = self.mw, self.job, self.start
        status, raw = start["status"], start["headers"]
        chunk, more = message.get("body", b""), message.get("more_body", False)
        if self.pending_length:  # no Content-Length: stored only when this one message is the whole body
            self.pending_length = False
            decision = (mw.decision(job.view, status, header_map(raw), body_length=len(chunk)) if not more
                        else StoreDecision(0.0, "streamed"))
            if decision.store:
                start["headers"] = [*raw, (b"content-length", str(len(chunk)).encode())]
                await self._finish(chunk, decision.ttl)
                return
            mw.not_stored(job, decision)
            await self._pass(status, raw)
            await self(message)
            return
        self.buffered.append(chunk)
        if sum(map(len, self.buffered)) > mw.config.max_body_bytes:  # lied about its length: give up storing
            mw.not_stored(job, StoreDecision(0.0, "too-large"))
            await self._pass(status, raw)
            await self.send({"type": "http.response.body", "body": b"".join(self.buffered), "more_body": more})
            return
        if not more:
            await self._finish(b"".join(self.buffered), self.ttl)

    async def _finish(self, body: bytes, ttl: float) -> None:
        mw, job, start = self.mw, self.job, self.start
        assert start is not None
        response = mw.responses.response(start["status"], start["headers"], body, ttl)
        if job.flight is not None and not job.flight.done():  # waiting requests for this key take it now
            job.flight.set_result((response, dict(job.view.headers)))
        try:
            value = await mw.responses.value_for_key(job.key, dict(job.view.headers), response, ttl, job.generation)
            await mw.cache.set(job.key, value, ttl=ttl)
            mw.stats["stored"] += 1
            if job.exchange.page is not None:
                mw.uncacheable.discard(job.exchange.page)
        except CacheError:
            mw.stats["store_errors"] += 1
        await mw.send_stored(response, job.view.method, job.exchange, self.send, job.label, age=False)
