"""Drift-triggered retraining: the tracker's rule, and a real service starting a training job on drift."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from conftest import RedisProcess, hub_sessions
from precache.models.kinds import build_predictor
from precache.online.drift import DriftTrigger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from serve_harness import running_service, service_env


def test_the_trigger_fires_on_a_sustained_drop_once_per_interval() -> None:
    now = [0.0]
    started: list[float] = []
    trigger = DriftTrigger(lambda: 0.6, lambda: started.append(now[0]), margin=0.1, window=10, min_interval=100.0,
                           clock=lambda: now[0])
    for hit in [True] * 6 + [False] * 4:  # 0.6: no drop
        trigger.scored("s", hit)
    assert not started
    trigger.scored("s", False)
    assert not started  # 0.5 = 0.6 - 0.1: not below the margin yet
    trigger.scored("s", False)  # 0.4 over the window: drift
    assert started == [0.0] and trigger.triggers == 1 and len(trigger.hits) == 0  # the evidence is spent
    for _ in range(10):
        trigger.scored("s", False)
    assert started == [0.0] and trigger.suppressed == 1  # a full window again, but rate-limited
    now[0] = 150.0
    for _ in range(10):
        trigger.scored("s", False)
    assert started == [0.0, 150.0]
    silent = DriftTrigger(lambda: None, lambda: started.append(-1.0), window=1)
    silent.scored("s", False)  # a model without a held-out HR@5 never triggers
    assert started[-1] != -1.0


@pytest.mark.slow
def test_a_service_starts_a_retrain_when_live_hr5_drops(redis_server: RedisProcess, tmp_path: Path) -> None:
    model = build_predictor("ppm")
    model.fit(hub_sessions(300))
    model.metrics["test_hr5"] = 0.95  # what the pipeline measured; live traffic below will miss every time
    model_dir = model.save(tmp_path / "ppm")
    events = tmp_path / "events"
    events.mkdir()
    env = service_env(redis_server.url, model_dir, PRECACHE_PREDICTION_CACHE_SIZE="0",
                      PRECACHE_TRAINING_EVENTS_DIR=str(events), ML_ONLINE_DRIFT_WINDOW="20",
                      ML_ONLINE_REDIS_PREFIX=f"d{time.monotonic_ns()}:")
    with running_service(env) as service, service.client() as client:
        for i in range(15):  # pages the model never saw: every prediction misses when the next page arrives
            for n in range(3):
                body = {"sessionId": f"drift-{i}", "context": {"currentPath": f"/unknown/{i}/{n}"}}
                assert client.post("/api/ml/predict", json=body).status_code == 200
        deadline = time.monotonic() + 10
        while True:
            metrics = client.get("/api/ml/metrics").json()
            if metrics["driftTriggers"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert metrics["driftTriggers"] == 1 and 0 <= metrics["driftWindowHr5"] < 0.9
        assert metrics["driftStartFailures"] == 0 and metrics["driftBusy"] == 0  # a training job was started


def test_without_an_events_dir_there_is_no_trigger(redis_server: RedisProcess, tmp_path: Path) -> None:
    model = build_predictor("ppm")
    model.fit(hub_sessions(100))
    env = service_env(redis_server.url, model.save(tmp_path / "ppm"))
    with running_service(env) as service, service.client() as client:
        assert "driftTriggers" not in client.get("/api/ml/metrics").json()
