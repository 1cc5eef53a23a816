"""In-process checks of the service's parts that HTTP tests cannot see directly: the dashboard's model panel
reads the registry only when it changed (and off the event loop), the alert loop logs and counts its
failures, the prediction figures of ``/api/ml/metrics`` come from the monitor's histogram, and startup
freezes the heap so full collections skip it."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from serve_harness import train_model

from precache.monitoring.families import LATENCY_BUCKETS
from precache.monitoring.monitor import Monitor


def test_model_history_reads_the_registry_once_per_revision_in_a_thread(tmp_path: Path) -> None:
    from precache.registry import ModelRegistry
    from precache.serve.model_history import ModelHistory

    registry = ModelRegistry(tmp_path / "models", tmp_path / "backups")
    model = train_model(tmp_path / "ppm")
    registry.register("page-predictor", model)
    registry.activate("page-predictor", "v1")
    loop_thread: list[int] = []
    read_threads: list[int] = []
    versions = registry.versions

    def spying_versions(name: str) -> Any:
        read_threads.append(threading.get_ident())
        return versions(name)

    registry.versions = spying_versions  # type: ignore[method-assign]
    history = ModelHistory(registry, lambda: "v1")

    async def ticks(n: int) -> list[dict[str, Any]]:
        loop_thread.append(threading.get_ident())
        return [await history() for _ in range(n)]

    first = asyncio.run(ticks(5))
    assert history.reads == 1  # five dashboard ticks, one read of the versions
    assert first[-1]["active"] == {"name": "page-predictor", "version": "v1"}
    assert [(h["name"], h["version"], h["status"]) for h in first[-1]["history"]] == [("page-predictor", "v1",
                                                                                        "accepted")]
    assert read_threads and loop_thread[0] not in read_threads  # never on the event loop's thread
    registry.register("page-predictor", model, status="rejected", reason="below target")  # the revision moves
    second = asyncio.run(ticks(3))
    assert history.reads == 2
    assert [(h["version"], h["status"], h["reason"]) for h in second[-1]["history"]][-1] == ("v2", "rejected",
                                                                                             "below target")


def test_alert_loop_failures_are_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    from precache.config import Settings
    from precache.serve.monitoring import ServiceMonitoring

    monitoring = ServiceMonitoring(Settings(ml_alert_webhook=None), None, lambda: None)

    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("notifier exploded")

    monitoring.alerts.tick = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="precache.serve"):
        asyncio.run(monitoring.alert_once())
        asyncio.run(monitoring.alert_once())
    assert monitoring.alert_errors == 2
    failures = [r for r in caplog.records if "alert evaluation failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None
    assert "notifier exploded" in caplog.text


def test_prediction_figures_come_from_the_monitor_histogram() -> None:
    from precache.serve.monitoring import prediction_figures

    monitor = Monitor()
    for _ in range(90):
        monitor.record_prediction(0.0003, kind="page")  # in the (0.25 ms, 0.5 ms] bucket
    for _ in range(10):
        monitor.record_prediction(0.02, kind="cache")  # in the (10 ms, 25 ms] bucket
    figures = prediction_figures(monitor.snapshot(), 60_000)
    assert figures["predictions"] == {"page": 90, "cache": 10}
    latency = figures["predictionLatencyMs"]
    assert latency["count"] == 100 and latency["windowMs"] == 60_000
    assert 0.25 < latency["p50"] <= 0.5 and 10 < latency["p99"] <= 25
    assert LATENCY_BUCKETS[1] == 0.00025  # the bounds the assertions above rely on
    empty = prediction_figures(Monitor().snapshot(), 3_600_000)
    assert empty["predictionLatencyMs"] == {"windowMs": 3_600_000, "count": 0, "p50": None, "p95": None, "p99": None}


def test_startup_freezes_the_heap_and_a_model_install_freezes_the_model() -> None:
    from precache.serve.heap import freeze_model, heap_gauges, settle_after_startup

    try:
        settle_after_startup()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the imports alone are tens of thousands of objects
        tables = [[str(i)] for i in range(5_000)]  # a model's tables (lists: always tracked), made after startup
        freeze_model()
        assert gc.get_freeze_count() >= frozen + 5_000
        assert heap_gauges()["gcFrozenObjects"]() == gc.get_freeze_count()
        del tables
    finally:
        gc.unfreeze()  # the rest of this pytest process keeps the normal collector


def test_assets_belong_to_the_view_before_them_once_per_view() -> None:
    from precache.serve.assets import views_and_assets

    events = [(None, "/logo.png"), ("/a", None), (None, "/x.js"), (None, "/x.js"), ("/b", "/b-key"), (None, "/x.js"),
              ("/a", None), (None, "/y.css")]
    views, together = views_and_assets(["/entry", "/home"], events)
    assert views == {"/a": 2, "/b": 1}  # a page view that names its cache key is a view, not an asset
    assert together == {("/home", "/logo.png"): 1, ("/a", "/x.js"): 1, ("/b", "/x.js"): 1, ("/a", "/y.css"): 1}
    assert views_and_assets([], [(None, "/orphan.png")]) == ({}, {})  # no page before it: nobody's asset
