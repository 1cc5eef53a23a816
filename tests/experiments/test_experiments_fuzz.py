"""Experiments cannot break serving (issue 28): schemathesis drives the experiments API (create, list, read,
stop) and ``/api/ml/predict`` of a real service with a real redis-server, then predictions for many sessions
run under whatever experiments the fuzzer left running. Not one 503 (before: an arm pinning a version that did
not exist was accepted, and its sessions got 503 ``no_model`` while ``/readyz`` said ready)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the service tests' process helpers
from serve_harness import TOKEN, TRAINING_KEY, Service, running_service, service_env, train_model, train_optimizer

from conftest import RedisProcess

EXAMPLES = 60


@pytest.fixture(scope="module")
def service(redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("exp-fuzz")
    env = service_env(redis_server.url, train_model(root / "ppm"), MODEL_STORAGE_PATH=str(root / "models"),
                      PRECACHE_OPTIMIZER_DIR=str(train_optimizer(root / "opt")))  # type=cache answers too
    with running_service(env) as svc:
        yield svc


@pytest.mark.slow
def test_fuzzed_experiments_never_make_predictions_503(service: Service) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    statuses: Counter[tuple[str, int]] = Counter()
    unavailable: list[str] = []
    headers = {"Authorization": f"Bearer {TRAINING_KEY}"}
    with requests.Session() as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            if not (operation.path.startswith("/api/ml/experiments") or operation.path == "/api/ml/predict"):
                continue

            @given(case=operation.as_strategy(GenerationMode.POSITIVE))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=service.url, session=http, headers=headers)
                statuses[(f"{case.method} {case.path}", response.status_code)] += 1
                if response.status_code == 503:
                    unavailable.append(response.text)

            run()
        created = sum(n for (op, status), n in statuses.items() if op == "POST /api/ml/experiments" and status == 201)
        admin = {"Authorization": f"Bearer {TRAINING_KEY}"}
        served = http.post(f"{service.url}/api/ml/predict", headers=admin, json={
            "sessionId": "probe", "type": "page", "context": {"currentPath": "/a3"}}).json()["modelVersion"]
        for definition in (  # and one running experiment of each session-scoped kind, whatever the fuzzer left
                {"id": "fz-warm", "kind": "warming", "arms": [{"name": "off", "params": {"warming": False}},
                                                               {"name": "on"}]},
                {"id": "fz-thr", "kind": "threshold", "arms": [{"name": "lo", "params": {"threshold": 0.01}},
                                                                {"name": "hi", "params": {"threshold": 0.99}}]},
                {"id": "fz-model", "kind": "model_version", "arms": [{"name": "a", "params": {"version": served}},
                                                                      {"name": "b"}]}):
            made = http.post(f"{service.url}/api/ml/experiments", headers=admin, json=definition)
            created += made.status_code == 201
        for i in range(300):  # every session, in whatever arm of whatever the fuzzer left running
            response = http.post(f"{service.url}/api/ml/predict", headers={"Authorization": f"Bearer {TOKEN}"},
                                 json={"sessionId": f"visitor-{i}", "type": "page" if i % 2 else "warming",
                                       "context": {"currentPath": "/a3"}})
            statuses[("after", response.status_code)] += 1
    assert created > 0, dict(statuses)  # the fuzzer did make experiments
    assert not [key for key in statuses if key[1] == 503], (dict(statuses), unavailable)
    assert statuses[("after", 200)] == 300, dict(statuses)
