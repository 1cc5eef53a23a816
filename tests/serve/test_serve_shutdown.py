"""A clean stop under load (issue 28): ``precache serve`` gets SIGTERM while clients post predictions, and
exits 0 within 10 s (the default ``PRECACHE_SHUTDOWN_SECONDS``) for any number of workers, with no failed
in-flight request and no process left over -- also while Redis is frozen (the case that kept a worker in
"Waiting for application shutdown." for minutes). The 20-trial figure is ``bench/bench_shutdown.py``'s."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bench_shutdown import service_env, small_model, trial
from conftest import RedisProcess, free_port


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 1])
def test_sigterm_under_load_exits_0_in_time_without_failed_requests(redis_server: Any, tmp_path: Path,
                                                                    workers: int) -> None:
    env = service_env(redis_server.url, small_model(tmp_path / "ppm"), f"t{free_port()}:")
    for _ in range(2):
        t = trial(env, workers=workers, concurrency=6, load_seconds=1.5)
        assert t.exit_code == 0, t
        assert t.seconds_to_exit < 10, t
        assert t.failed_in_flight == 0, t
        assert t.answered > 0 and t.leftover_processes == 0, t


@pytest.mark.slow
def test_sigterm_with_redis_frozen_still_exits_in_time(tmp_path: Path) -> None:
    redis = RedisProcess()
    redis.start()
    assert redis.proc is not None
    try:
        env = service_env(redis.url, small_model(tmp_path / "ppm"), "frozen:")
        env["PRECACHE_SHUTDOWN_SECONDS"] = "6"
        proc = redis.proc
        # freeze Redis 1 s into the load (the trial sends SIGTERM after 2 s): every Redis call hangs
        freezer = threading.Timer(1.0, lambda: os.kill(proc.pid, signal.SIGSTOP))
        freezer.start()
        t = trial(env, workers=2, concurrency=4, load_seconds=2.0)
        freezer.join()
        assert t.exit_code == 0, t
        assert t.seconds_to_exit < 6 + 1, t  # the budget, plus the supervisor's half-second tick
        assert t.leftover_processes == 0, t
    finally:
        os.kill(redis.proc.pid, signal.SIGCONT)
        redis.stop()
    time.sleep(0)
