"""``python -m precache.serve.trainjob JOB_ID``: run one training job recorded in Redis, out of the service.

Started by the replica that accepted ``POST /api/ml/train``. It reads the job record, runs the training
pipeline (collect -> train in a worker process with a timeout -> evaluate -> gate -> register -> activate)
against the registry on ``MODEL_STORAGE_PATH``, writes each stage and the final outcome (per model: status,
version, the gate's decision and reason) back to the record, and releases the one-job lock. The registry's
activation notifies every replica, which then loads the new version.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import traceback
from typing import Any


def run(job_id: str) -> int:
    import redis

    from precache.config import get_settings
    from precache.registry import open_registry
    from precache.serve.jobs import HEARTBEAT_SECONDS, SyncJobStore
    from precache.serve.settings import get_serve_settings
    from precache.training import TrainRequest, run_pipeline

    settings, serve = get_settings(), get_serve_settings()
    client: Any
    if serve.redis_cluster:
        from redis.cluster import RedisCluster

        client = RedisCluster.from_url(settings.redis_url)
    else:
        client = redis.Redis.from_url(settings.redis_url)
    store = SyncJobStore(client, serve.redis_prefix, serve.training_job_retention_seconds)
    job = store.get(job_id)
    if job is None:
        print(f"training job {job_id} is not recorded in Redis", file=sys.stderr)
        return 2
    stop = threading.Event()

    def heartbeat() -> None:  # the alive key that tells replicas this process still runs (see jobs.py)
        while not stop.is_set():
            try:
                store.beat(job_id)
            except Exception as exc:  # Redis away for a moment: the next beat may work
                print(f"heartbeat: {exc}", file=sys.stderr)
            stop.wait(HEARTBEAT_SECONDS)

    beater = threading.Thread(target=heartbeat, name="heartbeat", daemon=True)
    beater.start()
    try:
        store.update(job, status="running", stage="collect", pid=os.getpid(), host=socket.gethostname())
        request = TrainRequest.from_json(job["request"])

        def progress(message: str) -> None:
            store.update(job, stage=message[:300])

        result = run_pipeline(request, open_registry(settings), progress=progress)
        outcomes = result.as_dict()
        count_run("succeeded", [o.status for o in result.outcomes])
        store.update(job, status="succeeded", stage="done", outcomes=outcomes.get("outcomes", []),
                     dataSpan=outcomes.get("data_span"), seconds=round(result.seconds, 2))
        return 0
    except Exception as exc:  # recorded for GET /api/ml/train/{id}; the registry is unchanged by a failure
        store.update(job, status="failed", stage="failed", error=f"{type(exc).__name__}: {exc}"[:1000])
        count_run("failed", [])
        traceback.print_exc()
        return 1
    finally:
        stop.set()
        beater.join(timeout=HEARTBEAT_SECONDS + 1)
        store.stop_beating(job_id)
        store.release(job_id)
        client.close()


def count_run(result: str, statuses: list[str]) -> None:
    """Count this run and its gate decisions in the replica's metrics (``precache_training_runs_total``,
    ``precache_gate_decisions_total``): this process writes its own cumulative series into the replica
    directory it inherited from ``precache serve``, which keeps them after it exits."""
    from precache.monitoring.replica import ReplicaWriter, replica_dir
    from precache.monitoring.snapshot import Snapshot, series_key

    if replica_dir() is None:
        return
    values = {series_key("precache_training_runs_total", {"result": result}): 1.0}
    for decision in ("accepted", "rejected"):
        count = sum(1 for s in statuses if (s == "rejected") == (decision == "rejected") and s != "skipped")
        if count:
            values[series_key("precache_gate_decisions_total", {"decision": decision})] = float(count)
    try:
        ReplicaWriter().write(Snapshot(values=values))
    except OSError as exc:  # metrics must not fail a training job that succeeded
        print(f"metrics: {exc}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m precache.serve.trainjob JOB_ID", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1]))
