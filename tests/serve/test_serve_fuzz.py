"""Schemathesis against the running service's /openapi.json: at least 1,000 generated requests, no 5xx and no
response that violates the documented schema (status codes, content types, bodies)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from serve_harness import TRAINING_KEY, Service, running_service, service_env, train_model, train_optimizer

from conftest import RedisProcess

POSITIVE, NEGATIVE = 120, 40  # examples per operation and mode (11 operations: ~1,700 requests)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_service(redis_server: RedisProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    model = train_model(tmp_path_factory.mktemp("fuzz") / "ppm")
    optimizer = train_optimizer(tmp_path_factory.mktemp("fuzz") / "opt")
    # a high event rate: the fuzzer must reach the handlers, not the rate limiter
    env = service_env(redis_server.url, model, PRECACHE_EVENTS_PER_SECOND="1000000",
                      PRECACHE_EVENTS_BURST="1000000",
                      PRECACHE_OPTIMIZER_DIR=str(optimizer))
    with running_service(env) as service:
        yield service


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.mark.slow
def test_fuzz_openapi(fuzzed_service: Service, http: requests.Session) -> None:
    """Every operation of the published schema: POSITIVE valid and NEGATIVE invalid generated cases each
    (hypothesis, derandomized). Invalid ones must get a documented 4xx, never a 5xx."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_service.url}/openapi.json")
    calls: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {TRAINING_KEY}"}  # opens every route
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in ((GenerationMode.POSITIVE, POSITIVE), (GenerationMode.NEGATIVE, NEGATIVE)):

            @given(case=operation.as_strategy(mode))
            @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case: schemathesis.Case) -> None:
                calls[f"{case.method} {case.path}"] += 1
                case.call_and_validate(base_url=fuzzed_service.url, session=http, headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # an operation without inputs has no invalid request
    assert sum(calls.values()) >= 1000, dict(calls)
    assert {"POST /api/ml/predict", "POST /api/ml/events", "GET /api/ml/metrics", "POST /api/ml/train",
            "GET /api/ml/models", "POST /api/ml/models/{name}/activate/{version}"} <= set(calls), dict(calls)
