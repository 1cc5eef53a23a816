"""The live dashboard: ``/dashboard``, a login form, charts fed by server-sent events.

Why a cookie: the browser's ``EventSource`` cannot send an ``Authorization`` header, and a token in the
URL would land in server logs and browser history. So the API token is POSTed once through a form;
the answer sets an ``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/dashboard`` that holds an
expiry signed with a key derived from the token (HMAC-SHA256; rotating the token invalidates every
cookie). The token itself is never stored in the cookie, a URL or a log line.

The page and its chart library (uPlot, vendored from the npm registry under ``static/``) are served by
this router: nothing loads from a CDN. The service mounts :func:`dashboard_router`; an embedding
application can too, with its own summary provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

COOKIE = "precache_dashboard"
COOKIE_PATH = "/dashboard"
MAX_FORM_BYTES = 4096
_STATIC = {
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}

SummaryProvider = Callable[[float], Awaitable[dict[str, Any]]]
ModelsProvider = Callable[[], Awaitable[dict[str, Any]]]


def _asset(name: str) -> bytes:
    return resources.files("precache.monitoring").joinpath("static", name).read_bytes()


class CookieSigner:
    """Signs and checks ``<expiry>.<hmac>`` cookies with a key derived from the API token."""

    def __init__(self, token: str, lifetime: float = 12 * 3600, clock: Callable[[], float] = time.time) -> None:
        if not token:
            raise ValueError("the dashboard needs an API token")
        self._token = token.encode()
        self._key = hashlib.sha256(b"precache-dashboard-cookie\x00" + self._token).digest()
        self.lifetime = lifetime
        self.clock = clock

    def token_ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token)

    def issue(self) -> str:
        expires = str(int(self.clock() + self.lifetime))
        return f"{expires}.{self._mac(expires)}"

    def valid(self, cookie: str | None) -> bool:
        if not cookie or "." not in cookie:
            return False
        expires, mac = cookie.split(".", 1)
        if not expires.isdigit() or not hmac.compare_digest(mac, self._mac(expires)):
            return False
        return int(expires) > self.clock()

    def _mac(self, expires: str) -> str:
        return hmac.new(self._key, expires.encode(), hashlib.sha256).hexdigest()


class SignInThrottle:
    """Wrong tokens per client address (``per_client`` in ``window`` seconds) and for everyone together
    (``overall``): past either, sign-in answers 429 with ``Retry-After`` until the window has moved on.

    Why: the form let a client try 300 tokens in 0.3 s (issue 28). Per process (each worker counts its own),
    bounded to ``max_clients`` addresses (the oldest forgotten first)."""

    def __init__(self, per_client: int = 5, overall: int = 50, window: float = 60.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_client, self.overall, self.window, self.max_clients = per_client, overall, window, max_clients
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        now = self.clock()
        self._trim(self._all, now)
        mine = self._failures.get(client)
        if mine is not None:
            self._trim(mine, now)
        waits = [self._all[0] + self.window - now] if len(self._all) >= self.overall else []
        if mine is not None and len(mine) >= self.per_client:
            waits.append(mine[0] + self.window - now)
        return max(1, int(max(waits)) + 1) if waits else 0

    def failed(self, client: str) -> None:
        now = self.clock()
        self._all.append(now)
        mine = self._failures.pop(client, None) or deque()
        mine.append(now)
        self._failures[client] = mine
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


def _login_page(error: str = "") -> str:
    message = f'<p class="error" role="alert">{error}</p>' if error else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>precache: sign in</title>"
        '<link rel=stylesheet href="/dashboard/static/dashboard.css"></head><body class=login>'
        '<form method=post action="/dashboard/login"><h1>precache dashboard</h1>'
        '<label>API token <input type=password name=token autocomplete=current-password required></label>'
        f"{message}<button type=submit>Sign in</button></form></body></html>"
    )


def _dashboard_page() -> str:
    charts = [
        ("hitRate", "Cache hit ratio"), ("latency", "Prediction latency p50 / p95 (ms)"),
        ("accuracy", "Online accuracy (HR@5)"), ("efficiency", "Preload efficiency"),
        ("memory", "Memory: L1 + model (MiB)"), ("overhead", "Origin overhead from warming"),
    ]
    cells = "".join(
        f'<section class=chart><h2>{title} <span class=value id="v-{key}">–</span></h2>'
        f'<div class=plot id="c-{key}"></div></section>' for key, title in charts
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>precache dashboard</title>"
        '<link rel=stylesheet href="/dashboard/static/uPlot.min.css">'
        '<link rel=stylesheet href="/dashboard/static/dashboard.css"></head><body>'
        '<header><h1>precache</h1><span id=status>connecting…</span>'
        '<form method=post action="/dashboard/logout"><button>Sign out</button></form></header>'
        f'<main><div class=grid>{cells}</div>'
        '<section class=side><h2>Active model</h2><div id=model>–</div>'
        '<h2>Versions and gate decisions</h2><div class=scroll><table id=history></table></div>'
        '<h2>Alerts</h2><ul id=alerts><li>none</li></ul>'
        '<h2>Experiments</h2><div class=scroll><table id=experiments><tr><td>none running</td></tr></table></div>'
        '</section></main>'
        '<script src="/dashboard/static/uPlot.iife.min.js"></script>'
        '<script src="/dashboard/static/dashboard.js"></script></body></html>'
    )


async def _no_models() -> dict[str, Any]:
    return {}


def dashboard_router(
    token: str, summary: SummaryProvider, models: ModelsProvider = _no_models, *, interval: float = 2.0,
    window_ms: float = 60_000, throttle: SignInThrottle | None = None,
) -> APIRouter:
    """Routes under ``/dashboard``; ``summary(duration_ms)`` gives the JSON summary (merged over workers)."""
    signer = CookieSigner(token)
    throttle = throttle or SignInThrottle()
    router = APIRouter(prefix="/dashboard", include_in_schema=False)

    def signed_in(request: Request) -> bool:
        return signer.valid(request.cookies.get(COOKIE))

    @router.get("")
    async def page(request: Request) -> HTMLResponse:
        if not signed_in(request):
            return HTMLResponse(_login_page())
        return HTMLResponse(_dashboard_page(), headers={"Cache-Control": "no-store"})

    @router.post("/login")
    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        wait = throttle.retry_after(client)
        if wait:
            return HTMLResponse(_login_page("too many wrong tokens: try again later"), status_code=429,
                                headers={"Retry-After": str(wait)})
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return HTMLResponse(_login_page("request too large"), status_code=413)
        token_given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if not signer.token_ok(token_given):
            throttle.failed(client)
            return HTMLResponse(_login_page("wrong token"), status_code=401)
        response = RedirectResponse("/dashboard", status_code=303)
        response.set_cookie(
            COOKIE, signer.issue(), max_age=int(signer.lifetime), path=COOKIE_PATH, httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/dashboard", status_code=303)
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
        return response

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        media = _STATIC.get(name)
        if media is None:
            return Response(json.dumps({"error": "not_found", "detail": name}), 404, media_type="application/json")
        return Response(_asset(name), media_type=media, headers={"Cache-Control": "public, max-age=3600"})

    @router.get("/events")
    async def events(request: Request) -> Response:
        if not signed_in(request):
            return Response(json.dumps({"error": "unauthorized", "detail": "sign in at /dashboard"}), 401,
                            media_type="application/json")

        async def stream() -> AsyncIterator[bytes]:
            while not await request.is_disconnected():
                data = {"at": time.time(), "summary": await summary(window_ms), "models": await models()}
                yield f"data: {json.dumps(data, default=str)}\n\n".encode()
                await asyncio.sleep(interval)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router
