"""HttpOriginResolver against a real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port
from precache.warming import HttpOriginResolver, OriginError


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/missing":
            self.send_response(404)
            self.end_headers()
            return
        body = f"page {self.path}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def origin() -> Iterator[str]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/"
    server.shutdown()
    server.server_close()


async def test_resolves_pages_to_keys_and_fetches_bodies(origin: str) -> None:
    async with HttpOriginResolver(origin, key_prefix="page:") as resolver:
        resolved = resolver.resolve("/shuttle/countdown/")
        assert resolved is not None
        key, loader = resolved
        assert key == "page:/shuttle/countdown/"
        assert await loader() == b"page /shuttle/countdown/"


async def test_error_status_raises_origin_error(origin: str) -> None:
    async with HttpOriginResolver(origin) as resolver:
        resolved = resolver.resolve("/missing")
        assert resolved is not None
        with pytest.raises(OriginError, match="404"):
            await resolved[1]()
        assert resolver.resolve("http://elsewhere/x") is None
