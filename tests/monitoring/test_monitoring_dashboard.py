"""The dashboard in a real browser: Debian's chromium driven by Playwright against uvicorn on loopback."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from conftest import free_port
from precache.cache import PredictiveCache
from precache.monitoring.alerts import AlertEvaluator, default_rules
from precache.monitoring.dashboard import COOKIE, dashboard_router
from precache.monitoring.monitor import Monitor, watch_cache
from precache.monitoring.summary import summarize

TOKEN = "dash-secret-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _app(monitor: Monitor, cache: PredictiveCache) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(traffic())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    memory = AlertEvaluator([r for r in default_rules(for_seconds=0) if r.metric == "memoryBytes"])
    memory.evaluate({"memoryBytes": 150 * 1024 * 1024}, time.time())  # firing: 150 MiB > 90 MiB

    async def summary(duration_ms: float) -> dict[str, object]:
        return summarize(monitor.snapshot(), duration_ms, memory.active())

    async def models() -> dict[str, object]:
        return {"active": {"name": "page-predictor", "version": "v7"},
                "history": [{"name": "page-predictor", "version": "v7", "status": "active", "reason": "HR@5 0.81"}]}

    monitor.add_section("experiments", lambda: {"at": time.time(), "experiments": [{
        "id": "a-rather-long-experiment-identifier-for-the-warming-comparison", "kind": "warming",
        "scope": "session", "status": "running", "control": "control-arm-with-a-long-name", "assignments": {},
        "sampleRatioMismatch": True, "arms": [{
            "arm": "treatment-arm-with-an-equally-long-name", "control": 0.51234, "treatment": 0.61234,
            "diff": 0.1, "pValue": 0.0001234,
            "verdict": "significant, but below the minimum sample size"}]}]})

    app.include_router(dashboard_router(TOKEN, summary, models, interval=0.3))

    async def traffic() -> None:
        i = 0
        while True:  # a key space that keeps growing: the hit ratio moves as traffic flows
            i += 1
            await cache.get(f"page-{i % (10 + i // 20)}", loader=lambda: "x" * 100)
            monitor.record_prediction(0.0002 + (i % 7) * 0.001, session_id=f"s{i % 3}", pages=["/a", "/b"],
                                      model_version="v7")
            monitor.record_page_view(f"s{(i + 1) % 3}", "/a" if i % 4 else "/z")
            await asyncio.sleep(0.01)

    return app


@pytest.fixture
def server() -> Iterator[tuple[str, _LogCapture]]:
    cache = PredictiveCache()
    monitor = Monitor(watch_cache(cache))
    port = free_port()
    capture = _LogCapture()
    config = uvicorn.Config(_app(monitor, cache), host="127.0.0.1", port=port, log_level="info", access_log=True)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    logging.getLogger("uvicorn.access").addHandler(capture)  # after start: uvicorn configures logging then
    yield f"http://127.0.0.1:{port}", capture
    srv.should_exit = True
    thread.join(timeout=10)
    logging.getLogger("uvicorn.access").removeHandler(capture)


def test_events_and_page_need_the_signed_cookie(server: tuple[str, _LogCapture]) -> None:
    base, _ = server
    with httpx.Client(base_url=base, follow_redirects=False) as client:
        assert client.get("/dashboard/events").status_code == 401
        assert "API token" in client.get("/dashboard").text  # the login form, not the dashboard
        assert client.post("/dashboard/login", data={"token": "wrong"}).status_code == 401
        client.cookies.set(COOKIE, "9999999999.forged", path="/dashboard")
        assert client.get("/dashboard/events").status_code == 401
        assert client.get("/dashboard/static/../../etc/passwd").status_code == 404


@pytest.mark.slow
def test_the_dashboard_renders_live_charts_in_chromium(server: tuple[str, _LogCapture], browser: Any) -> None:
    base, log = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base}/dashboard")
        page.fill("input[name=token]", "not-the-token")
        page.click("button[type=submit]")
        assert "wrong token" in page.content()
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/dashboard")
        cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
        assert TOKEN not in cookie["value"]
        page.wait_for_function("Number(document.body.dataset.updates || 0) >= 3", timeout=60_000)
        assert page.locator(".uplot canvas").count() >= 6  # six charts drawn
        shown = ("#v-hitRate", "#v-latency", "#v-accuracy", "#v-memory")
        first = tuple(page.inner_text(sel) for sel in shown)
        page.wait_for_function("Number(document.body.dataset.updates || 0) >= 12", timeout=60_000)
        second = tuple(page.inner_text(sel) for sel in shown)
        assert first != second, "the values did not change while traffic flowed"
        assert "%" in second[0] and "ms" in second[1]
        assert "v7" in page.inner_text("#model")
        assert "HR@5 0.81" in page.inner_text("#history")  # the gate column
        alert = page.inner_text("#alerts")  # value and threshold in the same unit as the summary
        assert "150.0 MiB" in alert and "90.0 MiB" in alert and "157286400" not in alert, alert
        assert "treatment-arm-with-an-equally-long-name" in page.inner_text("#experiments")
        # nothing spills out of the side card (a wide table scrolls inside it) or out of the page
        spill = page.evaluate(
            "() => { const c = document.querySelector('.side').getBoundingClientRect();"
            " return Math.max(0, ...[...document.querySelectorAll('.side .scroll, .side ul')]"
            ".map((e) => e.getBoundingClientRect().right - c.right)); }")
        assert spill <= 1, spill
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        assert log.lines, "uvicorn's access log was not captured"
        assert not any(TOKEN in line for line in log.lines)
    finally:
        page.close()  # before the server stops: an open page keeps its event stream (and uvicorn) waiting


def test_gate_column_reads_the_gate_decision_of_accepted_and_rejected_versions() -> None:
    from precache.registry.store import VersionInfo
    from precache.serve.model_history import gate_reason

    accepted = VersionInfo("page-predictor", "v1", "", "ppm", "accepted", "",
                           gate={"accepted": True, "reason": "HR@5 0.4123, no active model to compare"})
    rejected = VersionInfo("page-predictor", "v2", "", "ppm", "rejected", "HR@5 0.30 is below the target 0.50",
                           gate={"accepted": False, "reason": "HR@5 0.30 is below the target 0.50"})
    assert gate_reason(accepted) == "HR@5 0.4123, no active model to compare"  # was blank: read from .reason
    assert gate_reason(rejected) == "HR@5 0.30 is below the target 0.50"
