"""Run the Worker in ``edge/`` locally: wrangler's deploy bundle served by ``workerd`` on loopback.

Why the dry-run bundle: ``wrangler deploy --dry-run`` writes exactly what ``wrangler deploy`` would
upload, so what runs here is the deployable artefact, and plain ``workerd serve`` runs it 2-3x faster than
``wrangler dev``. Used by the edge tests and ``bench/bench_edge.py``; needs ``npm ci`` in ``edge/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from precache.processes import free_port

EDGE = Path(os.environ.get("PRECACHE_EDGE_DIR", Path(__file__).resolve().parents[3] / "edge"))
COMPAT_DATE = "2026-04-20"
WORKERS = {"table": ("wrangler.toml", "index.js"), "ort": ("wrangler.ort.toml", "ort-worker.js")}


def tool(name: str) -> Path:
    return EDGE / "node_modules" / ".bin" / name


def build_worker(worker: str, out: Path, model_dir: Path | None = None) -> tuple[Path, int]:
    """``wrangler deploy --dry-run`` of ``worker`` ("table" | "ort") bundling ``model_dir`` (or no model)
    into ``out``; returns (out, the gzip KiB wrangler reported)."""
    config, _ = WORKERS[worker]
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "MODEL_DIR": str(model_dir or out / "no-model"),
           "CI": "true", "NO_COLOR": "1"}
    with (EDGE / ".build.lock").open("w") as handle:  # the build step writes src/generated/: one at a time
        fcntl.flock(handle, fcntl.LOCK_EX)
        proc = subprocess.run(
            [str(tool("wrangler")), "deploy", "--dry-run", "--config", config, "--outdir", str(out)],
            cwd=EDGE, env=env, capture_output=True, text=True, timeout=300,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"wrangler dry-run failed:\n{proc.stdout}\n{proc.stderr}")
    match = re.search(r"gzip: ([\d.]+) KiB", proc.stdout)
    return out, int(float(match.group(1))) if match else -1


def _module_kind(path: Path) -> str | None:
    if path.suffix == ".map" or path.name == "README.md" or path.suffix in (".capnp", ".log") or not path.is_file():
        return None
    if path.suffix in (".js", ".mjs"):
        return "esModule"
    return "wasm" if path.suffix == ".wasm" else "data"


def bundle_gzip_bytes(dist: Path) -> int:
    """gzip size of every module in a dry-run bundle (what the plans' size limits count)."""
    return sum(len(gzip.compress(p.read_bytes(), 6)) for p in dist.iterdir() if _module_kind(p))


def http_json(method: str, url: str, body: Any = None, raw: bytes | None = None, timeout: float = 30,
              headers: Mapping[str, str] | None = None, token: str | None = None) -> tuple[int, Any]:
    """One request (with ``Authorization: Bearer <token>`` when ``token`` is given); returns (status, decoded
    JSON body or text). HTTP errors are returned, not raised."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    auth = {"authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json", **auth, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        payload = err.read()
        try:
            return err.code, json.loads(payload)
        except json.JSONDecodeError:
            return err.code, payload.decode(errors="replace")


class Workerd:
    """``workerd serve`` of a dry-run bundle on a loopback port, with text bindings (env vars). ``token`` is
    bound as the Worker's ``INFERENCE_TOKEN`` (every route but /healthz asks for it) and kept as ``.token``."""

    def __init__(self, dist: Path, worker: str, bindings: Mapping[str, str] | None = None,
                 token: str | None = None, v8_flags: tuple[str, ...] = ()) -> None:
        self.dist = dist
        self.token = token
        bindings = {**({"INFERENCE_TOKEN": token} if token else {}), **(bindings or {})}
        main = WORKERS[worker][1]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        modules = [f'(name = "{main}", esModule = embed "{main}")']
        for path in sorted(dist.iterdir()):
            kind = _module_kind(path)
            if kind and path.name != main:
                modules.append(f'(name = "{path.name}", {kind} = embed "{path.name}")')
        binds = [f"(name = {json.dumps(k)}, text = {json.dumps(v)})" for k, v in (bindings or {}).items()]
        self.config = dist / f"workerd-{self.port}.capnp"
        self.config.write_text(f"""using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "net", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:{self.port}", http = (), service = "main")],
  v8Flags = [{", ".join(json.dumps(f) for f in v8_flags)}],
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

    def start(self, timeout: float = 60.0) -> Workerd:
        """Start and wait until ``/healthz`` answers (``started_in``: seconds from spawn)."""
        t0 = time.monotonic()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([str(tool("workerd")), "serve", str(self.config), "--verbose"],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=self.dist)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"workerd exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                if http_json("GET", self.url + "/healthz", timeout=1)[0] == 200:
                    self.started_in = time.monotonic() - t0
                    return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"workerd did not answer /healthz: {self.log.read_text()[-2000:]}")

    def get(self, path: str, timeout: float = 30) -> tuple[int, Any]:
        """GET ``path`` with this Worker's token."""
        return http_json("GET", self.url + path, timeout=timeout, token=self.token)

    def post(self, path: str, body: Any, timeout: float = 30) -> tuple[int, Any]:
        """POST ``body`` as JSON to ``path`` with this Worker's token."""
        return http_json("POST", self.url + path, body, timeout=timeout, token=self.token)

    def rss_bytes(self) -> tuple[int, int]:
        """(current, peak) resident set size of the workerd process (VmRSS, VmHWM of /proc/PID/status):
        one process serves the one isolate, so this bounds the isolate's memory from above."""
        assert self.proc is not None
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    def rss_parts(self) -> dict[str, int]:
        """Current resident bytes by kind: ``anon`` (heap, stacks: the isolate and the runtime) and ``file``
        (pages of the workerd binary and other mapped files, shared with any other process that maps them)."""
        assert self.proc is not None
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return {"anon": int(fields["RssAnon"].split()[0]) * 1024, "file": int(fields["RssFile"].split()[0]) * 1024}

    def cpu_ns(self) -> dict[str, int]:
        """CPU time (ns) each thread of the workerd process has run so far (``/proc/PID/task/*/schedstat``,
        the kernel's accounting). workerd's own per-request accounting (a tail worker's ``cpuTime``) reads 0
        outside Cloudflare, so this is how a request's CPU is measured locally: the delta across it."""
        assert self.proc is not None
        out = {}
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out[task.name] = int((task / "schedstat").read_text().split()[0])
        return out

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None


@contextlib.contextmanager
def running(dist: Path, worker: str, bindings: Mapping[str, str] | None = None,
            token: str | None = None, v8_flags: tuple[str, ...] = ()) -> Iterator[Workerd]:
    process = Workerd(dist, worker, bindings, token, v8_flags).start()
    try:
        yield process
    finally:
        process.stop()
