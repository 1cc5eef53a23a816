"""Training schedules an operator can see and remove (issue 28): ``POST /api/ml/train {"schedule": "daily"}``
three times made three schedules that neither the API nor the CLI listed or removed. Now an identical schedule
is one schedule, ``GET/DELETE /api/ml/schedules`` and ``precache schedules list|remove`` manage them (real
service, real redis-server, real CLI processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from serve_harness import TRAINING_KEY, running_service, service_env, train_model

MAIN = "import sys; from precache.cli import main; sys.argv = ['precache', *sys.argv[1:]]; main()"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.slow
def test_schedules_are_deduplicated_listed_and_removed(private_redis: Any, tmp_path: Path) -> None:
    redis_server = private_redis  # the schedules' keys are not prefixed: a redis-server of its own
    events = tmp_path / "events"
    events.mkdir()
    env = service_env(redis_server.url, train_model(tmp_path / "ppm"), PRECACHE_TRAINING_EVENTS_DIR=str(events))
    with running_service(env) as service, service.client(TRAINING_KEY) as admin:
        ids = {admin.post("/api/ml/train", json={"modelType": "page-predictor", "schedule": "daily"}).json()["jobId"]
               for _ in range(3)}
        assert len(ids) == 1, ids
        weekly = admin.post("/api/ml/train", json={"modelType": "page-predictor", "schedule": "weekly"}).json()
        listed = admin.get("/api/ml/schedules").json()["schedules"]
        assert sorted(s["schedule"] for s in listed) == ["daily", "weekly"], listed
        daily = ids.pop()
        assert admin.delete(f"/api/ml/schedules/{daily}").status_code == 200
        assert admin.delete(f"/api/ml/schedules/{daily}").status_code == 404
        assert [s["id"] for s in admin.get("/api/ml/schedules").json()["schedules"]] == [weekly["jobId"]]
        with service.client() as api:  # the API token cannot see them
            assert api.get("/api/ml/schedules").status_code == 403
    cli_env = {**os.environ, "REDIS_URL": redis_server.url}
    cli_env.pop("PRECACHE_DEBUG", None)
    for _ in range(2):
        out = cli(cli_env, "train", "--schedule", "3600", "--events", str(events))
        assert out.returncode == 0, out.stderr
    listed_cli = cli(cli_env, "schedules", "list")
    assert listed_cli.returncode == 0 and len(listed_cli.stdout.strip().splitlines()) == 2, listed_cli.stdout
    interval = next(line.split("\t")[0] for line in listed_cli.stdout.splitlines() if "every 3600 s" in line)
    assert cli(cli_env, "schedules", "remove", interval).returncode == 0
    gone = cli(cli_env, "schedules", "remove", interval)
    assert gone.returncode == 2 and "no training schedule" in gone.stderr
    assert cli(cli_env, "schedules", "remove", weekly["jobId"]).returncode == 0
    assert cli(cli_env, "schedules", "list").stdout.strip() == "no training schedules"
