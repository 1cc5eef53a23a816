"""Scheduled training with real scheduler processes on a real Redis: the JSON job store, a schedule that
survives a killed scheduler (the missed run runs once on the next start), and two schedulers, one run."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from conftest import RedisProcess, shared_file
from precache.registry import ModelRegistry
from precache.training import TraceSource, TrainingConfig, TrainRequest
from precache.training.jobstore import trigger_from_json, trigger_to_json
from precache.training.scheduler import (
    AUTO_ID,
    JOBS_KEY,
    LOCK_KEY,
    SPECS_KEY,
    Schedule,
    add_schedule,
    parse_schedule,
    recent_runs,
)

NASA_JUL = "nasa-http/NASA_access_log_small.gz"


def request() -> TrainRequest:
    return TrainRequest("page-predictor", [TraceSource(str(shared_file(NASA_JUL)))],
                        config=TrainingConfig(predictor="markov", timeout_seconds=120))


def start_scheduler(tmp_path: Path, url: str, **extra_env: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": url, "MODEL_STORAGE_PATH": str(tmp_path / "models"),
           "MODEL_BACKUP_PATH": str(tmp_path / "bk"), **extra_env}
    return subprocess.Popen([sys.executable, "-c", "from precache.cli import main; main()", "scheduler",
                             "--lock-ttl", "2", "--grace", "600"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_schedules_and_triggers_round_trip_as_json() -> None:
    assert parse_schedule("daily").kind == "daily" and parse_schedule("90").seconds == 90
    with pytest.raises(ValueError, match="schedule must be"):
        parse_schedule("hourly")
    with pytest.raises(ValueError, match="seconds > 0"):
        parse_schedule("0")
    at = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    for schedule in (Schedule("once", at=at.isoformat()), Schedule("interval", seconds=30), Schedule("weekly"),
                     Schedule("monthly")):
        trigger = schedule.trigger()
        again = trigger_from_json(json.loads(json.dumps(trigger_to_json(trigger))))
        now = dt.datetime(2029, 12, 31, tzinfo=dt.UTC)
        assert again.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)


@pytest.mark.slow
def test_schedule_survives_a_killed_scheduler_and_runs_once(tmp_path: Path, private_redis: RedisProcess) -> None:
    url = private_redis.url
    client = redis.Redis.from_url(url)
    first = start_scheduler(tmp_path, url)
    try:
        # The run time is set once the scheduler leads (it installs declarations on each 0.7 s tick), not
        # before its process starts: on a loaded machine the start alone took longer than the 6 s.
        assert wait_for(lambda: client.exists(LOCK_KEY), 60), "the first scheduler never took the lead"
        fire_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)
        job = add_schedule(url, request(), parse_schedule("once", at=fire_at))
        assert wait_for(lambda: client.hexists(JOBS_KEY, job), 30), "the first scheduler never installed the job"
        state = json.loads(client.hget(JOBS_KEY, job))  # JSON, not pickle
        assert state["func"] == "precache.training.scheduler:scheduled_run"
        first.kill()  # dies before the run time
        first.wait()
        assert dt.datetime.now(dt.UTC) < fire_at
        time.sleep(max(0.0, (fire_at - dt.datetime.now(dt.UTC)).total_seconds()) + 1)
        assert recent_runs(url) == []  # nothing ran while no scheduler was up
        second = start_scheduler(tmp_path, url)
        try:
            assert wait_for(lambda: recent_runs(url), 90), "the missed run did not run on the next start"
            time.sleep(3)  # no second run
            runs = recent_runs(url)
            assert len(runs) == 1 and "error" not in runs[0], runs
            assert runs[0]["outcomes"][0]["status"] == "activated"
        finally:
            stop(second)
    finally:
        stop(first)
    reg = ModelRegistry(tmp_path / "models", tmp_path / "bk")
    assert [v.version for v in reg.versions("page-predictor")] == ["v1"]
    assert client.hexists(SPECS_KEY, job)


@pytest.mark.slow
def test_two_schedulers_run_a_job_once(tmp_path: Path, private_redis: RedisProcess) -> None:
    url = private_redis.url
    procs = [start_scheduler(tmp_path, url) for _ in range(2)]
    try:
        job = add_schedule(url, request(), parse_schedule("once", at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)))
        assert wait_for(lambda: recent_runs(url), 90), "the job never ran"
        time.sleep(5)  # both schedulers had their chance
        runs = recent_runs(url)
        assert len(runs) == 1 and runs[0]["job"] == job and "error" not in runs[0], runs
        assert all(p.poll() is None for p in procs)  # the standby is still standing by
    finally:
        for p in procs:
            stop(p)
    reg = ModelRegistry(tmp_path / "models", tmp_path / "bk")
    assert len(reg.versions("page-predictor")) == 1


def test_auto_training_setting_installs_its_schedule(tmp_path: Path, private_redis: RedisProcess) -> None:
    client = redis.Redis.from_url(private_redis.url)
    private_redis.stop()  # the scheduler starts while Redis is down: it stands by instead of dying
    proc = start_scheduler(tmp_path, private_redis.url, ML_AUTO_TRAINING_ENABLED="true", ML_TRAINING_SCHEDULE="weekly")
    try:
        time.sleep(1.5)
        assert proc.poll() is None
        private_redis.start()
        assert wait_for(lambda: client.hexists(JOBS_KEY, AUTO_ID), 30)
    finally:
        stop(proc)
    spec = json.loads(client.hget(SPECS_KEY, AUTO_ID))
    assert spec["schedule"]["kind"] == "weekly" and spec["request"]["modelType"] == "all"
    state = json.loads(client.hget(JOBS_KEY, AUTO_ID))
    assert state["trigger"] == {"type": "cron", "fields": {"day_of_week": "sun", "hour": "3", "minute": "0"},
                                "start_date": state["trigger"]["start_date"], "end_date": None, "jitter": None}
    assert dt.datetime.fromisoformat(state["next_run_time"]).weekday() == 6  # a Sunday, 03:00 UTC
