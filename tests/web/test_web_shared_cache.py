"""No shared-cacheable response carries a session cookie: visitors go through a small real caching proxy on
loopback (a naive CDN: it stores what ``max-age``/``s-maxage`` allow unless ``private``/``no-store``/
``no-cache``, Set-Cookie and all, and answers later requests from its copy whoever asks) in front of the
ASGI and the WSGI middleware. No visitor may ever receive another visitor's session id."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from examples.site.harness import serving
from web_harness import SiteUnderTest, asgi_app, serve_wsgi, wsgi_app

from conftest import free_port
from precache.cache import PredictiveCache
from precache.web import HintConfig, PrecacheMiddleware, PrecacheWSGIMiddleware, WebConfig
from precache.web.rules import parse_cache_control

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class CachingProxy:
    """A shared cache keyed by path, honouring the response's freshness and ``private``/``no-store``."""

    def __init__(self, upstream: str) -> None:
        self.host, port = upstream.removeprefix("http://").split(":")
        self.port = int(port)
        self.store: dict[str, tuple[float, int, list[tuple[str, str]], bytes]] = {}
        self.hits = 0
        self.lock = threading.Lock()

    def lifetime(self, status: int, headers: list[tuple[str, str]]) -> float:
        cc = parse_cache_control(", ".join(v for k, v in headers if k.lower() == "cache-control"))
        if status != 200 or {"private", "no-store", "no-cache"} & cc.keys():
            return 0.0
        value = cc.get("s-maxage") or cc.get("max-age") or "0"
        return float(value) if value.isdigit() else 0.0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with proxy.lock:
                    entry = proxy.store.get(self.path)
                if entry is not None and entry[0] > time.monotonic():
                    proxy.hits += 1
                    self._reply(entry[1], entry[2], entry[3])
                    return
                conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=20)
                conn.request("GET", self.path, headers={k: v for k, v in self.headers.items() if k.lower() not in _HOP})
                reply = conn.getresponse()
                body = reply.read()
                headers = [(k, v) for k, v in reply.getheaders() if k.lower() not in _HOP | {"content-length"}]
                conn.close()
                ttl = proxy.lifetime(reply.status, headers)
                if ttl > 0:
                    with proxy.lock:
                        proxy.store[self.path] = (time.monotonic() + ttl, reply.status, headers, body)
                self._reply(reply.status, headers, body)

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _proxy(upstream: str) -> Iterator[tuple[str, CachingProxy]]:
    proxy = CachingProxy(upstream)
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), proxy.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", proxy
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["asgi", "wsgi"])
def behind_proxy(request: pytest.FixtureRequest) -> Iterator[tuple[str, CachingProxy]]:
    site = SiteUnderTest()
    config = WebConfig(hints=HintConfig(mode="rules"))
    predictor = _Always()
    if request.param == "asgi":
        with serving(PrecacheMiddleware(asgi_app(site), PredictiveCache(), predictor=predictor, config=config,
                                        warm=False)) as base:
            yield from _proxy(base)
    else:
        wmw = PrecacheWSGIMiddleware(wsgi_app(site), PredictiveCache(), predictor=predictor, config=config,
                                     warm=False)
        try:
            with serve_wsgi(wmw) as base:
                yield from _proxy(base)
        finally:
            wmw.close()


class _Always:
    def predict(self, history: Any, k: int) -> list[tuple[str, float]]:
        return [("/public", 0.9), ("/noinfo", 0.9)]


def _sid(response: httpx.Response) -> str | None:
    for value in response.headers.get_list("set-cookie"):
        if value.startswith("precache_sid="):
            return value.split(";")[0].split("=", 1)[1]
    return None


def test_a_shared_cache_never_hands_one_visitors_session_id_to_another(
        behind_proxy: tuple[str, CachingProxy]) -> None:
    base, proxy = behind_proxy
    received: dict[int, set[str]] = {}
    for visitor in range(6):
        ids: set[str] = set()
        with httpx.Client(base_url=base, timeout=20) as c:
            for path in ("/public", "/noinfo", "/public", "/lang", "/private", "/noinfo", "/big"):
                r = c.get(path)
                assert r.status_code == 200, path
                sid = _sid(r)
                if sid is not None:
                    ids.add(sid)
                    c.cookies.set("precache_sid", sid)
                    cc = parse_cache_control(r.headers.get("cache-control"))
                    assert "private" in cc or "no-store" in cc, (path, r.headers)
                if "speculation-rules" in r.headers:  # the browser's rules fetch, a no-store response
                    rules = c.get(r.headers["speculation-rules"].strip('"'))
                    if (sid := _sid(rules)) is not None:
                        ids.add(sid)
                        c.cookies.set("precache_sid", sid)
        received[visitor] = ids
    assert proxy.hits >= 10, "the proxy served nothing from its cache: the test shows nothing"
    every = [sid for ids in received.values() for sid in ids]
    assert len(every) == len(set(every)), "a session id reached two visitors"
    assert all(len(ids) == 1 for ids in received.values()), received  # each visitor got one session, once
