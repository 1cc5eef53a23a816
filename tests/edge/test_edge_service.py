"""``precache serve`` forwarding page predictions to the edge Worker, and falling back when it is down
or slow (issue 19): a real service process, a real redis-server, the Worker in workerd."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import httpx
import pytest
from edge_harness import EDGE_TOKEN, build_worker, require_edge_tools, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the service tests' process helpers
from serve_harness import TOKEN, TRAINING_KEY, running_service, service_env, train_model

from conftest import RedisProcess
from precache.edge.build import export_predictor
from precache.models import load_predictor
from precache.processes import free_port


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
                          ML_EDGE_INFERENCE_TIMEOUT_MS="2000", ML_EDGE_INFERENCE_TOKEN=EDGE_TOKEN)
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_activation_publishes_and_the_worker_syncs_from_the_real_service(redis_server: RedisProcess,
                                                                          tmp_path: Path) -> None:
    """The whole path: registered versions without edge files -> activated through the service's API (which
    writes the version's edge files) -> the service's model-file endpoint -> the Worker's sync (ETag, Bearer
    token); activating another version swaps the Worker's model; the registry still verifies both."""
    require_edge_tools()
    from conftest import hub_sessions
    from precache.edge.manifest import EDGE_MANIFEST
    from precache.models import build_predictor
    from precache.registry import ModelRegistry

    registry = ModelRegistry(tmp_path / "store", tmp_path / "backup")  # registering only: no edge files
    models = {}
    for kind in ("ppm", "markov"):
        model = build_predictor(kind)
        model.fit(hub_sessions(300))
        model.save(tmp_path / kind)
        info = registry.register("page-predictor", tmp_path / kind)
        assert not (info.path / EDGE_MANIFEST).exists()
        models[info.version] = model
    first, second = sorted(models)
    dist, _ = build_worker("table", tmp_path / "dist")
    env = service_env(redis_server.url, None, MODEL_STORAGE_PATH=str(tmp_path / "store"),
                      MODEL_BACKUP_PATH=str(tmp_path / "backup"))
    history = ["/entry0", "/a3", "/hub"]
    with running_service(env) as service, service.client(TRAINING_KEY) as trainer:
        url = f"{service.url}/api/ml/models/page-predictor/active/files/edge-manifest.json"
        with running(dist, "table", {"MODEL_MANIFEST_URL": url, "MODEL_SYNC_TOKEN": TOKEN,
                                     "SYNC_INTERVAL_MS": "50"}) as worker:
            for version in (first, second):
                response = trainer.post(f"/api/ml/models/page-predictor/activate/{version}")
                assert response.status_code == 200, response.text
                assert (registry.get("page-predictor", version).path / EDGE_MANIFEST).is_file()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    status, info = worker.get("/model")
                    if status == 200 and info["version"] == version:
                        break
                    time.sleep(0.05)
                assert info["version"] == version and info["source"] == "sync", info
                status, body = worker.post("/predict", {"context": {"history": history}, "options": {"topK": 3}})
                assert status == 200
                got = [(p["page"], p["probability"]) for p in body["predictions"]]
                assert got == models[version].predict(history, 3)
    assert registry.verify("page-predictor") == [(first, None), (second, None)]
