"""Run the Worker in edge/ for real: wrangler's deploy bundle (``--dry-run``) served by ``workerd`` on
loopback, and a real HTTP origin serving edge manifests and files as the service does.

Why the dry-run bundle: it is exactly what ``wrangler deploy`` would upload, so the tests check the
deployable artefact, and plain ``workerd serve`` runs it 2-3x faster than ``wrangler dev``.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, free_port

EDGE = ROOT / "edge"
WORKERD = EDGE / "node_modules" / ".bin" / "workerd"
WRANGLER = EDGE / "node_modules" / ".bin" / "wrangler"
FILES_PATH = "/api/ml/models/page-predictor/active/files/"
COMPAT_DATE = "2026-04-20"


def require_edge_tools() -> None:
    """Skip (fail under CI=true) when Node or edge/node_modules is missing: `make test` installs them."""
    missing = None
    if shutil.which("node") is None:
        missing = "Node.js is not installed"
    elif not WORKERD.exists() or not WRANGLER.exists():
        missing = "edge/node_modules is missing (run `make edge` or `npm ci` in edge/)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing} and CI=true requires the edge tests")
        pytest.skip(missing)


def build_worker(worker: str, out: Path, model_dir: Path | None = None) -> tuple[Path, int]:
    """``wrangler deploy --dry-run`` into ``out``; returns (out, gzip KiB wrangler reported)."""
    config = "wrangler.toml" if worker == "table" else "wrangler.ort.toml"
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "MODEL_DIR": str(model_dir or out / "no-model"),
           "CI": "true", "NO_COLOR": "1"}
    lock = EDGE / ".build.lock"
    with lock.open("w") as handle:  # the build step writes src/generated/: one build at a time
        fcntl.flock(handle, fcntl.LOCK_EX)
        proc = subprocess.run(
            [str(WRANGLER), "deploy", "--dry-run", "--config", config, "--outdir", str(out)],
            cwd=EDGE, env=env, capture_output=True, text=True, timeout=180,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"wrangler dry-run failed:\n{proc.stdout}\n{proc.stderr}")
    match = re.search(r"gzip: ([\d.]+) KiB", proc.stdout)
    return out, int(float(match.group(1))) if match else -1


def bundle_gzip_bytes(dist: Path) -> int:
    """gzip size of every module in the bundle (what the plan limits count)."""
    return sum(len(gzip.compress(p.read_bytes(), 6)) for p in dist.iterdir() if _module_kind(p))


def _module_kind(path: Path) -> str | None:
    if path.suffix == ".map" or path.name == "README.md" or path.name.endswith(".capnp") or not path.is_file():
        return None
    if path.suffix in (".js", ".mjs"):
        return "esModule"
    if path.suffix == ".wasm":
        return "wasm"
    return "data"


class Workerd:
    """``workerd serve`` of a dry-run bundle on a loopback port, with text bindings."""

    def __init__(self, dist: Path, main: str, bindings: dict[str, str]) -> None:
        self.dist = dist
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        modules = [f'(name = "{main}", esModule = embed "{main}")']
        for path in sorted(dist.iterdir()):
            kind = _module_kind(path)
            if kind and path.name != main:
                modules.append(f'(name = "{path.name}", {kind} = embed "{path.name}")')
        binds = [f"(name = {json.dumps(k)}, text = {json.dumps(v)})" for k, v in bindings.items()]
        self.config = dist / f"workerd-{self.port}.capnp"
        self.config.write_text(f"""using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "net", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:{self.port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [{", ".join(modules)}],
  compatibilityDate = "{COMPAT_DATE}",
  bindings = [{", ".join(binds)}],
  globalOutbound = "net",
);
""")
        self.log = dist / f"workerd-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0

    def start(self, timeout: float = 30.0) -> Workerd:
        t0 = time.monotonic()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([str(WORKERD), "serve", str(self.config), "--verbose"], stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dist)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"workerd exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if get(self.url + "/healthz", timeout=1)[0] == 200:
                    self.started_in = time.monotonic() - t0
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"workerd did not answer /healthz: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None


def request(method: str, url: str, body: Any = None, raw: bytes | None = None, timeout: float = 30,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json",
                                                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        payload = err.read()
        try:
            return err.code, json.loads(payload)
        except json.JSONDecodeError:
            return err.code, payload.decode(errors="replace")


def get(url: str, timeout: float = 30) -> tuple[int, Any]:
    return request("GET", url, timeout=timeout)


def post(url: str, body: Any, timeout: float = 30) -> tuple[int, Any]:
    return request("POST", url, body, timeout=timeout)


class Origin:
    """The service's model-file endpoint on loopback: ``GET {FILES_PATH}{file}`` from ``directory``,
    ETag = sha256 of the file, ``If-None-Match`` -> 304, ``Authorization: Bearer <token>`` required."""

    def __init__(self, directory: Path, token: str = "test-sync-token") -> None:
        self.directory = directory
        self.token = token
        self.hits: Counter[str] = Counter()
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
                with origin.lock:
                    path = origin.directory / name
                    data = path.read_bytes() if "/" not in name and path.is_file() else None
                    origin.hits[name] += 1
                if data is None:
                    self._send(404, b'{"error":"no such file"}', {})
                    return
                etag = f'"{hashlib.sha256(data).hexdigest()}"'
                if self.headers.get("if-none-match") == etag:
                    self._send(304, b"", {"ETag": etag})
                    return
                self._send(200, data, {"ETag": etag})

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
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


@contextlib.contextmanager
def running(dist: Path, main: str, bindings: dict[str, str]) -> Iterator[Workerd]:
    worker = Workerd(dist, main, bindings).start()
    try:
        yield worker
    finally:
        worker.stop()
