"""Drift-triggered retraining in the service: the online HR@5 tracker starts a training job through the same
pipeline and gate as ``POST /api/ml/train`` (:class:`precache.online.drift.DriftTrigger`).

Installed when the online layer is on and the service collects training events
(``PRECACHE_TRAINING_EVENTS_DIR``): the retrain trains on what the service saw. The reference is the active
model's held-out HR@5 (``test_hr5`` in its manifest, written by the training pipeline); a model without one
never triggers. One job at a time across replicas (the job store's claim), at most one trigger per
``ML_ONLINE_DRIFT_MIN_INTERVAL_SECONDS`` per replica; counters in ``/api/ml/metrics`` and the dashboard.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

from precache.online.drift import DriftTrigger
from precache.online.settings import OnlineSettings
from precache.serve.jobs import new_job
from precache.serve.registry_routes import job_store, spawn_job, training_request
from precache.serve.schemas import TrainRequestIn
from precache.serve.state import ServiceState

log = logging.getLogger("precache.serve.drift")


@lru_cache(maxsize=8)
def held_out_hr5(directory: Path) -> float | None:
    """The ``test_hr5`` a model's manifest records (None when it has none)."""
    try:
        metrics = json.loads((directory / "manifest.json").read_text()).get("metrics") or {}
        value = metrics.get("test_hr5")
        return float(value) if isinstance(value, int | float) else None
    except (OSError, ValueError, AttributeError):
        return None


async def start_retrain(state: ServiceState, trigger: DriftTrigger) -> None:
    """One training job (events collected by the service), unless one is already running."""
    try:
        request = training_request(state, TrainRequestIn())
        jobs = job_store(state)
        job = new_job(request)
        running = await jobs.claim(job, float(request["config"].get("timeoutSeconds") or 3600.0))
        if running is not None:
            trigger.busy += 1
            return
        await spawn_job(state, job["jobId"])
        trigger.jobs.append(job["jobId"])
        log.warning("online HR@5 %.4f stayed below the active model's; retrain job %s started",
                    trigger.last_hr5 or 0.0, job["jobId"])
    except Exception as exc:  # a failed start is counted and logged, never raised into the request path
        trigger.failures += 1
        log.error("drift retrain could not start: %s: %s", type(exc).__name__, exc)


def install(state: ServiceState, online: OnlineSettings) -> DriftTrigger | None:
    if state.online is None or state.serve.training_events_dir is None or not online.drift_retrain:
        return None
    models = state.models

    def baseline() -> float | None:
        current = models.current
        return held_out_hr5(current.directory) if current is not None else None

    trigger = DriftTrigger(baseline, lambda: None, margin=online.drift_margin, window=online.drift_window,
                           min_interval=online.drift_min_interval_seconds)
    trigger.start = lambda: state.spawn(start_retrain(state, trigger))
    state.monitoring.monitor.add_scored_listener(trigger.scored)
    state.monitoring.monitor.add_section("drift", trigger.snapshot)
    for name in ("driftTriggers", "driftSuppressed", "driftWindowHr5", "driftBusy", "driftStartFailures"):
        state.metrics.gauges[name] = (lambda name=name: trigger.snapshot()[name])  # type: ignore[misc]
    return trigger
