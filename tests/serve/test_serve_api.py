"""The service over real HTTP: a real ``precache serve`` process on loopback, real redis-server, httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from serve_harness import TOKEN, TRAINING_KEY, Service, running_service, service_env, train_model, train_optimizer

from conftest import RedisProcess


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("model") / "ppm")


@pytest.fixture(scope="module")
def service(redis_server: RedisProcess, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Service]:
    optimizer = train_optimizer(tmp_path_factory.mktemp("optimizer") / "opt")
    env = service_env(redis_server.url, model_dir, PRECACHE_OPTIMIZER_DIR=str(optimizer),
                      PRECACHE_EVENTS_PER_SECOND="50", PRECACHE_EVENTS_BURST="100",
                      PRECACHE_MAX_BODY_BYTES="65536", PRECACHE_SESSION_GAP_SECONDS="600",
                      PRECACHE_CLIENT_HASH_KEY="k")
    with running_service(env) as svc:
        svc.prefix = env["PRECACHE_REDIS_PREFIX"]  # type: ignore[attr-defined]
        yield svc


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def predict(client: httpx.Client, session: str, page: str, **options: object) -> httpx.Response:
    return client.post("/api/ml/predict", json={"sessionId": session, "type": "page",
                                                "context": {"currentPath": page}, "options": options})


def assert_error(response: httpx.Response, status: int, *words: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert "Traceback" not in body["detail"]
    for word in words:
        assert word in body["detail"], body
    return body


def test_health_and_readiness(service: Service) -> None:
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{service.url}/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["redis"] == "ok" and body["sessions"] == "redis"
    assert body["model"]["loaded"] is True and body["model"]["kind"] == "ppm"


def test_page_prediction_uses_the_server_side_history(api: httpx.Client, service: Service) -> None:
    first = predict(api, "s-hist", "/entry0")
    assert first.status_code == 200, first.text
    second = predict(api, "s-hist", "/a3", topK=3)
    body = second.json()
    assert [p["page"] for p in body["predictions"]][:1] == ["/hub"]
    assert len(body["predictions"]) <= 3
    assert body["modelVersion"].startswith("ppm-") and body["latency"] >= 0 and body["cached"] is False
    assert all(0 <= p["probability"] <= 1 for p in body["predictions"])


def test_history_is_in_redis_with_ttl(api: httpx.Client, service: Service, redis_server: RedisProcess) -> None:
    predict(api, "s-redis", "/entry1")
    predict(api, "s-redis", "/a2")
    r = redis.Redis.from_url(redis_server.url)
    keys = [k.decode() for k in r.scan_iter(match=f"{service.prefix}hist:*")]  # type: ignore[attr-defined]
    assert keys and all("{" in k and k.endswith("}") for k in keys)
    histories = [r.lrange(k, 0, -1) for k in keys]
    assert [b"/entry1", b"/a2"] in histories
    ttls = [r.pttl(k) for k in keys]
    assert all(0 < t <= 600_000 for t in ttls)
    r.close()


def test_repeated_history_is_answered_from_the_prediction_cache(api: httpx.Client) -> None:
    assert predict(api, "c-1", "/a1").json()["cached"] is False
    assert predict(api, "c-2", "/a1").json()["cached"] is True


def test_threshold_filters_predictions(api: httpx.Client) -> None:
    body = predict(api, "s-thr", "/hub", topK=10, threshold=0.99).json()
    assert body["predictions"] == []  # after /hub six pages are about equally likely


def test_warming_lists_pages_above_the_threshold(api: httpx.Client) -> None:
    body = api.post("/api/ml/predict", json={"sessionId": "w-1", "type": "warming",
                                             "context": {"currentPath": "/a4"}, "options": {"threshold": 0.5}})
    assert body.status_code == 200, body.text
    data = body.json()
    assert [item["page"] for item in data["preload"]] == ["/hub"] and data["threshold"] == 0.5
    low = api.post("/api/ml/predict", json={"sessionId": "w-2", "type": "warming",
                                            "context": {"currentPath": "/hub"}, "options": {"threshold": 0.05}})
    assert len(low.json()["preload"]) >= 5


def test_warming_lists_carry_the_assets_reported_after_page_views(api: httpx.Client, service: Service) -> None:
    events: list[dict[str, object]] = []
    for i in range(10):
        session = f"asset-{i}"
        events += [{"sessionId": session, "page": "/hub"}, {"sessionId": session, "key": "/img/hub.png"},
                   {"sessionId": session, "key": "/img/hub.png"}]  # twice in one view: counted once
        events += [{"sessionId": session, "key": "/js/some.js"}] if i < 4 else []
        events += [{"sessionId": session, "key": "/img/rare.gif"}] if i == 0 else []
    # a view's accesses may arrive in a later batch: they belong to the session's last page
    later = [{"sessionId": f"asset-{i}", "key": "/css/late.css"} for i in range(10)]
    with service.client(TRAINING_KEY) as reporter:  # its own rate-limit bucket
        for batch in (events, later):
            assert reporter.post("/api/ml/events", json={"events": batch}).status_code == 200
    body = api.post("/api/ml/predict", json={"sessionId": "asset-w", "type": "warming",
                                             "context": {"currentPath": "/a4"}, "options": {"threshold": 0.2}})
    assert body.status_code == 200, body.text
    [hub] = body.json()["preload"]
    assets = {a["page"]: a["probability"] for a in hub["assets"]}
    # P(page) * P(asset | page); /img/rare.gif (1 view in 10, so at most 0.1) is below the threshold
    assert set(assets) == {"/img/hub.png", "/css/late.css", "/js/some.js"}, assets
    assert [a["page"] for a in hub["assets"]][-1] == "/js/some.js"  # most likely first
    assert assets["/css/late.css"] == pytest.approx(assets["/img/hub.png"])
    assert 0 < assets["/img/hub.png"] <= hub["probability"]
    assert assets["/js/some.js"] == pytest.approx(0.4 * assets["/img/hub.png"])


@pytest.mark.parametrize(("body", "field"), [
    ({"sessionId": "x", "context": {"currentPath": "/a"}, "extra": 1}, "body.extra"),
    ({"sessionId": "x", "context": {"currentPath": "/a"}, "options": {"topK": "5"}}, "body.options.topK"),
    ({"sessionId": "x", "context": {"currentPath": "/a"}, "options": {"topK": 51}}, "body.options.topK"),
    ({"sessionId": "x", "context": {"currentPath": "/a"}, "options": {"threshold": 1.5}}, "body.options.threshold"),
    ({"sessionId": "x" * 129, "context": {"currentPath": "/a"}}, "body.sessionId"),
    ({"sessionId": "x", "context": {"currentPath": "/" + "a" * 3000}}, "body.context.currentPath"),
    ({"sessionId": "x", "context": {"currentPath": "/a", "nested": {"a": 1}}}, "body.context"),
    ({"sessionId": "x", "context": {"currentPath": "/a", **{f"f{i}": i for i in range(33)}}}, "body.context"),
    ({"sessionId": "x", "type": "video", "context": {"currentPath": "/a"}}, "body.type"),
    ({"context": {"currentPath": "/a"}}, "body.sessionId"),
    ({"sessionId": "x", "context": {}}, "body.context.currentPath"),
])
def test_bad_predict_bodies_are_422_naming_the_field(api: httpx.Client, body: dict[str, object], field: str) -> None:
    assert_error(api.post("/api/ml/predict", json=body), 422, field)


def test_context_takes_up_to_32_scalar_fields(api: httpx.Client) -> None:
    extra = {f"f{i}": (i if i % 3 else f"v{i}") for i in range(32)}
    response = api.post("/api/ml/predict", json={"sessionId": "ctx", "context": {"currentPath": "/a1", **extra}})
    assert response.status_code == 200, response.text


def test_malformed_json_and_big_bodies(api: httpx.Client) -> None:
    assert_error(api.post("/api/ml/predict", content=b"{not json", headers={"content-type": "application/json"}),
                 422)
    assert_error(api.post("/api/ml/predict", content=b"\xff\xfe{", headers={"content-type": "application/json"}),
                 422, "UTF-8")
    big = b'{"sessionId": "x", "context": {"currentPath": "/a"}, "pad": "' + b"x" * 70_000 + b'"}'
    assert_error(api.post("/api/ml/predict", content=big, headers={"content-type": "application/json"}), 413)

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 8192

    assert_error(api.post("/api/ml/predict", content=chunks(), headers={"content-type": "application/json"}), 413)


def test_unknown_routes_and_methods_answer_json(api: httpx.Client) -> None:
    assert_error(api.get("/api/ml/nothing"), 404)
    assert_error(api.get("/api/ml/predict"), 405)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": "Bearer"}, {"Authorization": TOKEN}])
def test_api_routes_refuse_missing_or_bad_tokens(service: Service, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=service.url, headers=headers) as client:
        r = predict(client, "auth", "/a1")
        assert_error(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"
        assert_error(client.post("/api/ml/events", json={"events": [{"sessionId": "a", "page": "/a"}]}), 401)
        assert_error(client.get("/api/ml/metrics"), 401)


def test_training_key_opens_the_api_routes(service: Service) -> None:
    with service.client(TRAINING_KEY) as client:
        assert predict(client, "tk", "/a1").status_code == 200
        assert client.get("/api/ml/metrics").status_code == 200


def test_events_feed_histories_and_the_stream(api: httpx.Client, service: Service,
                                              redis_server: RedisProcess) -> None:
    events = [{"sessionId": "ev-1", "page": "/entry0", "client": "203.0.113.7"},
              {"sessionId": "ev-1", "page": "/a5", "time": 1_700_000_000.5},
              {"sessionId": "ev-2", "key": "product:42", "size": 512, "latency": 0.01, "tier": "l2"}]
    r = redis.Redis.from_url(redis_server.url)
    before = r.xlen("precache:events")
    response = api.post("/api/ml/events", json={"events": events})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "streamed": True}
    entries = r.xrange("precache:events", count=before + 10)[before:]
    assert len(entries) == 3
    fields = [{k.decode(): v.decode() for k, v in e[1].items()} for e in entries]
    assert set(fields[0]) == {"time", "key", "session", "context", "tier", "latency", "size", "preloaded_hit"}
    assert orjson.loads(fields[1]["context"])["currentPath"] == "/a5" and fields[1]["time"] == "1700000000.5"
    assert fields[2]["key"] == "product:42" and fields[2]["tier"] == "l2" and fields[2]["size"] == "512"
    client_hash = orjson.loads(fields[0]["context"])["client"]
    assert client_hash and "203.0.113.7" not in client_hash
    # the client address is nowhere in Redis in clear
    for key in r.scan_iter():
        kind = r.type(key)
        if kind == b"list":
            assert not any(b"203.0.113.7" in v for v in r.lrange(key, 0, -1))
        elif kind == b"stream":
            assert not any(b"203.0.113.7" in b"".join(e[1].values()) for e in r.xrange(key))
    r.close()
    # the page events joined the session's history: after /a5 /hub comes /b5
    assert predict(api, "ev-1", "/hub").json()["predictions"][0]["page"] == "/b5"


def test_event_batches_are_validated_and_rate_limited(service: Service) -> None:
    with service.client() as api:
        assert_error(api.post("/api/ml/events", json={"events": []}), 422, "body.events")
        assert_error(api.post("/api/ml/events", json={"events": [{"sessionId": "a"}]}), 422, "page or a key")
        assert_error(api.post("/api/ml/events", json={"events": [{"sessionId": "a", "page": "/p", "size": -1}]}),
                     422, "body.events.0.size")
        assert_error(api.post("/api/ml/events", json={"events": [{"sessionId": "a", "page": "/p"}] * 1001}), 422,
                     "body.events")
        batch = {"events": [{"sessionId": "rate", "page": f"/p{i}"} for i in range(100)]}
        # burst of 100 at 50/s: after 2.1 s the bucket is full whatever earlier tests took from it; a second
        # full batch right after the first is refused
        time.sleep(2.1)
        statuses = [api.post("/api/ml/events", json=batch).status_code for _ in range(3)]
        assert statuses[0] == 200 and 429 in statuses
    # another token has its own bucket
    with service.client(TRAINING_KEY) as other:
        assert other.post("/api/ml/events", json={"events": [{"sessionId": "x", "page": "/p"}]}).status_code == 200


def cache_decision(api: httpx.Client, key: str) -> httpx.Response:
    return api.post("/api/ml/predict", json={"sessionId": "c", "type": "cache", "context": {"key": key}})


def test_cache_decisions_rest_on_the_reported_accesses(api: httpx.Client, service: Service) -> None:
    fresh = cache_decision(api, "/hot/p1.html")
    assert fresh.status_code == 200, fresh.text
    body = fresh.json()
    assert body["basedOnEvents"] == 0 and body["key"] == "/hot/p1.html"
    assert isinstance(body["shouldCache"], bool) and 1 <= body["ttl"] <= 86400
    assert 0 <= body["invalidationProbability"] <= 1 and body["priority"] >= 0
    now = time.time()
    events = [{"sessionId": f"s{i}", "key": "/hot/p1.html", "time": now - 60 + 2 * i, "size": 1200,
               "client": f"c{i % 5}"} for i in range(30)]
    with service.client(TRAINING_KEY) as reporter:  # its own rate-limit bucket (the API token's is drained)
        assert reporter.post("/api/ml/events", json={"events": events}).status_code == 200
    busy = cache_decision(api, "/hot/p1.html").json()
    assert busy["basedOnEvents"] == 30
    # the features moved with the history: the model's outputs for this key changed
    assert (busy["priority"], busy["ttl"]) != (body["priority"], body["ttl"])
    assert_error(api.post("/api/ml/predict", json={"sessionId": "c", "type": "cache", "context": {}}), 422,
                 "body.context.key")


def test_metrics_json_and_prometheus(api: httpx.Client) -> None:
    predict(api, "m-1", "/a1")
    data = api.get("/api/ml/metrics", params={"format": "json", "duration": 60_000}).json()
    assert data["predictions"]["page"] >= 1 and data["predictionLatencyMs"]["count"] >= 1
    assert data["predictionLatencyMs"]["p50"] > 0 and data["predictionLatencyMs"]["windowMs"] == 60_000
    assert data["gcFrozenObjects"] > 10_000  # startup state is out of the full collections' reach
    assert any(r["route"] == "/api/ml/predict" and r["status"] == 200 for r in data["requests"])
    text = api.get("/api/ml/metrics", params={"format": "prometheus"})
    assert text.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(text.text)}
    assert {"precache_http_requests", "precache_predictions", "precache_prediction_cache_lookups"} <= names
    assert_error(api.get("/api/ml/metrics", params={"format": "xml"}), 422, "query.format")
    assert_error(api.get("/api/ml/metrics", params={"duration": 0}), 422, "query.duration")


def test_openapi_documents_every_route_with_auth_and_errors(service: Service) -> None:
    spec = httpx.get(f"{service.url}/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            if path.startswith("/api/"):
                assert operation.get("security"), (method, path)
                assert "401" in responses and "422" in responses, (method, path)
                schema = responses["401"]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorBody"), (method, path)
    assert {"/healthz", "/readyz", "/api/ml/predict", "/api/ml/events", "/api/ml/metrics"} <= set(spec["paths"])
