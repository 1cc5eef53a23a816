"""Start real ``precache serve`` processes on loopback for the service tests (no fixtures: plain helpers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from conftest import free_port, hub_sessions
from precache.processes import end_process_group

TOKEN = "test-api-token-0123456789"
TRAINING_KEY = "test-training-key-9876543210"
ROOT = Path(__file__).resolve().parents[2]


def train_model(directory: Path) -> Path:
    """A small PPM page predictor on the hub workload: after /a3 comes /hub, and after /a3 /hub comes /b3
    (the page after the hub depends on the page before it, so answers show whether the history was kept)."""
    from precache.models import build_predictor

    model = build_predictor("ppm")
    model.fit(hub_sessions(300))
    model.save(directory)
    return directory


def train_optimizer(directory: Path) -> Path:
    """A small cache optimizer (LightGBM -> ONNX): hot keys re-read every few seconds, a tail of one-offs."""
    import random

    from precache.models.optimizer.labels import build_dataset, trace_from_requests
    from precache.models.optimizer.train import TrainConfig, train
    from precache.traces.model import Request

    rng = random.Random(0)
    requests, t = [], 1_000_000.0
    for i in range(3000):
        t += rng.expovariate(2.0)
        path = f"/hot/p{rng.randrange(30)}.html" if rng.random() < 0.6 else f"/cold/x{i}.gif"
        requests.append(Request(time=t, client=f"c{rng.randrange(20)}", path=path, size=1000 + rng.randrange(500)))
    trace = trace_from_requests(requests)
    train(build_dataset(trace, 0, len(trace), horizon=60.0), directory, TrainConfig(n_estimators=10))
    return directory


def service_env(redis_url: str, model_dir: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECACHE_", "ML_", "MODEL_"))}
    env.update({"REDIS_URL": redis_url, "PRECACHE_API_TOKEN": TOKEN, "ML_TRAINING_API_KEY": TRAINING_KEY,
                "MODEL_STORAGE_PATH": str(Path(model_dir or ROOT).parent / "no-storage"),
                "PRECACHE_REDIS_PREFIX": f"t{free_port()}:"})
    if model_dir is not None:
        env["PRECACHE_MODEL_DIR"] = str(model_dir)
    env.update(extra)
    return {k: v for k, v in env.items() if v != ""}


class Service:
    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc, self.port = proc, port
        self.url = f"http://127.0.0.1:{port}"
        self.stopped = False

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0)

    def stop(self) -> None:
        """End the whole process group (uvicorn's workers must not outlive a parent killed after a timeout);
        a second call does nothing."""
        if self.stopped:
            return
        self.stopped = True
        end_process_group(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


def _start(env: dict[str, str], args: tuple[str, ...], port: int | None) -> Service:
    port = port or free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "precache"), "serve", "--port", str(port), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return Service(proc, port)


def _wait_ready(service: Service, deadline: float) -> None:
    proc = service.proc
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"precache serve exited with {proc.returncode}: {out}")
        try:
            if httpx.get(f"{service.url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("precache serve did not answer /healthz within 30 s")
        time.sleep(0.1)


@contextmanager
def running_services(*specs: tuple[dict[str, str], tuple[str, ...]]) -> Iterator[list[Service]]:
    """One ``precache serve`` per ``(env, args)``, all started before any is waited for (their start-ups
    overlap: a two-replica test pays about one start-up), each until the block ends or its ``stop()``."""
    services: list[Service] = []
    try:
        for env, args in specs:
            services.append(_start(env, args, None))
        deadline = time.monotonic() + 30
        for service in services:
            _wait_ready(service, deadline)
        yield services
    finally:
        for service in services:  # all asked to stop first: their graceful stops overlap too
            if not service.stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.proc.pid, signal.SIGTERM)
        for service in services:
            service.stop()


@contextmanager
def running_service(env: dict[str, str], *args: str, port: int | None = None) -> Iterator[Service]:
    """``precache serve`` in its own process until the block ends; waits for /healthz."""
    service = _start(env, args, port)
    try:
        _wait_ready(service, time.monotonic() + 30)
        yield service
    finally:
        service.stop()
