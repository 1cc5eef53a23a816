"""Monitoring through the service: the sum over uvicorn workers, promtool-valid text, online accuracy, dashboard."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_harness import TOKEN, running_service, service_env, train_model

from conftest import RedisProcess


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("monitoring-model") / "ppm")


def _predictions_total(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "precache_predictions":
            return sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels["type"] == "page")
    return 0.0


@pytest.mark.slow
def test_two_workers_one_scrape_sums_both_and_passes_promtool(redis_server: RedisProcess, model_dir: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: `make test` installs Debian's prometheus package")
    with running_service(service_env(redis_server.url, model_dir), "--workers", "2") as service, \
            service.client() as api:
        # Each request opens a new connection, so both workers answer some of them.
        for i in range(40):
            with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {TOKEN}"}) as one:
                one.post("/api/ml/predict", json={"sessionId": f"w{i}", "type": "page",
                                                  "context": {"currentPath": "/entry0"}}).raise_for_status()
        time.sleep(3.0)  # > the 2 s publish interval: every worker has published its counts
        totals = [_predictions_total(api.get("/api/ml/metrics", params={"format": "prometheus"}).text)
                  for _ in range(6)]
        assert totals == [40.0] * 6, totals  # whichever worker answers the scrape
        text = api.get("/api/ml/metrics", params={"format": "prometheus"}).text
        check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        summary = api.get("/api/ml/metrics", params={"format": "json", "duration": 70_000}).json()
        assert summary["workers"] == 2 and summary["window"]["durationMs"] == 60_000
        assert summary["avgLatency"] is not None and summary["p95Latency"] is not None
        assert set(summary["trends"]) == {"accuracy", "hitRate"}


@pytest.mark.slow
def test_online_accuracy_reported_accesses_and_dashboard(redis_server: RedisProcess, model_dir: Path) -> None:
    with running_service(service_env(redis_server.url, model_dir)) as service, service.client() as api:
        def predict(session: str, page: str) -> list[str]:
            r = api.post("/api/ml/predict", json={"sessionId": session, "type": "page",
                                                  "context": {"currentPath": page}, "options": {"topK": 5}})
            r.raise_for_status()
            return [p["page"] for p in r.json()["predictions"]]

        assert "/hub" in predict("acc", "/a3")  # PPM on the hub workload: /a3 -> /hub
        predict("acc", "/hub")  # a hit at 5 for the previous prediction
        predict("acc", "/nowhere")  # after /a3 /hub comes /b3, not /nowhere: a miss
        api.post("/api/ml/events", json={"events": [
            {"sessionId": "x", "key": "k1", "tier": "l1"}, {"sessionId": "x", "key": "k2", "tier": "l1"},
            {"sessionId": "x", "key": "k3", "tier": "l2"}, {"sessionId": "x", "key": "k4", "tier": "origin"}]},
        ).raise_for_status()
        summary = api.get("/api/ml/metrics", params={"format": "json", "duration": 60_000}).json()
        assert summary["accuracy"] == pytest.approx(0.5)
        assert summary["cacheHitRate"] == pytest.approx(0.75)
        assert summary["memoryBytes"] > 0  # the loaded model's bytes
        with httpx.Client(base_url=service.url, follow_redirects=False) as browser:
            assert "API token" in browser.get("/dashboard").text
            login = browser.post("/dashboard/login", data={"token": TOKEN})
            assert login.status_code == 303 and "httponly" in login.headers["set-cookie"].lower()
            with browser.stream("GET", "/dashboard/events") as events:
                assert events.status_code == 200
                first = next(events.iter_lines())
                assert first.startswith("data: ") and '"accuracy"' in first
