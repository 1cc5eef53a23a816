"""``PrecacheMiddleware``: precache as one line around any ASGI app (Starlette, FastAPI, Django ASGI).

What it does per request (the rules live in :mod:`precache.web.rules`, the hints in :mod:`precache.web.hints`):

1. Finds the session (a header, else precache's own cookie, issued when absent after the caching
   decision: never stored in a cached response, never a reason not to cache).
2. ``GET``/``HEAD`` without credentials are looked up in the :class:`~precache.cache.PredictiveCache`
   (``Vary`` selects the variant; ``If-None-Match`` gets a 304). On a miss the application sees the
   request *without cookies, credentials or conditional headers*, so what it answers cannot be personal;
   the answer is stored when HTTP allows it. Requests with credentials go to the application untouched
   and are stored only when the response says ``public``. Streamed, event-stream and large responses pass
   through unbuffered.
3. A page view (a page path, status < 400, not a browser prefetch) is told to the session history, the
   warmer and the cache's access events (``context.currentPath``), and the response gets prefetch hints.
4. The warmer preloads predicted pages by calling the application in process with an anonymous request
   (no network hop, never a user's credentials).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from precache.cache.errors import CacheError
from precache.cache.events import AccessEvent
from precache.cache.layered import PredictiveCache
from precache.history import HistoryStore, LocalHistory, MemoryHistories
from precache.traces.paths import is_asset, normalize_path
from precache.warming.resolver import NotPreloadable
from precache.warming.warmer import Warmer, WarmerConfig
from precache.web import stored as codec
from precache.web.config import WebConfig
from precache.web.hints import RULES_MEDIA_TYPE, HintPlanner, Predictor, link_header
from precache.web.rules import (
    HOP_BY_HOP,
    NOT_MODIFIED_HEADERS,
    RequestView,
    StoreDecision,
    cookie_names,
    cookie_value,
    etag_matches,
    lookup_bypass,
    make_etag,
    store_decision,
    variant_suffix,
    vary_names,
)
from precache.web.sessions import (
    BoundedSet,
    HintBudgets,
    new_session_id,
    session_cookie,
    valid_session_id,
)
from precache.web.stored import StoredResponse, VaryMarker

_ANONYMOUS_DROP = frozenset({b"cookie", b"authorization", b"proxy-authorization", b"if-none-match",
                             b"if-modified-since", b"if-match", b"if-unmodified-since", b"if-range"})
"""Request headers the application never sees on the cached path."""
_NOT_TEMPLATE = frozenset({b"sec-purpose", b"purpose", b"content-length", b"content-type", b"connection",
                           b"keep-alive", b"te", b"upgrade", b"x-forwarded-for", b"forwarded"})
"""Not copied from a visitor's request into the anonymous warming requests."""
_KEY_SAFE = "/-._~!$&'()*+,;=:@%"

HeaderList = list[tuple[bytes, bytes]]
_Shared = tuple[StoredResponse, dict[str, str]]
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
class _Template:
    """How an in-process warming request looks: the last anonymous page view's origin and headers."""

    scheme: str
    host: str
    server: Any
    root_path: str
    http_version: str
    headers: HeaderList
    state: Any = None


@dataclass(slots=True)
class _Exchange:
    """One request's session facts, used to decorate whatever response it gets."""

    session_id: str | None
    new_session: bool
    page: str | None
    prefetch: bool
    secure: bool
    headers: dict[str, str]


