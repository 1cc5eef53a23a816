"""Alerts: ``for`` duration and hysteresis, and a webhook POSTed to a real HTTP receiver with retries."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from precache.monitoring.alerts import AlertEvaluator, AlertLoop, default_rules
from precache.monitoring.webhook import WebhookNotifier


def test_an_alert_fires_after_its_for_duration_and_resolves_past_the_hysteresis_band() -> None:
    ev = AlertEvaluator(default_rules(for_seconds=60))
    assert ev.evaluate({"accuracy": 0.70}, now=0) == []  # pending
    assert ev.evaluate({"accuracy": 0.70}, now=30) == []
    fired = ev.evaluate({"accuracy": 0.70}, now=60)
    assert [(e["alert"], e["status"]) for e in fired] == [("PrecachePredictionAccuracyLow", "firing")]
    assert [a["alert"] for a in ev.active()] == ["PrecachePredictionAccuracyLow"]
    # Flapping just above the threshold, inside the band: no resolution, no new firing.
    for t in range(61, 200, 10):
        assert ev.evaluate({"accuracy": 0.755 if t % 20 else 0.74}, now=t) == []
    assert ev.evaluate({"accuracy": None}, now=300) == []  # no data changes nothing
    resolved = ev.evaluate({"accuracy": 0.80}, now=310)
    assert [e["status"] for e in resolved] == ["resolved"] and ev.active() == []
    # A breach shorter than the for duration never fires.
    assert ev.evaluate({"p95Latency": 50.0}, now=400) == []
    assert ev.evaluate({"p95Latency": 1.0}, now=420) == []
    assert ev.evaluate({"p95Latency": 50.0}, now=470) == []


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    fail_first: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Receiver.fail_first > 0:
            _Receiver.fail_first -= 1
            self.send_response(503)
        else:
            _Receiver.received.append(body)
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.received, _Receiver.fail_first = [], 2
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


async def test_firing_and_resolution_reach_the_webhook_despite_failures(receiver: str) -> None:
    values: dict[str, float | None] = {"cacheHitRate": 0.5}
    clock = [0.0]
    notifier = WebhookNotifier(receiver, backoff_initial=0.01, attempts=4)
    loop = AlertLoop(AlertEvaluator(default_rules(for_seconds=10)), lambda: values, [notifier],
                     clock=lambda: clock[0])
    notifier.start()
    loop.tick()
    clock[0] = 10
    loop.tick()  # fires
    values["cacheHitRate"] = 0.99
    clock[0] = 20
    loop.tick()  # resolves
    await asyncio.wait_for(notifier.flush(), 10)
    await notifier.stop()
    assert [(e["alert"], e["status"]) for e in _Receiver.received] == [
        ("PrecacheCacheHitRateLow", "firing"), ("PrecacheCacheHitRateLow", "resolved")]
    assert notifier.stats.sent == 2 and notifier.stats.retries == 2 and notifier.stats.failed == 0


async def test_an_unreachable_webhook_gives_up_and_never_blocks() -> None:
    notifier = WebhookNotifier("http://127.0.0.1:9/unreachable", attempts=2, backoff_initial=0.01, max_queue=2)
    for i in range(5):
        notifier.notify({"alert": f"a{i}"})  # returns at once; the queue holds 2
    assert notifier.stats.dropped == 3
    notifier.start()
    await asyncio.wait_for(notifier.flush(), 10)
    await notifier.stop()
    assert notifier.stats.failed == 2 and notifier.stats.sent == 0
    with pytest.raises(ValueError):
        WebhookNotifier("file:///etc/passwd")
