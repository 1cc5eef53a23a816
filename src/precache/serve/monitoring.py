"""The service's monitoring: one :class:`~precache.monitoring.Monitor` per worker, summed over workers.

What the service feeds it: every served prediction (latency, and the predicted pages for online
scoring), every page view it learns of (``/predict``'s ``currentPath`` and ``/events`` page views, which
score the session's previous prediction), and the cache accesses back ends report through ``/events``
(their ``tier``), which give the hit ratio of the caches that report to this service. Memory is the
loaded model's bytes on disk. Two scopes, on purpose: the Prometheus exposition (``/metrics``) is this
replica's workers summed through the replica directory (:mod:`precache.monitoring.replica`; Prometheus sums
replicas); the JSON summary and the alerts are the deployment's: each worker publishes its snapshot to Redis
(:class:`~precache.monitoring.share.RedisSnapshotShare`) and the JSON sums every live worker of every
replica (it says how many); without Redis, this worker's own figures.
Alerts are evaluated on the summed 1-hour summary and POSTed to ``ML_ALERT_WEBHOOK`` when set, by one process
of the deployment at a time (a Redis lease, :class:`~precache.monitoring.lease.AlertLeadership`); a failing
evaluation is logged and counted (``alert_errors``, the ``alertLoopErrors`` gauge), never silently dropped.
The monitor is also the one record of served predictions: ``/api/ml/metrics``' ``predictions`` (by type) and
``predictionLatencyMs`` (percentiles estimated from the latency histogram of the chosen window) are read
from the merged snapshot (:func:`prediction_figures`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from precache.defaults import PAGE_PREDICTOR
from precache.monitoring.alerts import AlertEvaluator, AlertLoop, Notifier, rules_from_settings
from precache.monitoring.background import STOP_SECONDS, bounded, cancel_task, raise_if_cancelling
from precache.monitoring.exposition import render_prometheus
from precache.monitoring.lease import AlertLeadership
from precache.monitoring.monitor import WINDOW_FIELDS, Monitor, MonitorSources
from precache.monitoring.replica import ReplicaWriter, read_replica, replica_dir
from precache.monitoring.share import RedisSnapshotShare
from precache.monitoring.snapshot import Snapshot, parse_series_key
from precache.monitoring.summary import quantile_from_buckets, snap_duration, summarize
from precache.monitoring.webhook import WebhookNotifier

log = logging.getLogger("precache.serve")
ALERT_WINDOW_MS = 3_600_000
_TIER_STAT = {"l1": "l1_hits", "l2": "l2_hits", "stale": "stale_hits", "origin": "misses", "miss": "misses"}


class ReportedAccesses:
    """Cache accesses back ends report through ``/events``, counted like ``CacheStats``."""

    def __init__(self) -> None:
        self.counts = {"l1_hits": 0, "l2_hits": 0, "stale_hits": 0, "misses": 0}

    def record(self, tier: str) -> None:
        stat = _TIER_STAT.get(tier)
        if stat is not None:
            self.counts[stat] += 1

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


_PREDICTIONS = WINDOW_FIELDS.index("predictions")
_BUCKET0 = WINDOW_FIELDS.index("latency_bucket_0")


def prediction_figures(snapshot: Snapshot, duration_ms: float) -> dict[str, Any]:
    """``predictions`` (served since the workers started, by type) and ``predictionLatencyMs`` over the kept
    window nearest ``duration_ms``: its count and p50/p95/p99 interpolated inside the histogram's buckets
    (the estimate Prometheus' ``histogram_quantile`` gives), in milliseconds."""
    by_type: dict[str, int] = {}
    for key, value in snapshot.values.items():
        family, labels = parse_series_key(key)
        if family == "precache_predictions_total":
            by_type[labels.get("type", "unknown")] = int(value)
    window = snap_duration(duration_ms)
    vector = snapshot.windows.get(window, {}).get("current") or [0.0] * len(WINDOW_FIELDS)
    buckets = vector[_BUCKET0:]

    def ms(q: float) -> float | None:
        seconds = quantile_from_buckets(q, buckets)
        return None if seconds is None else round(seconds * 1000, 3)

    return {"predictions": by_type,
            "predictionLatencyMs": {"windowMs": int(window) * 1000, "count": int(vector[_PREDICTIONS]),
                                    "p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99)}}


def directory_bytes(directory: Path | None) -> int:
    if directory is None or not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


class ServiceMonitoring:
    def __init__(self, settings: Any, redis: Any | None, model_dir: Callable[[], Path | None], *,
                 prefix: str = "", share_interval: float = 2.0,
                 model_version: Callable[[], str | None] | None = None) -> None:
        self._model_version = model_version  # every worker reports the version it serves (precache_model_info)
        self.accesses = ReportedAccesses()
        self._model_dir = model_dir
        self._model_bytes: tuple[Path | None, int] = (None, 0)
        self.monitor = Monitor(
            MonitorSources(cache_stats=self.accesses.as_dict, model_bytes=self.model_bytes),
            session_gap=float(settings.session_gap_seconds),
        )
        # Series that exist before their first event (a panel shows 0, not "No data"): training runs and gate
        # decisions (counted by the training job process, precache.serve.trainjob), edge fallbacks.
        self.monitor.training_runs.update(dict.fromkeys(("succeeded", "failed"), 0))
        self.monitor.gate_decisions.update(dict.fromkeys(("accepted", "rejected"), 0))
        self.monitor.edge_fallbacks.update(dict.fromkeys(("timeout", "error", "breaker_open"), 0))
        # One hash tag per deployment prefix, so the workers' keys share a Cluster slot.
        self.share = (RedisSnapshotShare(redis, self.monitor, interval=share_interval,
                                         prefix="{" + prefix + "precache:metrics}") if redis is not None else None)
        self.evaluator = AlertEvaluator(rules_from_settings(settings))
        self.webhook = WebhookNotifier(settings.ml_alert_webhook) if settings.ml_alert_webhook else None
        notifiers: list[Notifier] = [self.webhook] if self.webhook is not None else []
        self.alerts = AlertLoop(self.evaluator, self._alert_values, notifiers)
        self.alert_interval = float(settings.alerts.interval_seconds)
        # one sender per deployment: the lease holder among every worker of every replica (see lease.py)
        self.leadership = (AlertLeadership(redis, self.evaluator, "{" + prefix + "precache:alerts}",
                                           f"{socket.gethostname()}-{os.getpid()}", self.alert_interval)
                           if redis is not None else None)
        self._last_summary: dict[str, Any] = {}
        self.alert_errors = 0
        self._alert_task: asyncio.Task[None] | None = None
        self.replica_path = replica_dir()
        self.replica = ReplicaWriter() if self.replica_path else None
        self._replica_task: asyncio.Task[None] | None = None

    def model_bytes(self) -> int:
        directory = self._model_dir()
        if directory != self._model_bytes[0]:
            self._model_bytes = (directory, directory_bytes(directory))
        return self._model_bytes[1]

    # -- what the routes report ----------------------------------------------------------------------
    def page_view(self, session_id: str, page: str) -> None:
        self.monitor.record_page_view(session_id, page)

    def prediction(self, seconds: float, kind: str, session_id: str | None = None, pages: Sequence[str] = (),
                   version: str | None = None) -> None:
        self.monitor.record_prediction(seconds, kind=kind, session_id=session_id, pages=pages,
                                       model_version=version)

    def access(self, tier: str) -> None:
        self.accesses.record(tier)

    def set_model(self, name: str, version: str) -> None:
        self.monitor.set_model(name, version)

    # -- reading ----------------------------------------------------------------------------------
    async def merged(self) -> tuple[Snapshot, int]:
        """The sum over live workers; this worker alone when Redis is missing or failing."""
        if self.share is not None:
            try:
                return await self.share.collect()
            except Exception as exc:
                log.warning("metrics: Redis unavailable, answering for this worker only (%s)", exc)
        return self.monitor.snapshot(), 1

    async def summary(self, duration_ms: float) -> dict[str, Any]:
        snapshot, workers = await self.merged()
        out = summarize(snapshot, duration_ms, self.evaluator.active())
        out["workers"] = workers
        return out

    async def metrics_json(self, duration_ms: float) -> dict[str, Any]:
        """The summary plus the prediction figures, from one merged snapshot."""
        snapshot, workers = await self.merged()
        out = summarize(snapshot, duration_ms, self.evaluator.active())
        out["workers"] = workers
        out.update(prediction_figures(snapshot, duration_ms))
        return out

    async def prometheus(self) -> bytes:
        """This replica's exposition: its workers summed through the replica directory (never other replicas,
        never through Redis); a process started without one (plain ``uvicorn``) reports itself."""
        self._note_model()
        snapshot = self.monitor.snapshot()
        if self.replica is None:
            return render_prometheus(snapshot)
        self.replica.write(snapshot)
        path = self.replica_path
        assert path is not None
        merged = await asyncio.to_thread(read_replica, path)
        return render_prometheus(merged)

    async def _replica_run(self, interval: float = 1.0) -> None:
        """Write this worker's snapshot into the replica directory about once a second (a scrape answered by
        another worker reads it)."""
        assert self.replica is not None
        while True:
            try:
                self._note_model()
                self.replica.write(self.monitor.snapshot())
            except Exception as exc:  # a full disk must not end the loop; the scrape shows the last values
                raise_if_cancelling(exc)
                log.warning("metrics: cannot write this worker's snapshot (%s)", exc)
            await asyncio.sleep(interval)

    def _note_model(self) -> None:
        version = self._model_version() if self._model_version is not None else None
        if version is not None:
            self.monitor.set_model(PAGE_PREDICTOR, version)

    def _alert_values(self) -> dict[str, Any]:
        return self._last_summary

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self.monitor.start()
        if self.share is not None:
            self.share.start()
        if self.webhook is not None:
            self.webhook.start()
        self._alert_task = asyncio.get_running_loop().create_task(self._alert_run())
        if self.replica is not None:
            self._replica_task = asyncio.get_running_loop().create_task(self._replica_run())

    async def _alert_run(self) -> None:
        while True:
            await self.alert_once()
            await asyncio.sleep(self.alert_interval)

    async def alert_once(self) -> None:
        """One evaluation; a failure (Redis, a notifier, a bug) is logged and counted, and the loop goes on."""
        try:
            self._last_summary = await self.summary(ALERT_WINDOW_MS)
            if self.leadership is None:
                self.alerts.tick()  # no Redis: this process alone
            else:
                await self.leadership.step(self.alerts.tick)
        except Exception as exc:
            raise_if_cancelling(exc)
            self.alert_errors += 1
            log.exception("alert evaluation failed (%d so far); alerts are stale until it works again",
                          self.alert_errors)

    async def stop(self, within: float = STOP_SECONDS) -> None:
        """Stop every loop at once, each within ``within`` seconds (a hung one is abandoned, logged); hand the
        alert lease back so another process takes over at once, and send what the webhook still holds."""
        if self.leadership is not None and self.leadership.leading:
            await bounded(self.leadership.lease.release(), within / 2, "alerts: releasing the lease")
        if self.webhook is not None:
            await bounded(self.webhook.flush(), within / 2, "alerts: sending the queued webhooks")
        stops = [cancel_task(self._alert_task, within), cancel_task(self._replica_task, within),
                 self.monitor.stop(within)]
        stops += [self.share.stop(within)] if self.share is not None else []
        stops += [self.webhook.stop(within)] if self.webhook is not None else []
        await asyncio.gather(*stops)
