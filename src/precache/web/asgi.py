"""``PrecacheMiddleware``: precache as one line around any ASGI app (Starlette, FastAPI, Django ASGI).

What it does per request (the rules live in :mod:`precache.web.rules`, the hints in :mod:`precache.web.hints`):

1. Finds the session (a header, else precache's own cookie, issued when absent after the caching
   decision: never stored in a cached response, never a reason not to cache, and only on a response that
   says ``private``/``no-store`` or that it makes ``private``, :mod:`precache.web.privacy`).
2. ``GET``/``HEAD`` without credentials are looked up in the :class:`~precache.cache.PredictiveCache`
   (``Vary`` selects the variant; ``If-None-Match`` gets a 304). On a miss the application sees the
   request *without cookies, credentials or conditional headers*, so what it answers cannot be personal;
   the answer is stored when HTTP allows it. Requests with credentials go to the application untouched
   and are stored only when the response says ``public``. Streamed, event-stream and large responses pass
   through unbuffered. A non-error answer to an unsafe method (``POST``, ``PUT``, ``PATCH``, ``DELETE``…)
   drops the stored target URI and its same-origin ``Location`` / ``Content-Location`` (RFC 9111 §4.4).
3. A page view (a page path, status < 400, not a browser prefetch) is told to the session history, the
   warmer and the cache's access events (``context.currentPath``), and the response gets prefetch hints.
4. The warmer preloads predicted pages by calling the application in process with an anonymous request
   (no network hop, never a user's credentials), :mod:`precache.web.warm`. Hints and warming fetch only
   what :class:`~precache.web.marks.PrefetchPolicy` allows (an allow rule plus the application's marks).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from precache.cache.events import AccessEvent
from precache.cache.layered import PredictiveCache
from precache.history import HistoryStore, LocalHistory, MemoryHistories
from precache.traces.paths import is_asset, normalize_path
from precache.warming.resolver import NotPreloadable
from precache.warming.warmer import Warmer, WarmerConfig
from precache.web.cached import ResponseCache, invalidation_targets
from precache.web.capture import Capture, Exchange, HeaderList, Job, Shared, header_map, is_html
from precache.web.config import WebConfig
from precache.web.hints import RULES_MEDIA_TYPE, HintPlanner, Predictor, link_header
from precache.web.marks import PageMarks, PrefetchPolicy, RouteMarks, routes_marks
from precache.web.privacy import with_session_cookie
from precache.web.rules import (
    NOT_MODIFIED_HEADERS,
    RequestView,
    StoreDecision,
    cookie_names,
    cookie_value,
    etag_matches,
    lookup_bypass,
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
from precache.web.stored import StoredResponse
from precache.web.warm import AppResolver, Template, collect

_ANONYMOUS_DROP = frozenset({b"cookie", b"authorization", b"proxy-authorization", b"if-none-match",
                             b"if-modified-since", b"if-match", b"if-unmodified-since", b"if-range"})
"""Request headers the application never sees on the cached path."""
_NOT_TEMPLATE = frozenset({b"sec-purpose", b"purpose", b"content-length", b"content-type", b"connection",
                           b"keep-alive", b"te", b"upgrade", b"x-forwarded-for", b"forwarded"})
"""Not copied from a visitor's request into the anonymous warming requests."""

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
    ``route_marks``: ``page -> True/False/None``, the application's own marks of safe/unsafe routes (default:
    found on a Starlette/FastAPI app's routes decorated with :func:`~precache.web.marks.no_prefetch` /
    :func:`~precache.web.marks.prefetch_safe`).
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
        route_marks: RouteMarks | None = None,
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
        self.marks = PageMarks(cfg.max_marked, cfg.keep_query)
        self.policy = PrefetchPolicy(cfg.allow, self.uncacheable, self.marks,
                                     route_marks if route_marks is not None else routes_marks(app))
        self._nonces = BoundedSet(cfg.max_sessions)
        self.hints = HintPlanner(cfg.hints, predictor, self.budgets, self.policy)
        self.stats: Counter[str] = Counter()
        self.responses = ResponseCache(self.cache, cfg, self.stats)
        self._ignore = [re.compile(p) for p in cfg.ignore_cookies]
        self._credential_headers = frozenset(h.lower() for h in cfg.credential_headers)
        self._drop = _ANONYMOUS_DROP | {h.encode("latin-1") for h in self._credential_headers}
        self._renders: dict[str, asyncio.Future[Shared | None]] = {}
        self.template: Template | None = None
        self._started = False
        self.warmer: Warmer | None = None
        if predictor is not None and warm:
            self.warmer = Warmer(self.cache, AppResolver(self), self.cache.clock, predictor=predictor,
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
        anonymous = [(n, v) for n, v in scope.get("headers", []) if n.lower() not in self._drop]
        if exchange.page is not None and method == "GET" and not exchange.prefetch:
            self.template = Template(scope["scheme"], headers.get("host", ""), scope.get("server"),
                                     scope.get("root_path", ""), scope.get("http_version", "1.1"),
                                     [(n, v) for n, v in anonymous if n.lower() not in _NOT_TEMPLATE],
                                     scope.get("state"))
        store = cfg.cache_responses and method == "GET"
        target = {"path": scope["path"], "query": scope.get("query_string", b"").decode("latin-1")}
        if bypass is None:
            job = Job(RequestView(method, header_map(anonymous)), key, exchange, "miss", store, **target)
            await self._through_cache(scope, receive, send, job, anonymous)
            return
        context = self._context(exchange)
        if context is not None and self.cache.events.handlers:
            self.cache.events.emit(AccessEvent(self.cache.clock.now(), key, exchange.session_id, context,
                                               "origin", 0.0, 0))
        label = "pass" if bypass == "method" else "bypass"
        self.stats[label] += 1
        await self.app(scope, receive, Capture(self, Job(view, key, exchange, label, store, **target), send))

    @staticmethod
    def _context(exchange: Exchange) -> dict[str, str] | None:
        return {"currentPath": exchange.page} if exchange.page and not exchange.prefetch else None

    async def _through_cache(self, scope: Scope, receive: Receive, send: Send, job: Job,
                             anonymous: HeaderList) -> None:
        """An anonymous ``GET``/``HEAD``: the stored response, a render another request is already doing for
        this key, or the application (seeing the request without credentials) and a store."""
        exchange, method = job.exchange, job.view.method
        context = self._context(exchange)
        found, job.generation = await self.responses.lookup(job.key, dict(job.view.headers),
                                                            exchange.session_id if context else None, context)
        if found is None and exchange.page not in self.uncacheable:
            found, job.flight = await self._join_render(job.key, method, dict(job.view.headers))
        if found is not None:
            self.stats["hit"] += 1
            await self.send_stored(found, method, exchange, send)
            return
        self.stats["miss"] += 1
        try:
            await self.app(dict(scope, headers=anonymous), receive, Capture(self, job, send))
        finally:
            flight = job.flight
            if flight is not None:
                if not flight.done():
                    flight.set_result(None)
                if self._renders.get(job.key) is flight:
                    del self._renders[job.key]

    async def _join_render(self, key: str, method: str, headers: dict[str, str],
                           ) -> tuple[StoredResponse | None, asyncio.Future[Shared | None] | None]:
        """Single flight for misses in this process: the first ``GET`` of a missing key renders it (and gets
        a future to publish the result on); requests for the same key meanwhile wait for that render and
        take its response when it was stored and is the same variant, else render for themselves."""
        running = self._renders.get(key)
        if running is None:
            if method != "GET":
                return None, None
            future: asyncio.Future[Shared | None] = asyncio.get_running_loop().create_future()
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

    def _exchange(self, scope: Scope, headers: dict[str, str]) -> Exchange:
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
        url = f"{scope['scheme']}://{headers.get('host', '')}{path}"
        return Exchange(session_id, new, page, "prefetch" in headers.get("sec-purpose", "").lower(),
                         scope["scheme"] in ("https", "wss"), headers, url)

    def _anonymous_cookies(self, headers: dict[str, str]) -> frozenset[str]:
        names = cookie_names(headers.get("cookie"))
        return frozenset(n for n in names if n == self.config.session_cookie
                         or any(p.fullmatch(n) for p in self._ignore))

    def _key(self, scheme: str, headers: dict[str, str], scope: Scope) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        return self.responses.key_for(scheme, headers.get("host", ""), scope["path"], query)

    def key_for(self, scheme: str, host: str, path: str, query: str) -> str:
        return self.responses.key_for(scheme, host, path, query)

    def prefetch_allowed(self, page: str) -> bool:
        """May ``page`` be prefetched or warmed (:class:`~precache.web.marks.PrefetchPolicy`)?"""
        return self.policy.allows(page)

    # -- decisions --------------------------------------------------------------------------------
    def not_stored(self, job: Job, decision: StoreDecision) -> None:
        """Count why a response was not stored; a page whose *anonymous* response HTTP forbade storing is
        remembered as uncacheable (never hinted or warmed). A response to a request with credentials says
        nothing about what anonymous visitors get, so it never marks the page."""
        self.stats[f"not_stored:{decision.reason}"] += 1
        page = job.exchange.page
        if (page is not None and decision.reason not in ("off", "method", "request-no-store")
                and job.view.credentials() is None):
            self.uncacheable.add(page)

    def decision(self, view: RequestView, status: int, headers: dict[str, str],
                 body_length: int | None = None) -> StoreDecision:
        cfg = self.config
        return store_decision(view, status, headers, now=time.time(), heuristic_ttl=cfg.heuristic_ttl,
                              max_ttl=cfg.max_ttl, max_body_bytes=cfg.max_body_bytes, body_length=body_length)

    async def invalidate_after(self, job: Job, raw: HeaderList) -> None:
        """RFC 9111 §4.4, for a non-error response to an unsafe method."""
        scheme, host = job.exchange.url.partition("://")[0], job.exchange.headers.get("host", "")
        targets = invalidation_targets(scheme, host, job.path, job.query, header_map(raw))
        await self.responses.invalidate([self.responses.key_for(scheme, host, p, q) for p, q in targets])

    # -- responses --------------------------------------------------------------------------------
    async def send_stored(self, response: StoredResponse, method: str, exchange: Exchange, send: Send,
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
        if exchange.page is not None and response.status == 200 and is_html(raw):
            self.marks.scan(exchange.url, response.body)
        await send({"type": "http.response.start", "status": status,
                    "headers": self.decorate(status, raw, exchange, status_label)})
        await send({"type": "http.response.body", "body": body})

    def decorate(self, status: int, raw: HeaderList, exchange: Exchange, status_label: str) -> HeaderList:
        """Headers added after the caching decision: the session cookie (only where no shared cache may
        keep it), the status header, and for a page view the prefetch hints (recording the view first)."""
        cfg = self.config
        out = list(raw)
        page = exchange.page
        if exchange.new_session and exchange.session_id and not cfg.session_header:
            cookie = session_cookie(cfg.session_cookie, exchange.session_id, cfg.session_max_age, exchange.secure)
            out, issued = with_session_cookie(out, cookie, page is not None and status < 400)
            if not issued:
                exchange.session_id = None  # never told to the browser: not a session to record
        if cfg.status_header:
            out.append((cfg.status_header.lower().encode("latin-1"), status_label.encode()))
        if page is None or exchange.session_id is None or status >= 400:
            return out
        if not exchange.prefetch:
            self._record_view(exchange.session_id, page)
        if not self.hints.enabled or not is_html(raw) or status not in (200, 304):
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
        """The per-session speculation rules (``no-store``). It is also where a visitor whose page came from
        a shared cache, without a cookie, gets a session: this response may carry the cookie."""
        headers = header_map(scope.get("headers", []))
        exchange = self._exchange(dict(scope, method="GET", path="/"), headers)
        params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        page_param = params.get("page", [""])[0]
        urls: list[str] = []
        issue = exchange.new_session and not self.config.session_header
        if exchange.session_id and page_param.startswith("/") and (issue or not exchange.new_session):
            page = normalize_path(page_param, self.config.keep_query)
            session_id = exchange.session_id
            nonce = params.get("n", [""])[0][:32]
            repeat = nonce in self._nonces
            self._nonces.add(nonce)
            # shown from the prefetch, the HTTP cache or a shared cache (a new visitor): a page view
            if params.get("view") == ["1"] or repeat or exchange.new_session:
                self._beacon_view(scope, headers, session_id, page)
            history = await self._history(session_id)
            if not history or history[-1] != page:
                history.append(page)
            urls = self.hints.choose(session_id, history)
        self.stats["rules"] += 1
        body = self.hints.rules_json(urls)
        out = [(b"content-type", RULES_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]
        if issue and exchange.session_id:
            cfg = self.config
            cookie = session_cookie(cfg.session_cookie, exchange.session_id, cfg.session_max_age, exchange.secure)
            out.append((b"set-cookie", cookie.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def _beacon_view(self, scope: Scope, headers: dict[str, str], session_id: str, page: str) -> None:
        self._record_view(session_id, page)
        self.stats["beacon_views"] += 1
        if self.cache.events.handlers:
            path, _, query = page.partition("?")
            key = self.responses.key_for(scope["scheme"], headers.get("host", ""), path, query)
            self.cache.events.emit(AccessEvent(self.cache.clock.now(), key, session_id,
                                               {"currentPath": page, "served": "browser-prefetch"}, "l1", 0.0, 0))

    # -- warming: the application in process, anonymously -----------------------------------------
    async def render_for_cache(self, page: str) -> bytes:
        """Fetch ``page`` from the application as an anonymous ``GET`` (no cookies, no credentials) and
        return what belongs under its key; raise :class:`NotPreloadable` when HTTP forbids storing it."""
        template = self.template
        if template is None:
            raise NotPreloadable("no request seen yet")
        status, raw, body = await collect(self.app, template.scope(page), self.config.max_body_bytes)
        view = RequestView("GET", header_map(template.headers))
        headers = header_map(raw)
        length = len(body) if "content-length" not in headers else None  # the whole body is in hand
        decision = self.decision(view, status, headers, body_length=length)
        if not decision.store:
            self.not_stored(Job(view, "", _warm_exchange(page, template), "warm", False), decision)
            raise NotPreloadable(decision.reason)
        self.stats["warm_rendered"] += 1
        path, _, query = page.partition("?")
        key = self.responses.key_for(template.scheme, template.host, path, query)
        if length is not None:
            raw = [*raw, (b"content-length", str(length).encode())]
        response = self.responses.response(status, raw, body, decision.ttl)
        if status == 200 and is_html(raw):
            self.marks.scan(f"{template.scheme}://{template.host}{path}", body)
        return await self.responses.value_for_key(key, dict(view.headers), response, decision.ttl)


def _warm_exchange(page: str, template: Template) -> Exchange:
    return Exchange(None, False, page, True, template.scheme == "https", {}, "")