class PrecacheMiddleware:
    """``app = PrecacheMiddleware(app, cache, predictor=model, config=WebConfig(...))``.

    ``cache``: a :class:`~precache.cache.PredictiveCache` (default: an in-memory one this middleware owns
    and closes). ``predictor``: anything with ``predict(history, k) -> [(page, probability)]`` (a loaded
    precache model); without it there are no hints and no warming. ``warm``: preload predicted pages
    through the application in process (``warmer_config`` sets its threshold and budgets). ``histories``:
    the session-history store (:mod:`precache.history`). A page view is written once to this process's
    :attr:`history` (read by hints and warmer): ``histories`` when in-process (``MemoryHistories``), else our
    own; a store shared between processes (Redis) also gets it, off the response path, so other processes
    and the service's ``/predict`` see one history per session; the rules route reads that one.
    ``stats`` counts what happened (``hit``, ``miss``, ``bypass``, ``pass``, ``stored``, ``not_stored:<why>``…).
    """

    def __init__(
        self,
        app: ASGIApp,
        cache: PredictiveCache | None = None,
        *,
        predictor: Predictor | None = None,
        config: WebConfig | None = None,
        warm: bool = True,
        warmer_config: WarmerConfig | None = None,
        histories: HistoryStore | None = None,
    ) -> None:
        self.app = app
        self.config = cfg = config if config is not None else WebConfig()
        self.history: LocalHistory = (histories if isinstance(histories, LocalHistory)
                                      else MemoryHistories(cfg.max_sessions, cfg.max_history))
        self.shared: HistoryStore | None = None if isinstance(histories, LocalHistory) else histories
        self._tasks: set[asyncio.Task[None]] = set()
        self._own_cache = cache is None
        self.cache = cache if cache is not None else PredictiveCache()
        self.budgets = HintBudgets(cfg.max_sessions)
        self.uncacheable = BoundedSet(cfg.max_uncacheable)
        self._nonces = BoundedSet(cfg.max_sessions)
        self.hints = HintPlanner(cfg.hints, predictor, self.budgets, self.uncacheable)
        self.stats: Counter[str] = Counter()
        self._ignore = [re.compile(p) for p in cfg.ignore_cookies]
        self._credential_headers = frozenset(h.lower() for h in cfg.credential_headers)
        self._drop = _ANONYMOUS_DROP | {h.encode("latin-1") for h in self._credential_headers}
        self._renders: dict[str, asyncio.Future[_Shared | None]] = {}
        self._template: _Template | None = None
        self._started = False
        self.warmer: Warmer | None = None
        if predictor is not None and warm:
            self.warmer = Warmer(self.cache, _AppResolver(self), self.cache.clock, predictor=predictor,
                                 config=warmer_config, history=self.history)

    # -- lifecycle --------------------------------------------------------------------------------
    def _start(self) -> None:
        self._started = True
        if self.warmer is not None:
            self.cache.subscribe(self.warmer.handle_event)
            self.warmer.start()

    async def aclose(self) -> None:
        """Stop the warmer and close the cache if this middleware created it (ASGI lifespan shutdown
        calls this; call it yourself when the server does not run the lifespan protocol)."""
        if self.warmer is not None:
            await self.warmer.stop()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._own_cache:
            await self.cache.close()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.aclose()
            await send(message)

        await self.app(scope, receive, wrapped_send)

    # -- the request ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._started:
            self._start()
        cfg = self.config
        if self.hints.enabled and cfg.hints.mode in ("rules", "both") and scope["path"] == cfg.hints.route:
            await self._rules(scope, send)
            return
        headers = header_map(scope.get("headers", []))
        exchange = self._exchange(scope, headers)
        method = scope["method"]
        view = RequestView(method, headers, self._anonymous_cookies(headers), self._credential_headers)
        bypass = lookup_bypass(view) if cfg.cache_responses else "disabled"
        key = self._key(scope["scheme"], headers, scope)
        context = {"currentPath": exchange.page} if exchange.page and not exchange.prefetch else None
        event_session = exchange.session_id if context else None
        anonymous = [(n, v) for n, v in scope.get("headers", []) if n.lower() not in self._drop]
        if exchange.page is not None and method == "GET" and not exchange.prefetch:
            self._template = _Template(scope["scheme"], headers.get("host", ""), scope.get("server"),
                                       scope.get("root_path", ""), scope.get("http_version", "1.1"),
                                       [(n, v) for n, v in anonymous if n.lower() not in _NOT_TEMPLATE],
                                       scope.get("state"))
        flight: asyncio.Future[_Shared | None] | None = None
        if bypass is None:
            anonymous_map = header_map(anonymous)
            found = await self._lookup(key, anonymous_map, event_session, context)
            if found is None and exchange.page not in self.uncacheable:
                found, flight = await self._join_render(key, method, anonymous_map)
            if found is not None:
                self.stats["hit"] += 1
                await self._send_stored(found, method, exchange, send)
                return
            app_scope: Scope = dict(scope, headers=anonymous)
            app_view = RequestView(method, anonymous_map)
            status = "miss"
        else:
            if context is not None and self.cache.events.handlers:
                self.cache.events.emit(AccessEvent(self.cache.clock.now(), key, event_session, context,
                                                   "origin", 0.0, 0))
            app_scope, app_view, status = scope, view, ("pass" if bypass == "method" else "bypass")
        self.stats[status] += 1
        store = cfg.cache_responses and method == "GET"
        try:
            await self._forward(app_scope, receive, send, app_view, key, exchange, status, store, flight)
        finally:
            if flight is not None:
                if not flight.done():
                    flight.set_result(None)
                if self._renders.get(key) is flight:
                    del self._renders[key]

    async def _join_render(self, key: str, method: str, headers: dict[str, str],
                           ) -> tuple[StoredResponse | None, asyncio.Future[_Shared | None] | None]:
        """Single flight for misses in this process: the first ``GET`` of a missing key renders it (and gets
        a future to publish the result on); requests for the same key meanwhile wait for that render and
        take its response when it was stored and is the same variant, else render for themselves."""
        running = self._renders.get(key)
        if running is None:
            if method != "GET":
                return None, None
            future: asyncio.Future[_Shared | None] = asyncio.get_running_loop().create_future()
            self._renders[key] = future
            return None, future
        shared = await asyncio.shield(running)
        if shared is None:
            return None, None
        response, leader_headers = shared
        names = vary_names(response.header("vary"))
        if names and variant_suffix(names, headers) != variant_suffix(names, leader_headers):
            return None, None
        self.stats["joined"] += 1
        return response, None

    def _exchange(self, scope: Scope, headers: dict[str, str]) -> _Exchange:
        cfg = self.config
        session_id = None
        if cfg.session_header:
            session_id = valid_session_id(headers.get(cfg.session_header.lower()))
        new = False
        if session_id is None:
            session_id = valid_session_id(cookie_value(headers.get("cookie"), cfg.session_cookie))
            if session_id is None:
                session_id, new = new_session_id(), True
        path = scope["path"]
        page = None
        if scope["method"] in ("GET", "HEAD") and not is_asset(path):
            query = scope.get("query_string", b"").decode("latin-1")
            page = normalize_path(path + ("?" + query if query and cfg.keep_query else ""), cfg.keep_query)
        return _Exchange(session_id, new, page, "prefetch" in headers.get("sec-purpose", "").lower(),
                         scope["scheme"] in ("https", "wss"), headers)

    def _anonymous_cookies(self, headers: dict[str, str]) -> frozenset[str]:
        names = cookie_names(headers.get("cookie"))
        return frozenset(n for n in names if n == self.config.session_cookie
                         or any(p.fullmatch(n) for p in self._ignore))

    def _key(self, scheme: str, headers: dict[str, str], scope: Scope) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        return self._key_for(scheme, headers.get("host", ""), scope["path"], query)

    def _key_for(self, scheme: str, host: str, path: str, query: str) -> str:
        target = quote(path, safe=_KEY_SAFE) + ("?" + query if query else "")
        return f"{self.config.key_prefix}{scheme}://{host.lower()}{target}"

    # -- the cache --------------------------------------------------------------------------------
    async def _lookup(self, key: str, headers: dict[str, str], session_id: str | None,
                      context: Any) -> StoredResponse | None:
        now = time.time()
        try:
            value = codec.decode(await self.cache.get(key, session_id, context))
            if isinstance(value, VaryMarker):
                if now >= value.expires_at:
                    return None
                value = codec.decode(await self.cache.get(self._variant_key(key, value.names, headers)))
        except CacheError:
            self.stats["lookup_errors"] += 1
            return None
        if isinstance(value, StoredResponse) and value.fresh(now):
            return value
        return None

    @staticmethod
    def _variant_key(key: str, names: tuple[str, ...] | list[str], headers: dict[str, str]) -> str:
        return f"{key}|{variant_suffix(names, headers)}"

    def _stored(self, status: int, raw: HeaderList, body: bytes, ttl: float) -> StoredResponse:
        now = time.time()
        headers = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in raw]
        headers = [(n, v) for n, v in headers if n not in HOP_BY_HOP]
        if self.config.etag and not any(n == "etag" for n, _ in headers):
            headers.append(("etag", make_etag(body)))
        return StoredResponse(status, headers, body, now, now + ttl)

    async def _store(self, key: str, request_headers: dict[str, str], response: StoredResponse,
                     ttl: float) -> bytes:
        """Store ``response`` (its variant, when it varies) and return what belongs under ``key``."""
        names = vary_names(response.header("vary"))
        if not names:
            return codec.encode(response)
        await self.cache.set(self._variant_key(key, names, request_headers), codec.encode(response), ttl=ttl)
        return codec.encode(VaryMarker(tuple(names), response.expires_at))

    def _not_stored(self, exchange_page: str | None, decision: StoreDecision) -> None:
        self.stats[f"not_stored:{decision.reason}"] += 1
        if exchange_page is not None and decision.reason not in ("off", "method", "request-no-store"):
            self.uncacheable.add(exchange_page)

    def _decision(self, view: RequestView, status: int, headers: dict[str, str]) -> StoreDecision:
        cfg = self.config
        return store_decision(view, status, headers, now=time.time(), heuristic_ttl=cfg.heuristic_ttl,
                              max_ttl=cfg.max_ttl, max_body_bytes=cfg.max_body_bytes)

    # -- responses --------------------------------------------------------------------------------
    async def _forward(self, scope: Scope, receive: Receive, send: Send, view: RequestView, key: str,
                       exchange: _Exchange, status_label: str, store: bool,
                       flight: asyncio.Future[_Shared | None] | None = None) -> None:
        """Run the application; buffer and store a storable answer, pass anything else straight through."""
        buffered: list[bytes] = []
        start: Message | None = None
        passing = False
        limit = self.config.max_body_bytes

        async def capture(message: Message) -> None:
            nonlocal start, passing
            kind = message["type"]
            if kind == "http.response.start":
                raw: HeaderList = list(message.get("headers", []))
                decision = (self._decision(view, message["status"], header_map(raw)) if store
                            else StoreDecision(0.0, "off"))
                if decision.store:
                    start = dict(message, headers=raw)
                    start["precache_ttl"] = decision.ttl
                    return
                self._not_stored(exchange.page, decision)
                passing = True
                await send(dict(message, headers=self._decorate(message["status"], raw, exchange,
                                                                status_label)))
                return
            if kind == "http.response.body" and start is not None and not passing:
                buffered.append(message.get("body", b""))
                if sum(map(len, buffered)) > limit:  # lied about its length: give up storing
                    passing = True
                    self._not_stored(exchange.page, StoreDecision(0.0, "too-large"))
                    raw = start["headers"]
                    await send({"type": "http.response.start", "status": start["status"],
                                "headers": self._decorate(start["status"], raw, exchange, status_label)})
                    await send({"type": "http.response.body", "body": b"".join(buffered),
                                "more_body": message.get("more_body", False)})
                    return
                if not message.get("more_body", False):
                    await self._finish(start, b"".join(buffered), key, view, exchange, status_label, send, flight)
                return
            await send(message)

        await self.app(scope, receive, capture)

    async def _finish(self, start: Message, body: bytes, key: str, view: RequestView, exchange: _Exchange,
                      status_label: str, send: Send, flight: asyncio.Future[_Shared | None] | None) -> None:
        ttl = float(start["precache_ttl"])
        response = self._stored(start["status"], start["headers"], body, ttl)
        if flight is not None and not flight.done():  # waiting requests for this key take it now
            flight.set_result((response, dict(view.headers)))
        try:
            await self.cache.set(key, await self._store(key, dict(view.headers), response, ttl), ttl=ttl)
            self.stats["stored"] += 1
            if exchange.page is not None:
                self.uncacheable.discard(exchange.page)
        except CacheError:
            self.stats["store_errors"] += 1
        await self._send_stored(response, view.method, exchange, send, status_label, age=False)

    async def _send_stored(self, response: StoredResponse, method: str, exchange: _Exchange, send: Send,
                           status_label: str = "hit", age: bool = True) -> None:
        if etag_matches(exchange.headers.get("if-none-match"), response.header("etag")):
            status = 304
            headers = [(n, v) for n, v in response.headers if n in NOT_MODIFIED_HEADERS]
            body = b""
        else:
            status, headers = response.status, list(response.headers)
            body = b"" if method == "HEAD" else response.body
        if age:
            headers.append(("age", str(max(0, int(time.time() - response.stored_at)))))
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
        await send({"type": "http.response.start", "status": status,
                    "headers": self._decorate(status, raw, exchange, status_label)})
        await send({"type": "http.response.body", "body": body})

    def _decorate(self, status: int, raw: HeaderList, exchange: _Exchange, status_label: str) -> HeaderList:
        """Headers added after the caching decision: the session cookie, the status header, and for a page
        view the prefetch hints (recording the view first)."""
        cfg = self.config
        out = list(raw)
        if exchange.new_session and exchange.session_id and not cfg.session_header:
            cookie = session_cookie(cfg.session_cookie, exchange.session_id, cfg.session_max_age, exchange.secure)
            out.append((b"set-cookie", cookie.encode("latin-1")))
        if cfg.status_header:
            out.append((cfg.status_header.lower().encode("latin-1"), status_label.encode()))
        page = exchange.page
        if page is None or exchange.session_id is None or status >= 400:
            return out
        if not exchange.prefetch:
            self._record_view(exchange.session_id, page)
        if not self.hints.enabled or not _is_html(raw) or status not in (200, 304):
            return out
        mode = cfg.hints.mode
        if mode in ("rules", "both"):
            out.append((b"speculation-rules", self.hints.rules_header(page, exchange.prefetch).encode("latin-1")))
        if mode in ("link", "both") and not exchange.prefetch:
            urls = self.hints.choose(exchange.session_id, self.history.read(exchange.session_id))
            if urls:
                out.append((b"link", link_header(urls).encode("latin-1")))
        return out

    def _record_view(self, session_id: str, page: str) -> None:
        """One page view: one write to this process's history (the warmer reads the same store), and one to
        the store shared between processes, if any."""
        self.history.add(session_id, (page,))
        self.stats["views"] += 1
        if self.warmer is not None:
            self.warmer.viewed(session_id, page)
        if self.shared is not None:  # the shared store is written off the response path
            task = asyncio.get_running_loop().create_task(self._append_shared(session_id, page))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _append_shared(self, session_id: str, page: str) -> None:
        assert self.shared is not None
        try:
            await self.shared.append(session_id, [page])
        except Exception:  # a shared-store failure costs that page in other processes' view, never the page
            self.stats["history_errors"] += 1

    async def _history(self, session_id: str) -> list[str]:
        """The session's pages, oldest first: from the shared store when there is one (any process may
        have served the session), else this process's own."""
        if self.shared is not None:
            try:
                return list(await self.shared.get(session_id))
            except Exception:
                self.stats["history_errors"] += 1
        return self.history.read(session_id)

    # -- the speculation rules route --------------------------------------------------------------
    async def _rules(self, scope: Scope, send: Send) -> None:
        headers = header_map(scope.get("headers", []))
        exchange = self._exchange(dict(scope, method="GET", path="/"), headers)
        params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        page_param = params.get("page", [""])[0]
        urls: list[str] = []
        if not exchange.new_session and exchange.session_id and page_param.startswith("/"):
            page = normalize_path(page_param, self.config.keep_query)
            session_id = exchange.session_id
            nonce = params.get("n", [""])[0][:32]
            repeat = nonce in self._nonces
            self._nonces.add(nonce)
            if params.get("view") == ["1"] or repeat:  # shown from the prefetch or HTTP cache: a page view
                self._record_view(session_id, page)
                self.stats["beacon_views"] += 1
                if self.cache.events.handlers:
                    key = self._key(scope["scheme"], headers, dict(scope, path=page, query_string=b""))
                    self.cache.events.emit(AccessEvent(self.cache.clock.now(), key, session_id,
                                                       {"currentPath": page, "served": "browser-prefetch"},
                                                       "l1", 0.0, 0))
            history = await self._history(session_id)
            if not history or history[-1] != page:
                history.append(page)
            urls = self.hints.choose(session_id, history)
        self.stats["rules"] += 1
        body = self.hints.rules_json(urls)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", RULES_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]})
        await send({"type": "http.response.body", "body": body})

    # -- warming: the application in process, anonymously -----------------------------------------
    async def render_for_cache(self, page: str) -> bytes:
        """Fetch ``page`` from the application as an anonymous ``GET`` (no cookies, no credentials) and
        return what belongs under its key; raise :class:`NotPreloadable` when HTTP forbids storing it."""
        template = self._template
        if template is None:
            raise NotPreloadable("no request seen yet")
        path, _, query = page.partition("?")
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": template.http_version,
            "method": "GET", "scheme": template.scheme, "path": path, "raw_path": quote(path).encode(),
            "query_string": query.encode("latin-1"), "root_path": template.root_path,
            "headers": list(template.headers), "client": None, "server": template.server,
        }
        if template.state is not None:
            scope["state"] = dict(template.state)
        status, raw, body = await _collect(self.app, scope, self.config.max_body_bytes)
        view = RequestView("GET", header_map(template.headers))
        decision = self._decision(view, status, header_map(raw))
        if not decision.store:
            self._not_stored(page, decision)
            raise NotPreloadable(decision.reason)
        self.stats["warm_rendered"] += 1
        key = self._key_for(template.scheme, template.host, path, query)
        response = self._stored(status, raw, body, decision.ttl)
        return await self._store(key, dict(view.headers), response, decision.ttl)


