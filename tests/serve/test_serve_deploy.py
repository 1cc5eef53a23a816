"""Starting the service: refusing without a token, --insecure-local, no model, ML off, no Redis, two replicas,
and the compose file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from serve_harness import ROOT, running_service, running_services, service_env, train_model

from conftest import RedisProcess, free_port


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("model") / "ppm")


def page(client: httpx.Client, session: str, path: str) -> httpx.Response:
    return client.post("/api/ml/predict", json={"sessionId": session, "context": {"currentPath": path}})


def test_refuses_to_start_without_a_token(redis_server: RedisProcess, model_dir: Path) -> None:
    env = service_env(redis_server.url, model_dir, PRECACHE_API_TOKEN="")
    out = subprocess.run([str(Path(sys.executable).parent / "precache"), "serve", "--port", str(free_port())],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "PRECACHE_API_TOKEN" in lines[0] and "--insecure-local" in lines[0]


@pytest.mark.slow
def test_insecure_local_serves_loopback_without_auth_and_warns(redis_server: RedisProcess, model_dir: Path) -> None:
    env = service_env(redis_server.url, model_dir, PRECACHE_API_TOKEN="")
    with running_service(env, "--insecure-local", "--host", "0.0.0.0") as svc, svc.client(token=None) as client:
        assert page(client, "open", "/a1").status_code == 200
        # the training routes still need the training key
        assert client.get("/api/ml/metrics").status_code == 200
    assert svc.proc.stdout is None or svc.proc.stdout.closed
    # it bound loopback, not 0.0.0.0: check the warning it printed via a fresh run's output
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "precache"), "serve", "--port", str(port),
                             "--insecure-local", "--host", "0.0.0.0"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline() + proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
    assert "binds to 127.0.0.1" in first and "WITHOUT authentication" in first


@pytest.mark.slow
def test_ml_disabled_and_missing_model_answer_503(redis_server: RedisProcess, model_dir: Path) -> None:
    disabled = service_env(redis_server.url, model_dir, ML_ENABLED="false")
    with running_services((disabled, ()), (service_env(redis_server.url, None), ())) as (svc, without):
        with svc.client() as c:
            r = page(c, "off", "/a1")
            assert r.status_code == 503 and r.json() == {"error": "ml_disabled", "detail": r.json()["detail"]}
            ready = httpx.get(f"{svc.url}/readyz")
            assert ready.status_code == 503 and ready.json()["error"] == "not_ready"
            cache = c.post("/api/ml/predict", json={"sessionId": "x", "type": "cache", "context": {"key": "k"}})
            assert cache.status_code == 503 and cache.json()["error"] == "ml_disabled"
        with without.client() as c:
            r = page(c, "none", "/a1")
            assert r.status_code == 503 and r.json()["error"] == "no_model"
            assert "PRECACHE_MODEL_DIR" in r.json()["detail"]
            cache = c.post("/api/ml/predict", json={"sessionId": "x", "type": "cache", "context": {"key": "k"}})
            assert cache.status_code == 503 and "PRECACHE_OPTIMIZER_DIR" in cache.json()["detail"]


@pytest.mark.slow
def test_a_tampered_model_is_refused(redis_server: RedisProcess, model_dir: Path, tmp_path: Path) -> None:
    bad = train_model(tmp_path / "bad")
    victim = next(p for p in bad.iterdir() if p.name != "manifest.json")
    victim.write_bytes(victim.read_bytes() + b" ")
    with running_service(service_env(redis_server.url, bad)) as svc:
        ready = httpx.get(f"{svc.url}/readyz").json()
        assert ready["ready"] is False and "sha256" in (ready["model"]["error"] or "")


@pytest.mark.slow
def test_without_redis_histories_stay_in_memory(model_dir: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with running_service(service_env(dead, model_dir)) as svc, svc.client() as client:
        assert page(client, "m", "/a2").status_code == 200
        body = page(client, "m", "/hub").json()
        assert body["predictions"][0]["page"] == "/b2"
        ready = httpx.get(f"{svc.url}/readyz").json()
        assert ready["ready"] is True and ready["redis"].startswith("degraded") and "memory" in ready["sessions"]
        events = client.post("/api/ml/events", json={"events": [{"sessionId": "m", "page": "/hub"}]})
        # never acknowledged and dropped: 503 + Retry-After, the client retries (issue 28)
        assert events.status_code == 503 and events.headers["retry-after"] == "1", events.text
        # the rate limit falls back to this replica's own bucket (and says so)
        assert client.get("/api/ml/metrics").json()["rateLimitRedisFailures"] >= 1


@pytest.mark.slow
def test_two_replicas_share_sessions_through_redis(redis_server: RedisProcess, model_dir: Path) -> None:
    env = service_env(redis_server.url, model_dir, PRECACHE_PREDICTION_CACHE_SIZE="0")
    with running_services((env, ()), (env, ())) as (a, b), a.client() as ca, b.client() as cb:
        # the session alternates between replicas; each answer must rest on the whole history
        for j in (1, 4):
            session = f"shared-{j}"
            assert page(ca, session, "/entry0").status_code == 200
            assert page(cb, session, f"/a{j}").json()["predictions"][0]["page"] == "/hub"
            assert page(ca, session, "/hub").json()["predictions"][0]["page"] == f"/b{j}"
        # an event sent to one replica is part of the history the other one answers from
        assert ca.post("/api/ml/events", json={"events": [{"sessionId": "ev", "page": "/a5"}]}).status_code == 200
        assert page(cb, "ev", "/hub").json()["predictions"][0]["page"] == "/b5"


def test_compose_file_parses_and_uses_settings_precache_reads() -> None:
    from precache.config import Settings
    from precache.serve.settings import serve_env_names

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"precache", "redis"} <= set(services)
    known = {str(f.validation_alias.choices[0]) for f in Settings.model_fields.values()  # type: ignore[union-attr]
             if f.validation_alias is not None} | serve_env_names()
    env = services["precache"]["environment"]
    names = set(env) if isinstance(env, dict) else {item.split("=", 1)[0] for item in env}
    assert names and names <= known, names - known
    assert "REDIS_URL" in names and "PRECACHE_API_TOKEN" in names
    assert "redis" in str(services["precache"].get("depends_on"))


@pytest.mark.slow
def test_on_redis_cluster_histories_and_events_work(redis_cluster: str, model_dir: Path) -> None:
    env = service_env(redis_cluster, model_dir, PRECACHE_REDIS_CLUSTER="true")
    with running_service(env) as svc, svc.client() as client:
        assert page(client, "cl", "/a3").status_code == 200
        assert page(client, "cl", "/hub").json()["predictions"][0]["page"] == "/b3"
        events = [{"sessionId": f"c{i}", "page": f"/a{i % 6}", "key": f"k{i}"} for i in range(20)]
        r = client.post("/api/ml/events", json={"events": events})
        assert r.status_code == 200 and r.json() == {"accepted": 20, "streamed": True}
        assets = [{"sessionId": f"c{i}", "key": f"/img/{i % 3}.png"} for i in range(20)]
        assert client.post("/api/ml/events", json={"events": assets}).status_code == 200
        gauges = client.get("/api/ml/metrics").json()
        assert gauges["rateLimitRedisFailures"] == 0 and gauges["assetCountFailures"] == 0  # the scripts run there
        warming = client.post("/api/ml/predict", json={"sessionId": "cw", "type": "warming",
                                                       "context": {"currentPath": "/entry0"},
                                                       "options": {"threshold": 0.01}}).json()
        assert any(item["assets"] for item in warming["preload"])  # /a_j's assets, read back from the cluster
        ready = httpx.get(f"{svc.url}/readyz").json()
        assert ready["redis"] == "ok" and ready["sessions"] == "redis"


@pytest.mark.slow
def test_the_event_rate_limit_holds_across_replicas(redis_server: RedisProcess, model_dir: Path) -> None:
    env = service_env(redis_server.url, model_dir, PRECACHE_EVENTS_PER_SECOND="1", PRECACHE_EVENTS_BURST="10")
    batch = {"events": [{"sessionId": "rl", "page": f"/p{i}"} for i in range(7)]}
    with running_services((env, ()), (env, ())) as (a, b), a.client() as ca, b.client() as cb:
        assert ca.post("/api/ml/events", json=batch).status_code == 200
        # per replica, b's own bucket would take these 7 as well; the token's one limit does not
        refused = cb.post("/api/ml/events", json=batch)
        assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 5  # 4 events over the burst at 1/s
        assert cb.post("/api/ml/events", json={"events": batch["events"][:3]}).status_code == 200  # the rest
        for client in (ca, cb):
            gauges = client.get("/api/ml/metrics").json()
            assert gauges["rateLimitRedisFailures"] == 0
        assert cb.get("/api/ml/metrics").json()["eventsRateLimited"] == 1
