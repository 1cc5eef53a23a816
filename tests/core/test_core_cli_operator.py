"""The CLI as an operator meets it (issue 28): Ctrl-C stops training at once, outputs are checked before work,
a refused candidate has its own exit code, Redis down is a clear exit 2, secrets are masked, a wrong
MODEL_STORAGE_PATH and a log without page views fail loudly. Real processes, real files, real signals."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port

MAIN = "import sys; from precache.cli import main; sys.argv = ['precache', *sys.argv[1:]]; main()"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "MODEL_STORAGE_PATH": str(tmp_path / "models"), "MODEL_BACKUP_PATH": str(tmp_path / "bk"),
           "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "COLUMNS": "160", **extra}
    env.pop("PRECACHE_DEBUG", None)
    return env


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True,
                          env=_env(tmp_path, **env), timeout=120)


def sessions_file(tmp_path: Path) -> Path:
    """A small one-session-per-line file (MSNBC .seq style) that trains a Markov model in about a second."""
    rng = random.Random(1)
    lines = []
    for _ in range(400):
        page, pages = rng.randint(0, 20), []
        for _ in range(rng.randint(2, 8)):
            pages.append(str(page))
            page = (page + 1) % 30 if rng.random() < 0.5 else rng.randrange(30)  # HR@5 well below 1
        lines.append(" ".join(pages))
    path = tmp_path / "sessions.seq"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# A training worker that never ends and starts a grandchild: Ctrl-C must end both, at once.
_SLOW_WORKER = """
import os, subprocess, sys, time, pathlib
job = pathlib.Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
pathlib.Path(sys.argv[2]).write_text(f"{os.getpid()} {child.pid}")
print('{"progress": "training for ever"}', flush=True)
time.sleep(600)
"""

_TRAIN_WITH_SLOW_WORKER = """
import signal, sys, pathlib
signal.signal(signal.SIGINT, signal.default_int_handler)
import precache.training.pipeline as pipeline
worker, pids = sys.argv[1], sys.argv[2]
pipeline.worker_command = lambda job: [sys.executable, "-c", worker, str(job), pids]
from precache.cli import main
sys.argv = ["precache", *sys.argv[3:]]
main()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as ended
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ctrl_c_on_train_exits_130_within_5_s_and_ends_the_worker_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    trace = sessions_file(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", _TRAIN_WITH_SLOW_WORKER, _SLOW_WORKER, str(pids),
         "train", "--trace", str(trace), "--format", "seq"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    worker = grandchild = 0
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and pids.read_text()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None and pids.exists(), proc.communicate()[1]
        worker, grandchild = map(int, pids.read_text().split())
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in (worker, grandchild):
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert elapsed < 5.0, f"Ctrl-C took {elapsed:.1f} s"
    assert "aborted" in stderr and "Traceback" not in stderr
    time.sleep(0.2)
    assert not _alive(worker) and not _alive(grandchild), "the training worker's process group outlived Ctrl-C"
    assert not (tmp_path / "models" / "page-predictor").exists()


def test_train_checks_json_output_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    started = time.monotonic()
    out = run_cli(tmp_path, "train", "--trace", str(sessions_file(tmp_path)), "--format", "seq",
                  "--predictor", "markov", "--json", str(blocker / "x.json"))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: --json") and "Traceback" not in out.stderr
    assert not (tmp_path / "models" / "page-predictor").exists(), "trained (and registered) before failing"
    assert time.monotonic() - started < 30


def test_refused_candidate_exits_3_and_is_registered_rejected(tmp_path: Path) -> None:
    trace = str(sessions_file(tmp_path))
    first = run_cli(tmp_path, "train", "--trace", trace, "--format", "seq", "--predictor", "markov")
    assert first.returncode == 0, first.stderr
    refused = run_cli(tmp_path, "train", "--trace", trace, "--format", "seq", "--predictor", "markov",
                      "--target-accuracy", "0.99", "--json", str(tmp_path / "run.json"))
    assert refused.returncode == 3, refused.stderr
    assert "refused" in refused.stderr and "Traceback" not in refused.stderr
    outcome = json.loads((tmp_path / "run.json").read_text())["outcomes"][0]
    assert outcome["status"] == "rejected" and outcome["version"] == "v2"
    listed = json.loads(run_cli(tmp_path, "models", "list", "page-predictor", "--json").stdout)
    assert [(v["version"], v["role"]) for v in listed] == [("v1", "active"), ("v2", "")]


@pytest.mark.parametrize("args", [("collect-events", "--out", "EVENTS"),
                                  ("train", "--schedule", "daily", "--events", "EVENTS"), ("experiments", "list")])
def test_redis_down_is_exit_2_with_one_clear_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    args = tuple(str(tmp_path / "events") if a == "EVENTS" else a for a in args)
    out = run_cli(tmp_path, *args, REDIS_URL=f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert "Redis" in out.stderr and "REDIS_URL" in out.stderr
    assert "hunter2" not in out.stderr


def test_config_masks_the_redis_password_and_the_webhook_path(tmp_path: Path) -> None:
    out = run_cli(tmp_path, "config", REDIS_URL="redis://alice:s3cret-pw@redis.internal:6380/2",
                  ML_ALERT_WEBHOOK="https://hooks.example.com/services/T0/B0/XyZsecret",
                  PRECACHE_API_TOKEN="tok-123456")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["redis_url"] == "redis://alice:***@redis.internal:6380/2"
    assert shown["ml_alert_webhook"] == "https://hooks.example.com/***"
    assert "s3cret-pw" not in out.stdout and "XyZsecret" not in out.stdout and "tok-123456" not in out.stdout


@pytest.mark.parametrize("command", [("models", "list"), ("models", "show", "page-predictor"),
                                     ("models", "verify", "page-predictor")])
def test_missing_model_storage_path_fails_loudly(tmp_path: Path, command: tuple[str, ...]) -> None:
    out = run_cli(tmp_path, *command, MODEL_STORAGE_PATH=str(tmp_path / "no-such-store"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "MODEL_STORAGE_PATH" in out.stderr and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_json_log_with_an_unrecognised_status_field_fails_with_exit_2(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text("".join(json.dumps({"time": 1_700_000_000 + i, "remote_ip": f"10.0.0.{i % 5}", "method": "GET",
                                       "path": f"/p{i % 7}", "http_code": 200}) + "\n" for i in range(50)))
    out = run_cli(tmp_path, "trace-stats", str(log), "--format", "json")
    assert out.returncode == 2, out.stdout
    assert "--json-fields status=" in out.stderr and "Traceback" not in out.stderr
    fixed = run_cli(tmp_path, "trace-stats", str(log), "--format", "json", "--json-fields", "status=http_code")
    assert fixed.returncode == 0, fixed.stderr


def test_bad_time_format_directive_is_exit_2(tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text(json.dumps({"time": "2024-01-01 00:00:00", "path": "/a", "status": 200}) + "\n")
    out = run_cli(tmp_path, "trace-stats", str(log), "--format", "json", "--time-format", "%Q")
    assert out.returncode == 2 and "--time-format" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(("arm", "field"), [('b:1:{"version":"v99"}', "arms[1].params.version"),
                                            ('b:1:{"threshold":0.2}', "arms[1].params.threshold")])
def test_experiments_create_is_checked_against_the_registry_and_the_schema(tmp_path: Path, arm: str,
                                                                           field: str) -> None:
    (tmp_path / "models").mkdir()
    kind = "model_version" if "version" in arm else "warming"
    out = run_cli(tmp_path, "experiments", "create", "e1", "--kind", kind, "--arm", "a:1", "--arm", arm)
    assert out.returncode == 2, out.stderr
    assert field in out.stderr and "Traceback" not in out.stderr
