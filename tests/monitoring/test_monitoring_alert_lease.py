"""One webhook per alert transition with two replicas of two workers each (issue 28): real ``precache serve
--workers 2`` processes on one real redis-server, a real HTTP webhook receiver. Before, every worker evaluated
and sent (two workers: every alert twice, 0.16 s apart); now the holder of a Redis lease sends, and the next
holder continues from the shared alert states instead of announcing a firing alert again."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))  # the service tests' process helpers
from serve_harness import running_services, service_env, train_model

from conftest import free_port


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


@pytest.mark.slow
def test_two_replicas_of_two_workers_send_one_webhook_per_transition(
        redis_server: Any, tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    model = train_model(tmp_path / "ppm")
    env = service_env(redis_server.url, model, PRECACHE_REDIS_PREFIX=f"t{free_port()}:", ML_ALERT_WEBHOOK=url,
                      PRECACHE_ALERTS__FOR_SECONDS="0", PRECACHE_ALERTS__INTERVAL_SECONDS="0.5",
                      PRECACHE_ALERTS__MEMORY_THRESHOLD_MB="0.001")  # the loaded model alone is above it
    with running_services((env, ("--workers", "2")), (env, ("--workers", "2"))) as (first, second):
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(4.0)  # eight more evaluation rounds in each of the four workers
        memory = [e for e in received if e["alert"] == "PrecacheMemoryHigh"]
        assert [e["status"] for e in memory] == ["firing"], received
        assert memory[0]["unit"] == "bytes" and memory[0]["value"] > memory[0]["threshold"]
        second.stop()
        # the second replica stopped (its lease handed back if it led): the first continues, silently
        time.sleep(3.0)
        with first.client() as api:
            alerts = api.get("/api/ml/metrics", params={"format": "json"}).json()["alerts"]
        assert [a["alert"] for a in alerts] == ["PrecacheMemoryHigh"]  # every worker shows the shared state
    assert [e["status"] for e in received if e["alert"] == "PrecacheMemoryHigh"] == ["firing"], received
