"""Two real ``precache serve`` replicas on one real redis-server: a transition learned on A changes B's answer
within a second; ``ML_ONLINE_ENABLED=false`` leaves the frozen answer alone."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_harness import running_service, running_services, service_env, train_model

from conftest import RedisProcess, free_port


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("model") / "ppm")


def top(client: httpx.Client, session: str, path: str) -> str:
    response = client.post("/api/ml/predict", json={"sessionId": session, "context": {"currentPath": path}})
    assert response.status_code == 200, response.text
    return str(response.json()["predictions"][0]["page"])


def online_env(redis_url: str, model_dir: Path, **extra: str) -> dict[str, str]:
    options = {"PRECACHE_PREDICTION_CACHE_SIZE": "0", "ML_ONLINE_WEIGHT": "1", "ML_ONLINE_EVIDENCE": "1",
               "ML_ONLINE_REFRESH_MS": "0", "ML_ONLINE_REDIS_PREFIX": f"o{free_port()}:"}
    return service_env(redis_url, model_dir, **{**options, **extra})


@pytest.mark.slow
def test_a_transition_learned_on_replica_a_changes_replica_bs_answer_within_a_second(
        redis_server: RedisProcess, model_dir: Path) -> None:
    env = online_env(redis_server.url, model_dir)
    with running_services((env, ()), (env, ())) as (a, b), a.client() as ca, b.client() as cb:
        assert top(cb, "before", "/b3") != "/new-page"  # the frozen model has never seen /new-page
        for i in range(5):  # five visitors go /b3 -> /new-page, on replica A only
            top(ca, f"teach-{i}", "/b3")
            top(ca, f"teach-{i}", "/new-page")
        started = time.monotonic()
        while top(cb, f"probe-{time.monotonic()}", "/b3") != "/new-page":
            assert time.monotonic() - started < 1.0, "replica B did not learn A's transition within 1 s"
            time.sleep(0.02)
        metrics = ca.get("/api/ml/metrics").json()
        assert metrics["onlineLearned"] == 5 and metrics["onlineReadFallbacks"] == 0


def test_the_off_switch_leaves_the_frozen_answer(redis_server: RedisProcess, model_dir: Path) -> None:
    env = online_env(redis_server.url, model_dir, ML_ONLINE_ENABLED="false")
    with running_service(env) as a, a.client() as ca:
        for i in range(5):
            top(ca, f"teach-{i}", "/b3")
            top(ca, f"teach-{i}", "/new-page")
        assert top(ca, "probe", "/b3") != "/new-page"
        assert "onlineLearned" not in ca.get("/api/ml/metrics").json()


def answer(client: httpx.Client, session: str, path: str) -> tuple[str, float]:
    response = client.post("/api/ml/predict", json={"sessionId": session, "context": {"currentPath": path}})
    assert response.status_code == 200, response.text
    first = response.json()["predictions"][0]
    return str(first["page"]), float(first["probability"])


def test_the_service_learns_its_calibration_from_each_answers_outcome(redis_server: RedisProcess,
                                                                      model_dir: Path) -> None:
    """Weight 0 (the merge off: the answers are the frozen model's), default ML_ONLINE_CALIBRATE=online: every
    visitor shown an answer at /b3 goes to a page that is not its top-1, so the replica's map learns that the
    top-1 is overconfident -- the same top-1 is served with a lower probability, once outcomes arrived."""
    env = online_env(redis_server.url, model_dir, ML_ONLINE_WEIGHT="0")
    with running_service(env) as a, a.client() as ca:
        page, before = answer(ca, "probe-0", "/b3")
        assert page != "/elsewhere"
        assert ca.get("/api/ml/metrics").json()["onlineCalibrationOutcomes"] == 0
        for i in range(80):
            answer(ca, f"visitor-{i}", "/b3")  # served: the answer waits for this session's next page view
            answer(ca, f"visitor-{i}", "/elsewhere")  # its outcome: a miss (and a new answer waits)
        assert ca.get("/api/ml/metrics").json()["onlineCalibrationOutcomes"] == 80  # one per answer followed
        started = time.monotonic()  # by a page view; the map is refit by the flush task, off the request path
        while (again := answer(ca, f"probe-{time.monotonic()}", "/b3"))[1] >= before:
            assert time.monotonic() - started < 2.0, "the served probability did not learn the misses"
            time.sleep(0.05)
        assert again[0] == page  # the order is the frozen model's, the probability lower


BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def walk(http: httpx.Client, session: str, pages: tuple[str, str], headers: dict[str, str] | None = None,
         **visitor: str) -> None:
    """One visitor's two page views (one transition to learn), the visitor named in the body if given."""
    for page in pages:
        response = http.post("/api/ml/predict", headers=headers or {},
                               json={"sessionId": session, "context": {"currentPath": page, **visitor}})
        assert response.status_code == 200, response.text


def learned(client: httpx.Client) -> tuple[int, int]:
    metrics = client.get("/api/ml/metrics").json()
    return int(metrics["onlineLearned"]), int(metrics["onlineRefused"])


@pytest.mark.slow
def test_the_service_screens_crawlers_and_caps_a_client_across_sessions(redis_server: RedisProcess,
                                                                          model_dir: Path) -> None:
    env = online_env(redis_server.url, model_dir, ML_ONLINE_MAX_PER_CLIENT="3", PRECACHE_TRUSTED_PROXIES="127.0.0.1")
    with running_service(env) as service, service.client() as client:
        for i in range(3):  # a crawler the caller names teaches nothing
            walk(client, f"bot-{i}", ("/b3", "/new-page"), userAgent=BOT)
        assert learned(client) == (0, 3)
        for i in range(5):  # one visitor address over five sessions: its cap (3) holds
            walk(client, f"named-{i}", ("/b3", f"/p{i}"), client="198.51.100.7", userAgent=BROWSER)
        assert learned(client) == (3, 5)
        proxied = {"X-Forwarded-For": "198.51.100.99, 203.0.113.9", "User-Agent": BROWSER}
        for i in range(5):  # the same through the trusted proxy's headers (the test connects from 127.0.0.1)
            walk(client, f"proxied-{i}", ("/b3", f"/q{i}"), headers=proxied)
        assert learned(client) == (6, 7)
        walk(client, "proxied-bot", ("/b3", "/r"), headers={"X-Forwarded-For": "203.0.113.10", "User-Agent": BOT})
        assert learned(client) == (6, 8)
        events = [{"sessionId": f"events-{i}", "page": page, "client": "192.0.2.44", "userAgent": BROWSER}
                  for i in range(5) for page in ("/b3", f"/e{i}")]
        assert client.post("/api/ml/events", json={"events": events}).status_code == 200
        assert learned(client) == (9, 10)  # POST /api/ml/events: the same cap per reported client


@pytest.mark.slow
def test_forwarded_headers_are_not_believed_without_a_trusted_proxy(redis_server: RedisProcess,
                                                                     model_dir: Path) -> None:
    env = online_env(redis_server.url, model_dir, ML_ONLINE_MAX_PER_CLIENT="3")
    with running_service(env) as service, service.client() as client:
        spoofed = {"X-Forwarded-For": "203.0.113.9", "User-Agent": BOT}
        for i in range(5):  # a header anyone can write: the cap keys on each session, no crawler screening
            walk(client, f"spoof-{i}", ("/b3", f"/s{i}"), headers=spoofed)
        assert learned(client) == (5, 0)
