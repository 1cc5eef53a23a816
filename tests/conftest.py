"""Fixtures shared by every test: a real redis-server on loopback and access to the real traces."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from precache.processes import free_port
from precache.traces.model import Session

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PRECACHE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The heaviest modules first (a slow-marked test counts as 5): under xdist's ``--dist loadscope`` each
    module runs whole on one worker, so a slow module that starts last runs alone while the other worker
    idles. The sort is stable: the tests of a module keep their order."""
    weight: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        weight[module] = weight.get(module, 0) + (5 if item.get_closest_marker("slow") else 1)
    items.sort(key=lambda item: -weight[item.nodeid.split("::", 1)[0]])


def shared_file(relative: str) -> Path:
    """Path to a real trace in ../shared/data: skips the test when absent, fails under CI=true."""
    path = SHARED_DATA / relative
    if not path.exists():
        message = f"real trace {path} is not here (../shared/data absent)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true requires it")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Debian chromium for the module's tests; fails (never skips) when chromium is missing."""
    from examples.site.harness import headless_chromium

    stack = ExitStack()
    try:
        launched = stack.enter_context(headless_chromium())
    except RuntimeError as exc:
        pytest.fail(str(exc))
    with stack:
        yield launched


def hub_sessions(n: int, seed: int = 0) -> list[Session]:
    """``/entry -> /a_j -> /hub -> /b_j``: the page after the hub depends on the page before it, which a
    first-order Markov model cannot see and an attention model can."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        j = rng.randrange(6)
        out.append(Session(str(i), f"c{i}", float(i), [f"/entry{rng.randrange(2)}", f"/a{j}", "/hub", f"/b{j}"]))
    return out


class RedisProcess:
    """A real redis-server on a loopback port that tests may stop and start again (fault tests)."""

    def __init__(self, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test`, which installs it")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One redis-server for the whole run; tests isolate themselves by key prefix or FLUSHDB."""
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    return redis_server.url


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server of the test's own, for tests that kill, pause or slow it."""
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


# --- A local 3-node Redis Cluster for the cluster tests (module-scoped: started and stopped per module) ---


def _cluster_ports() -> list[int]:
    """Three free ports whose cluster-bus ports (port + 10000) fit and are also free."""
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port()
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real 3-master Redis Cluster on loopback; yields a node URL for ``RedisTier(cluster=True)``."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.fail("redis-server/redis-cli are not installed: run `make test`, which installs them")
    workdir: Path = tmp_path_factory.mktemp("cluster")
    ports = _cluster_ports()
    procs = []
    try:
        for port in ports:
            procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--cluster-enabled", "yes", "--cluster-config-file", str(workdir / f"nodes-{port}.conf"),
                 "--cluster-node-timeout", "2000", "--dir", str(workdir), "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        for port in ports:
            _wait_ping(cli, port)
        subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [
                subprocess.run([cli, "-p", str(p), "cluster", "info"], capture_output=True, text=True,
                               timeout=5).stdout
                for p in ports
            ]
            if all("cluster_state:ok" in s for s in states):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("redis cluster did not reach cluster_state:ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def _wait_ping(cli: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True, timeout=5)
        if out.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise RuntimeError(f"redis node on port {port} did not start")
