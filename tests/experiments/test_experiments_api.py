"""``/api/ml/experiments`` on a real ``precache serve`` with a real redis-server: auth, create / list / read /
stop, bad input, per-arm statistics recorded from the events back ends POST, and the readouts in the JSON
metrics summary and the dashboard."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the service tests' process helpers
from serve_harness import TOKEN, TRAINING_KEY, Service, running_service, service_env, train_model

from precache.experiments.assignment import assign
from precache.experiments.model import Experiment

WARMING = {"id": "warm-ab", "kind": "warming", "mde": 0.1,
           "arms": [{"name": "off", "weight": 1}, {"name": "on", "weight": 1, "params": {"warming": True}}]}


@pytest.fixture(scope="module")
def service(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("exp")
    env = service_env(redis_server.url, train_model(root / "ppm"), MODEL_STORAGE_PATH=str(root / "models"))
    with running_service(env) as svc:
        yield svc


def _eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_routes_need_the_training_key(service: Service) -> None:
    for token, status in ((None, 401), ("wrong-token", 401), (TOKEN, 403)):
        with service.client(token) as client:
            assert client.get("/api/ml/experiments").status_code == status
            assert client.post("/api/ml/experiments", json=WARMING).status_code == status
    with service.client(TRAINING_KEY) as admin:
        assert admin.get("/api/ml/experiments").json()["experiments"] == []
        spec = admin.get("/openapi.json").json()["paths"]
        assert {"/api/ml/experiments", "/api/ml/experiments/{experiment_id}",
                "/api/ml/experiments/{experiment_id}/stop"} <= set(spec)


@pytest.mark.slow
def test_create_record_read_summary_dashboard_stop(service: Service) -> None:
    with service.client(TRAINING_KEY) as admin, service.client(TOKEN) as api:
        made = admin.post("/api/ml/experiments", json=WARMING)
        assert made.status_code == 201, made.text
        definition = made.json()
        assert definition["scope"] == "session" and definition["status"] == "running" and definition["created"] > 0
        # immutable, one running experiment per kind, and definitions that mean something
        again = admin.post("/api/ml/experiments", json={**WARMING, "arms": WARMING["arms"][::-1]})
        assert again.status_code == 409 and "immutable" in again.json()["detail"]
        clash = admin.post("/api/ml/experiments", json={**WARMING, "id": "warm-2"})
        assert clash.status_code == 409 and "warm-ab" in clash.json()["detail"]
        threshold_7 = {"id": "t1", "kind": "threshold",
                       "arms": [{"name": "a"}, {"name": "b", "params": {"threshold": 7}}]}
        one_arm = {**WARMING, "arms": WARMING["arms"][:1]}
        for bad in ({**WARMING, "id": "bad id"}, {**WARMING, "kind": "colour"}, one_arm, threshold_7,
                    {"id": "p1", "kind": "cache_policy", "arms": [{"name": "a"}, {"name": "b"}]},
                    {**WARMING, "id": "x1", "weights": [1, 2]}):
            r = admin.post("/api/ml/experiments", json=bad)
            assert r.status_code == 422 and set(r.json()) == {"error", "detail"}, (bad, r.text)
        # arm parameters outside the kind's schema are refused, naming the field (issue 28)
        for params, field in (({"threshold": 0.2}, "arms[1].params.threshold"),
                              ({"colour": "red"}, "arms[1].params.colour")):
            r = admin.post("/api/ml/experiments", json={"id": "w9", "kind": "warming",
                                                        "arms": [{"name": "a"}, {"name": "b", "params": params}]})
            assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text
        assert admin.get("/api/ml/experiments/nope").status_code == 404
        assert admin.get("/api/ml/experiments/bad%20id").status_code == 422
        listed = admin.get("/api/ml/experiments").json()["experiments"]
        assert [e["id"] for e in listed] == ["warm-ab"]

        # back ends report accesses; the service attributes them to each session's arm
        experiment = Experiment.from_dict(definition)
        rng = random.Random(4)
        t0 = time.time() - 3600
        events = []
        for i in range(600):
            sid = f"visitor-{i}"
            rate = 0.8 if assign(experiment, sid).name == "on" else 0.5  # type: ignore[union-attr]
            for j in range(4):
                hit = rng.random() < rate
                events.append({"sessionId": sid, "key": f"k{rng.randrange(50)}", "tier": "l1" if hit else "origin",
                               "latency": 0.001 if hit else 0.1, "size": 0 if hit else 2000, "time": t0 + i + j})
            events.append({"sessionId": sid, "page": "/a", "time": t0 + i})  # page views are not accesses
        for start in range(0, len(events), 1000):
            api.post("/api/ml/events", json={"events": events[start:start + 1000]}).raise_for_status()
        for i in range(60):  # predictions scored against the next page: online HR@5 per arm
            for page in ("/a3", "/hub"):  # the model predicts /hub after /a3
                api.post("/api/ml/predict", json={"sessionId": f"visitor-{i}", "type": "page",
                                                  "context": {"currentPath": page}}).raise_for_status()

        def read() -> dict[str, Any] | None:
            out: dict[str, Any] = admin.get("/api/ml/experiments/warm-ab").json()
            return out if sum(out["assignments"].values()) == 600 else None

        out = _eventually(read)
        on = out["arms"]["on"]
        assert on["metrics"]["hits"]["unit"] == "session (delta method)"
        assert on["metrics"]["hits"]["treatment"] == pytest.approx(0.8, abs=0.05)
        assert on["metrics"]["hits"]["control"] == pytest.approx(0.5, abs=0.05)
        assert on["metrics"]["origin_requests"]["fixedHorizon"]["diff"] < 0  # fewer origin requests per session
        assert on["verdict"] == "treatment better" and not out["sampleRatio"]["mismatch"]
        accuracy = on["metrics"]["accuracy"]
        assert accuracy["control"] == 1.0 and accuracy["treatment"] == 1.0  # every /a3 -> /hub was in the top 5
        assert accuracy["status"] == "insufficient data" or accuracy["fixedHorizon"]["diff"] == 0
        assert out["definition"]["id"] == "warm-ab"

        # the JSON metrics summary (API token) and the dashboard carry the compact readout
        def summary() -> dict[str, Any] | None:
            s = api.get("/api/ml/metrics", params={"format": "json"}).json()
            rows = s.get("experiments", {}).get("experiments", [])
            return rows[0] if rows and sum(rows[0]["assignments"].values()) == 600 else None

        row = _eventually(summary)
        assert row["id"] == "warm-ab" and row["arms"][0]["verdict"] == "treatment better"
        assert row["arms"][0]["pValue"] < 0.05
        with httpx.Client(base_url=service.url, follow_redirects=False) as browser:
            browser.post("/dashboard/login", data={"token": TOKEN})
            assert 'id=experiments' in browser.get("/dashboard").text
            with browser.stream("GET", "/dashboard/events") as stream:
                first = json.loads(next(stream.iter_lines())[len("data: "):])
            assert first["summary"]["experiments"]["experiments"][0]["id"] == "warm-ab"

        stopped = admin.post("/api/ml/experiments/warm-ab/stop")
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
        assert admin.get("/api/ml/experiments/warm-ab").json()["status"] == "stopped"  # still readable
        assert admin.post("/api/ml/experiments/nope/stop").status_code == 404
        assert admin.post("/api/ml/experiments", json={**WARMING, "id": "warm-2"}).status_code == 201
