"""The edge tests' tools: skip without Node, and a real HTTP origin serving edge manifests and files as
the service's model-file endpoint does. The Worker itself runs through :mod:`precache.edge.workerd`.

Every Worker route but /healthz needs a token (issue 27): :func:`running` binds ``EDGE_TOKEN`` as the
Worker's ``INFERENCE_TOKEN`` and :func:`get` / :func:`post` / :func:`request` send it unless told otherwise
(``token=None`` sends none)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from precache.edge import workerd
from precache.edge.workerd import build_worker, bundle_gzip_bytes, http_json, tool

__all__ = ["EDGE_TOKEN", "Origin", "build_worker", "bundle_gzip_bytes", "get", "post", "request",
           "require_edge_tools", "running", "settled", "wait_until"]
FILES_PATH = "/api/ml/models/page-predictor/active/files/"
EDGE_TOKEN = "test-edge-token"


def require_edge_tools() -> None:
    """Skip (fail under CI=true) when Node or edge/node_modules is missing: `make test` installs them."""
    missing = None
    if shutil.which("node") is None:
        missing = "Node.js is not installed"
    elif not tool("workerd").exists() or not tool("wrangler").exists():
        missing = "edge/node_modules is missing (run `make edge` or `npm ci` in edge/)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing} and CI=true requires the edge tests")
        pytest.skip(missing)


def request(method: str, url: str, body: Any = None, raw: bytes | None = None, timeout: float = 30,
            headers: Mapping[str, str] | None = None, token: str | None = EDGE_TOKEN) -> tuple[int, Any]:
    return http_json(method, url, body, raw, timeout, headers, token)


def get(url: str, timeout: float = 30, token: str | None = EDGE_TOKEN) -> tuple[int, Any]:
    return http_json("GET", url, timeout=timeout, token=token)


def post(url: str, body: Any, timeout: float = 30, token: str | None = EDGE_TOKEN) -> tuple[int, Any]:
    return http_json("POST", url, body, timeout=timeout, token=token)


def settled(url: str, path: str = "/model", timeout: float = 60) -> tuple[int, Any]:
    """``GET path`` once the Worker has a model or its first sync has finished (syncs run in the background:
    a fresh Worker answers 503 "under way" until then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, info = get(url + "/model")
        if status == 200 or (not info["syncing"] and info["lastSync"]):
            break
        time.sleep(0.02)
    return get(url + path)


def wait_until(url: str, done: Any, timeout: float = 15) -> dict[str, Any]:
    """The Worker's ``GET /model`` once ``done(it)`` holds (AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    info: Any = None
    while time.monotonic() < deadline:
        info = get(url + "/model")[1]
        if done(info):
            return dict(info)
        time.sleep(0.05)
    raise AssertionError(f"not reached: {info}")


def running(dist: Path, worker: str, bindings: Mapping[str, str] | None = None, token: str | None = EDGE_TOKEN,
            v8_flags: tuple[str, ...] = ()) -> contextlib.AbstractContextManager[workerd.Workerd]:
    """workerd serving ``dist`` with ``token`` as its INFERENCE_TOKEN (the tests' default EDGE_TOKEN)."""
    return workerd.running(dist, worker, bindings, token, v8_flags)


class _QuietServer(ThreadingHTTPServer):
    """A stopped Worker drops its keep-alive connections: not an error worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Origin:
    """The service's model-file endpoint on loopback: ``GET {FILES_PATH}{file}`` from ``directory``,
    ETag = sha256 of the file, ``If-None-Match`` -> 304, ``Authorization: Bearer <token>`` required."""

    def __init__(self, directory: Path, token: str = "test-sync-token") -> None:
        self.directory = directory
        self.token = token
        self.hits: Counter[str] = Counter()
        self.delay = 0.0  # seconds each file (not the manifest) takes to start answering
        self.log: list[tuple[str, float, float]] = []  # (file, monotonic start, end) of every request
        self.then: Path | None = None  # serve this directory from right after the next manifest request
        self.lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real service behind uvicorn

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.headers.get("authorization") != f"Bearer {origin.token}":
                    self._send(401, b'{"error":"unauthorized"}', {})
                    return
                if not self.path.startswith(FILES_PATH):
                    self._send(404, b'{"error":"not found"}', {})
                    return
                name = self.path[len(FILES_PATH):]
                started = time.monotonic()
                if origin.delay and name != "edge-manifest.json":
                    time.sleep(origin.delay)
                with origin.lock:
                    path = origin.directory / name
                    data = path.read_bytes() if "/" not in name and path.is_file() else None
                    origin.hits[name] += 1
                    if name == "edge-manifest.json" and origin.then is not None:  # the race: switch right after
                        origin.directory, origin.then = origin.then, None
                try:
                    if data is None:
                        self._send(404, b'{"error":"no such file"}', {})
                        return
                    etag = f'"{hashlib.sha256(data).hexdigest()}"'
                    if self.headers.get("if-none-match") == etag:
                        self._send(304, b"", {"ETag": etag})
                        return
                    self._send(200, data, {"ETag": etag})
                finally:
                    with origin.lock:
                        origin.log.append((name, started, time.monotonic()))

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.manifest_url = f"http://127.0.0.1:{self.server.server_address[1]}{FILES_PATH}edge-manifest.json"

    def serve(self, directory: Path) -> None:
        """Switch the 'active version' the origin serves (what activating a registry version does)."""
        with self.lock:
            self.directory = directory

    def __enter__(self) -> Origin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


