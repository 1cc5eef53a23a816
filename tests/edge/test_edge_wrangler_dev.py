"""`npx wrangler dev` serves (issue 27): the build step writes src/generated/bundle.js only when its bytes
change, so wrangler's watcher of src/ does not rebuild in a loop (it restarted 74 times in 30 s before).
Runs wrangler dev offline on loopback against a bundled model and asks it for a prediction."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_harness import EDGE_TOKEN, get, post, require_edge_tools

from conftest import hub_sessions
from precache.edge.build import export_predictor
from precache.edge.workerd import EDGE, tool
from precache.models import build_predictor
from precache.processes import free_port

GENERATED = EDGE / "src" / "generated" / "bundle.js"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    require_edge_tools()
    model = build_predictor("ppm")
    model.fit(hub_sessions(200))
    export_predictor(model, "dev-v1", "table", 5).write(tmp_path / "model")
    return tmp_path / "model"


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """The lock build_worker takes: no other test rewrites src/generated/ while wrangler dev watches it."""
    with (EDGE / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def env_for(model_dir: Path) -> dict[str, str]:
    return {**os.environ, "MODEL_DIR": str(model_dir), "WRANGLER_SEND_METRICS": "false", "CI": "true",
            "NO_COLOR": "1"}


def test_build_rewrites_nothing_when_unchanged(model_dir: Path) -> None:
    with build_lock():
        for _ in range(2):
            subprocess.run(["node", "scripts/build.mjs"], cwd=EDGE, env=env_for(model_dir), check=True,
                           capture_output=True, timeout=60)
        before = GENERATED.stat().st_mtime_ns
        time.sleep(0.05)
        subprocess.run(["node", "scripts/build.mjs"], cwd=EDGE, env=env_for(model_dir), check=True,
                       capture_output=True, timeout=60)
        assert GENERATED.stat().st_mtime_ns == before
        assert "dev-v1" in GENERATED.read_text()


@pytest.mark.slow
def test_wrangler_dev_serves(model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "wrangler-dev.log"
    with build_lock(), log.open("wb") as out:
        proc = subprocess.Popen(
            [str(tool("wrangler")), "dev", "--ip", "127.0.0.1", "--port", str(port), "--inspector-port",
             str(free_port()), "--var", f"INFERENCE_TOKEN:{EDGE_TOKEN}"],
            cwd=EDGE, env=env_for(model_dir), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            status = 0
            while time.monotonic() < deadline and proc.poll() is None:
                with contextlib.suppress(OSError):
                    status, _ = get(url + "/healthz", timeout=2)
                    if status == 200:
                        break
                time.sleep(0.2)
            assert status == 200, log.read_text()[-3000:]
            status, body = post(url + "/predict", {"context": {"currentPath": "/hub"}})
            assert status == 200 and body["modelVersion"] == "dev-v1", body
            time.sleep(2.0)  # a build loop would restart it several times meanwhile
            restarts = log.read_text().count("restarting build")
            assert restarts <= 1, log.read_text()[-3000:]  # at most the first start's write of a new bundle
            status, body = post(url + "/predict", {"context": {"currentPath": "/hub"}})
            assert status == 200 and body["predictions"], body
            assert post(url + "/predict", {}, token=None)[0] == 401
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
