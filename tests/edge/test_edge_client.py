"""The service side of edge inference: forward to the Worker, fall back when it is down, slow or refuses."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from edge_harness import EDGE_TOKEN, build_worker, require_edge_tools, running

from conftest import hub_sessions
from precache.edge.build import export_predictor
from precache.edge.client import EdgeInference
from precache.models import build_predictor
from precache.processes import free_port
from precache.resilience import CircuitBreaker


@pytest.fixture(scope="module")
def worker_dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    require_edge_tools()
    model = build_predictor("ppm")
    model.fit(hub_sessions(300))
    root = tmp_path_factory.mktemp("edge-client")
    export_predictor(model, "hub-ppm", "table", 4).write(root / "model")
    dist, _ = build_worker("table", root / "dist", root / "model")
    return dist, model


async def test_forwards_and_falls_back_when_down(worker_dist: tuple[Path, object]) -> None:
    dist, model = worker_dist
    with running(dist, "table") as worker:
        anonymous = EdgeInference(worker.url, timeout=2.0, breaker=CircuitBreaker(3, 30.0))
        assert await anonymous.predict("s", "/hub", [], 3) is None  # no token: refused, answered locally
        assert anonymous.stats.errors == 1 and anonymous.stats.last_error == "HTTP 401"
        await anonymous.aclose()
        edge = EdgeInference(worker.url, token=EDGE_TOKEN, timeout=2.0, breaker=CircuitBreaker(3, 30.0))
        answer = await edge.predict("s", "/hub", ["/entry0", "/a2"], 3)
        assert answer is not None and answer.model_version == "hub-ppm"
        assert answer.predictions == model.predict(["/entry0", "/a2", "/hub"], 3)  # type: ignore[attr-defined]
        assert await edge.predict("s", "/hub", [], 9) is None  # topK above the exported k: answer locally
        assert edge.stats.rejected == 1 and edge.breaker.state == "closed"
    # the worker is gone: three failures open the breaker, then no request is even tried
    for _ in range(3):
        assert await edge.predict("s", "/hub", [], 3) is None
    assert edge.breaker.state == "open" and edge.stats.errors == 3
    t0 = time.perf_counter()
    assert await edge.predict("s", "/hub", [], 3) is None
    assert edge.stats.skipped_open == 1 and time.perf_counter() - t0 < 0.05
    await edge.aclose()


async def test_slow_edge_times_out_quickly() -> None:
    port = free_port()
    with socket.socket() as server:  # accepts connections and never answers
        server.bind(("127.0.0.1", port))
        server.listen(16)
        edge = EdgeInference(f"http://127.0.0.1:{port}", timeout=0.05, breaker=CircuitBreaker(2, 30.0))
        t0 = time.perf_counter()
        assert await edge.predict("s", "/a", [], 3) is None
        assert await edge.predict("s", "/a", [], 3) is None
        assert await edge.predict("s", "/a", [], 3) is None
        elapsed = time.perf_counter() - t0
        assert edge.stats.timeouts == 2 and edge.stats.skipped_open == 1
        assert elapsed < 1.0, elapsed
        await edge.aclose()