def _is_html(raw: HeaderList) -> bool:
    for name, value in raw:
        if name.lower() == b"content-type":
            return value.split(b";")[0].strip().lower() in (b"text/html", b"application/xhtml+xml")
    return False


async def _collect(app: ASGIApp, scope: Scope, limit: int) -> tuple[int, HeaderList, bytes]:
    """Call an ASGI app and gather its whole answer (body beyond ``limit`` bytes is dropped, which makes
    its Content-Length disagree and so it is not stored)."""
    sent = False
    done = asyncio.Event()
    status = 500
    headers: HeaderList = []
    chunks: list[bytes] = []
    size = 0

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers, size
        if message["type"] == "http.response.start":
            status, headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            size += len(body)
            if size <= limit:
                chunks.append(body)
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    body = b"".join(chunks)
    if size > limit:
        headers = [(n, v) for n, v in headers if n.lower() != b"content-length"]
    return status, headers, body


class _AppResolver:
    """The warmer's resolver: a predicted page -> (its cache key, a loader calling the app in process)."""

    def __init__(self, middleware: PrecacheMiddleware) -> None:
        self._mw = middleware

    def resolve(self, page: str) -> tuple[str, Callable[[], Awaitable[bytes]]] | None:
        mw = self._mw
        template = mw._template
        if template is None or not mw.hints.safe(page):
            return None
        path, _, query = page.partition("?")
        key = mw._key_for(template.scheme, template.host, path, query)

        async def load() -> bytes:
            return await mw.render_for_cache(page)

        return key, load

