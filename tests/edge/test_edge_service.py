"""``precache serve`` forwarding page predictions to the edge Worker, and falling back when it is down
or slow (issue 19): a real service process, a real redis-server, the Worker in workerd."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
from edge_harness import build_worker, require_edge_tools, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the service tests' process helpers
from serve_harness import running_service, service_env, train_model

from conftest import RedisProcess
from precache.edge.build import export_predictor
from precache.edge.workerd import free_port
from precache.models import load_predictor


@pytest.fixture(scope="module")
def model_and_worker(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_edge_tools()
    root = tmp_path_factory.mktemp("edge-service")
    model_dir = train_model(root / "ppm")
    export_predictor(load_predictor(model_dir), "edge-v1", "table", 10).write(root / "edge-model")
    dist, _ = build_worker("table", root / "dist", root / "edge-model")
    return model_dir, dist


def ask(client: httpx.Client, session: str, page: str, **options: object) -> dict[str, object]:
    response = client.post("/api/ml/predict", json={"sessionId": session, "type": "page",
                                                    "context": {"currentPath": page}, "options": options})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_service_forwards_to_the_edge_and_falls_back_when_it_is_down(
        redis_server: RedisProcess, model_and_worker: tuple[Path, Path]) -> None:
    model_dir, dist = model_and_worker
    with running(dist, "table") as worker:
        env = service_env(redis_server.url, model_dir, ML_EDGE_INFERENCE_URL=worker.url,
                          ML_EDGE_INFERENCE_TIMEOUT_MS="2000")
        with running_service(env) as service, service.client() as api:
            ask(api, "s1", "/entry0")
            edge = ask(api, "s1", "/a3")
            ask(api, "s2", "/entry0", useEdgeInference=False)
            local = ask(api, "s2", "/a3", useEdgeInference=False)
            assert edge["answeredBy"] == "edge" and edge["modelVersion"] == "edge-v1"
            assert local["answeredBy"] == "service"
            assert edge["predictions"] == local["predictions"]  # same model, same history (kept by the service)
            worker.stop()
            down = ask(api, "s1", "/hub")
            assert down["answeredBy"] == "service" and down["predictions"]
            metrics = api.get("/api/ml/metrics").json()
            assert metrics["edgeAnswered"] >= 1 and metrics["edgeErrors"] >= 1


def test_slow_edge_costs_one_short_timeout_then_the_breaker_opens(
        redis_server: RedisProcess, model_and_worker: tuple[Path, Path]) -> None:
    model_dir, _ = model_and_worker
    port = free_port()
    with socket.socket() as silent:  # accepts and never answers
        silent.bind(("127.0.0.1", port))
        silent.listen(64)
        env = service_env(redis_server.url, model_dir, ML_EDGE_INFERENCE_URL=f"http://127.0.0.1:{port}",
                          ML_EDGE_INFERENCE_TIMEOUT_MS="50")
        with running_service(env) as service, service.client() as api:
            t0 = time.perf_counter()
            answers = [ask(api, f"s{i}", "/entry0") for i in range(6)]
            elapsed = time.perf_counter() - t0
            assert all(a["answeredBy"] == "service" and a["predictions"] for a in answers)
            metrics = api.get("/api/ml/metrics").json()
            assert metrics["edgeTimeouts"] == 3 and metrics["edgeSkippedBreakerOpen"] == 3, metrics
            assert elapsed < 3.0, elapsed
