"""``/api/ml/predict`` applies a session's experiment arm on a real ``precache serve`` (real redis-server):
the control arm of a warming experiment gets no preloads, a threshold arm's threshold wins over the caller's,
a model-version arm is answered by that version; a version that does not exist is refused when the experiment
is created (422), and one deleted afterwards stops its arm safely (the active model answers, counted)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the service tests' process helpers
from serve_harness import TOKEN, TRAINING_KEY, Service, running_service, service_env, train_model

from precache.experiments.assignment import assign
from precache.experiments.model import Experiment


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exp-predict")


@pytest.fixture(scope="module")
def service(redis_server: Any, root: Path) -> Iterator[Service]:
    # the online layer off: these tests poll one session on one page until a replica sees a definition, and
    # each poll is a page view it would learn (/a3 -> /a3), so the model's answer after /a3 that the arms are
    # checked against would depend on how many polls the pick-up took (it once turned /a3 first)
    env = service_env(redis_server.url, train_model(root / "ppm"), MODEL_STORAGE_PATH=str(root / "models"),
                      MODEL_BACKUP_PATH=str(root / "backups"), ML_ONLINE_ENABLED="false")
    with running_service(env) as svc:
        yield svc


def _register_popularity(root: Path) -> str:
    """A second page predictor (popularity) registered in the service's registry, not activated."""
    from conftest import hub_sessions
    from precache.config import load_settings
    from precache.models import build_predictor
    from precache.registry import open_registry

    registry = open_registry(load_settings(model_storage_path=str(root / "models"),
                                           model_backup_path=str(root / "backups")))
    popular = build_predictor("popularity")
    popular.fit(hub_sessions(200))
    popular.save(root / "popular")
    return registry.register("page-predictor", root / "popular").version


def _sessions(definition: dict[str, Any], arm: str, n: int = 3) -> list[str]:
    experiment = Experiment.from_dict(definition)
    found = [s for s in (f"s-{definition['id']}-{i}" for i in range(400))
             if (a := assign(experiment, s)) is not None and a.name == arm]
    assert len(found) >= n
    return found[:n]


def _warming(api: Any, session: str, **options: Any) -> Any:
    return api.post("/api/ml/predict", json={"sessionId": session, "type": "warming",
                                             "context": {"currentPath": "/a3"}, "options": options})


def _eventually(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_predict_applies_warming_threshold_and_model_arms(service: Service, root: Path) -> None:
    pinned = _register_popularity(root)
    with service.client(TRAINING_KEY) as admin, service.client(TOKEN) as api:
        version = api.post("/api/ml/predict", json={"sessionId": "probe", "type": "page",
                                                    "context": {"currentPath": "/a3"}}).json()["modelVersion"]
        warming = admin.post("/api/ml/experiments", json={
            "id": "warm-pred", "kind": "warming",
            "arms": [{"name": "off", "weight": 1, "params": {"warming": False}}, {"name": "on", "weight": 1}]})
        assert warming.status_code == 201, warming.text
        off, on = _sessions(warming.json(), "off"), _sessions(warming.json(), "on")
        # the replica picks the definition up on its own refresh (this request's replica made it, at once)
        _eventually(lambda: _warming(api, off[0]).json()["preload"] == [])
        for session in off:
            answer = _warming(api, session, threshold=0.0)
            assert answer.status_code == 200 and answer.json()["preload"] == [], answer.text
        for session in on:
            preload = _warming(api, session, threshold=0.0).json()["preload"]
            assert preload and preload[0]["page"] == "/hub"  # the model's answer after /a3
        assert admin.post("/api/ml/experiments/warm-pred/stop").status_code == 200
        _eventually(lambda: _warming(api, off[0], threshold=0.0).json()["preload"] != [])

        threshold = admin.post("/api/ml/experiments", json={
            "id": "thr-pred", "kind": "threshold",
            "arms": [{"name": "low", "params": {"threshold": 0.01}}, {"name": "high", "params": {"threshold": 0.99}}]})
        assert threshold.status_code == 201, threshold.text
        high = _sessions(threshold.json(), "high")
        _eventually(lambda: _warming(api, high[0], threshold=0.0).json()["threshold"] == 0.99)
        for session in high:  # the arm's threshold, not the caller's 0.0
            body = _warming(api, session, threshold=0.0).json()
            assert body["threshold"] == 0.99 and all(item["probability"] >= 0.99 for item in body["preload"])
        assert admin.post("/api/ml/experiments/thr-pred/stop").status_code == 200

        gone_arm = {"name": "gone", "params": {"version": "v-does-not-exist"}}
        arms = [{"name": "served", "params": {"version": version}}, {"name": "pinned", "params": {"version": pinned}}]
        refused = admin.post("/api/ml/experiments", json={"id": "model-gone", "kind": "model_version",
                                                          "arms": [*arms, gone_arm]})
        assert refused.status_code == 422, refused.text  # checked against the registry on creation (issue 28)
        assert refused.json()["detail"].startswith("arms[2].params.version:")
        assert "v-does-not-exist" in refused.json()["detail"]
        doomed = _register_popularity(root)  # a third version, deleted after the experiment was created
        arms.append({"name": "deleted", "params": {"version": doomed}})
        models = admin.post("/api/ml/experiments", json={"id": "model-pred", "kind": "model_version", "arms": arms})
        assert models.status_code == 201, models.text
        served, on_pinned = _sessions(models.json(), "served"), _sessions(models.json(), "pinned")
        deleted = _sessions(models.json(), "deleted")
        shutil.rmtree(root / "models" / "page-predictor" / doomed)
        fallbacks = admin.get("/api/ml/metrics").json()["experimentArmFallbacks"]
        for session in deleted:  # the arm stops safely: the active model answers, counted; never a 503
            ok = api.post("/api/ml/predict", json={"sessionId": session, "type": "page",
                                                   "context": {"currentPath": "/a3"}})
            assert ok.status_code == 200 and ok.json()["modelVersion"] == version, ok.text
        assert admin.get("/api/ml/metrics").json()["experimentArmFallbacks"] >= fallbacks + len(deleted)
        for session in served:
            ok = api.post("/api/ml/predict", json={"sessionId": session, "type": "page",
                                                   "context": {"currentPath": "/a3"}})
            assert ok.status_code == 200 and ok.json()["modelVersion"] == version
        for session in on_pinned:  # loaded from the registry (verified) on first use, while the active one serves
            ok = api.post("/api/ml/predict", json={"sessionId": session, "type": "page",
                                                   "context": {"currentPath": "/a3"}})
            assert ok.status_code == 200 and ok.json()["modelVersion"] == pinned, ok.text
        assert admin.post("/api/ml/experiments/model-pred/stop").status_code == 200
        assert api.get("/readyz").status_code == 200  # a refused pinned version is not the active model's error
