"""One small test application written once and served both ways: as an ASGI app under uvicorn
(``examples.site.harness.serving``) and as a WSGI app under wsgiref's threaded server, each wrapped in the
precache middleware (so the WSGI and ASGI middleware run the same behavioural tests). Every handler counts
its calls, so a test can tell a cached answer from a fresh one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from conftest import free_port
from precache.web.rules import cookie_value

Reply = tuple[int, list[tuple[str, str]], bytes | Iterable[bytes]]


@dataclass
class SiteUnderTest:
    calls: Counter[str] = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)
    seen_cookies: list[str] = field(default_factory=list)

    def handle(self, path: str, headers: dict[str, str], method: str = "GET") -> Reply:
        self.calls[path if method in ("GET", "HEAD") else f"{method} {path}"] += 1
        n = self.calls[path]
        html = [("content-type", "text/html; charset=utf-8")]
        if method not in ("GET", "HEAD"):
            return self._unsafe(path)
        if path.startswith("/item"):
            return 200, [*html, ("cache-control", "max-age=60")], f"{path} {n}".encode()
        if path == "/public":
            return 200, [*html, ("cache-control", "max-age=60")], f"<p>public {n}</p>".encode()
        if path == "/slow":  # long enough for concurrent requests to overlap
            time.sleep(0.4)
            return 200, [*html, ("cache-control", "max-age=60")], f"slow {n}".encode()
        if path == "/noinfo":
            return 200, html, f"<p>noinfo {n}</p>".encode()
        if path == "/private":
            return 200, [*html, ("cache-control", "private, max-age=60")], f"private {n}".encode()
        if path == "/nostore":
            return 200, [*html, ("cache-control", "no-store")], f"nostore {n}".encode()
        if path == "/set-cookie":
            return 200, [*html, ("cache-control", "max-age=60"), ("set-cookie", "cart=abc; Path=/")], f"sc {n}".encode()
        if path == "/lang":
            lang = headers.get("accept-language", "none")
            return 200, [*html, ("cache-control", "max-age=60"), ("vary", "Accept-Language")], f"{lang} {n}".encode()
        if path == "/me":  # a careless app: personal page, but says max-age and not private
            user = cookie_value(headers.get("cookie"), "login") or "anonymous"
            return 200, [*html, ("cache-control", "max-age=60")], f"hello {user} {n}".encode()
        if path == "/auth":
            user = headers.get("authorization", "nobody")
            return 200, [*html, ("cache-control", "max-age=60")], f"auth {user} {n}".encode()
        if path == "/shared-auth":
            return 200, [*html, ("cache-control", "public, max-age=60")], f"shared {n}".encode()
        if path == "/echo-cookies":
            self.seen_cookies.append(headers.get("cookie", ""))
            return 200, [*html, ("cache-control", "max-age=60")], f"echo {n}".encode()
        if path == "/etag":
            return 200, [*html, ("cache-control", "max-age=60"), ("etag", '"v1"')], f"etag {n}".encode()
        if path == "/big":
            return 200, [("content-type", "application/octet-stream"), ("cache-control", "max-age=60")], b"x" * 300_000
        if path == "/sse":
            sse = [("content-type", "text/event-stream"), ("cache-control", "max-age=60")]
            return 200, sse, self._stream(b"data: 1\n\n")
        if path == "/stream":
            return 200, [("content-type", "text/plain"), ("cache-control", "max-age=60")], self._stream(b"first;")
        if path == "/release":
            self.release.set()
            return 200, [("content-type", "text/plain"), ("cache-control", "no-store")], b"ok"
        if path == "/error":
            return 500, [*html, ("cache-control", "max-age=60")], f"error {n}".encode()
        return 404, [*html, ("cache-control", "no-store")], b"not found"

    @staticmethod
    def _unsafe(path: str) -> Reply:
        """Answers to POST/PUT/PATCH/DELETE: ``/items`` creates (Location and Content-Location name the
        changed items), ``/elsewhere`` points to another origin, ``.../locked`` refuses, anything else is done."""
        text = [("content-type", "text/plain")]
        if path == "/items":
            return 201, [*text, ("location", "/item/1"), ("content-location", "item/2")], b"created"
        if path == "/elsewhere":
            return 303, [*text, ("location", "http://other.example/item/3")], b"see other"
        if path.endswith("/locked"):
            return 403, text, b"refused"
        return 200, text, b"done"

    def _stream(self, first: bytes) -> Iterator[bytes]:
        yield first
        self.release.wait(5)  # the client must get `first` before this returns: nothing is buffered
        self.release.clear()
        yield b"second"


def asgi_app(site: SiteUnderTest) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status, hdrs, body = await asyncio.to_thread(site.handle, scope["path"], headers, scope["method"])
        raw = [(k.encode(), v.encode()) for k, v in hdrs]
        if isinstance(body, bytes):
            raw.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.start", "status": status, "headers": raw})
        it = iter(body)
        while (chunk := await asyncio.to_thread(next, it, None)) is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def wsgi_app(site: SiteUnderTest) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        status, hdrs, body = site.handle(environ["PATH_INFO"], headers, environ["REQUEST_METHOD"])
        if isinstance(body, bytes):
            hdrs = [*hdrs, ("Content-Length", str(len(body)))]
            start_response(f"{status} X", hdrs)
            return [body]
        start_response(f"{status} X", hdrs)
        return body

    return app


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
