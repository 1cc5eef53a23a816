"""Training on a schedule: APScheduler 3 with its Redis job store, one scheduler process at a time.

Why this shape: APScheduler 3's job stores must not be shared by two running schedulers. So every
scheduler process first takes a Redis lock (``precache:scheduler:lock``, renewed every ``ttl/3``); the one
holding it runs APScheduler, the others stand by and take over when the lock expires (its holder died or
lost Redis). Jobs live in Redis (:class:`~precache.training.jobstore.JsonRedisJobStore`), so a schedule
survives a restart; with ``coalesce`` and ``misfire_grace_time`` a run missed while no scheduler was up
runs once when the next leader starts (within the grace window). Because only the lock holder processes
jobs, and APScheduler moves a job's next run time before it runs it, two scheduler processes never run
the same job twice.

Schedules are declared in a Redis hash (``precache:schedules``: id → the training request and its
schedule) by ``precache train --schedule`` or the HTTP API; the leader installs new or changed
declarations into APScheduler on each renewal tick. A scheduled run is :func:`scheduled_run`: the full
pipeline, training in a worker process with a timeout; its outcome is appended to ``precache:schedules:runs``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from precache.config import TrainingSchedule
from precache.training.request import TrainRequest

log = logging.getLogger(__name__)

LOCK_KEY = "precache:scheduler:lock"
SPECS_KEY = "precache:schedules"
RUNS_KEY = "precache:schedules:runs"
JOBS_KEY = "precache:apscheduler:jobs"
RUN_TIMES_KEY = "precache:apscheduler:run_times"
AUTO_ID = "auto-training"
RUN_FUNC = "precache.training.scheduler:scheduled_run"
KEEP_RUNS = 200


@dataclass(frozen=True, slots=True)
class Schedule:
    """``once`` (at ``at``, default now), ``daily`` / ``weekly`` / ``monthly`` (03:00 UTC; weekly on Sunday,
    monthly on the 1st), or ``interval`` every ``seconds`` (for tests and the API)."""

    kind: str
    seconds: float | None = None
    at: str | None = None

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.date import DateTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        utc = dt.UTC
        if self.kind == "once":
            return DateTrigger(run_date=dt.datetime.fromisoformat(self.at) if self.at else dt.datetime.now(utc),
                               timezone=utc)
        if self.kind == "interval":
            return IntervalTrigger(seconds=float(self.seconds or 0), timezone=utc)
        fields = {"daily": {"hour": "3", "minute": "0"},
                  "weekly": {"day_of_week": "sun", "hour": "3", "minute": "0"},
                  "monthly": {"day": "1", "hour": "3", "minute": "0"}}[self.kind]
        return CronTrigger(timezone=utc, **fields)


def parse_schedule(text: str, at: dt.datetime | None = None) -> Schedule:
    """``once|daily|weekly|monthly`` or a number of seconds (an interval)."""
    value = text.strip().lower()
    if value in {s.value for s in TrainingSchedule}:
        return Schedule(value, at=(at or dt.datetime.now(dt.UTC)).isoformat() if value == "once" else None)
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"schedule must be once, daily, weekly, monthly or seconds, got {text!r}") from None
    if not seconds > 0:
        raise ValueError(f"an interval schedule needs seconds > 0, got {text!r}")
    return Schedule("interval", seconds=seconds)


def _client(redis_url: str) -> Any:
    import redis

    return redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)


def schedule_id(request: TrainRequest, schedule: Schedule) -> str:
    """The id of a schedule, derived from what it runs and when: declaring the same schedule twice (the API
    called three times with ``{"schedule": "daily"}``) replaces one schedule instead of adding copies."""
    canonical = json.dumps({"request": request.to_json(), "schedule": asdict(schedule)}, sort_keys=True)
    return "train-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def add_schedule(redis_url: str, request: TrainRequest, schedule: Schedule, job_id: str | None = None) -> str:
    """Declare (or replace) a scheduled training run; the leading scheduler installs it on its next tick.
    Its id is :func:`schedule_id` unless given: an identical schedule is one schedule."""
    job_id = job_id or schedule_id(request, schedule)
    spec = {"request": request.to_json(), "schedule": asdict(schedule), "installed": False}
    _client(redis_url).hset(SPECS_KEY, job_id, json.dumps(spec))
    return job_id


def remove_schedule(redis_url: str, job_id: str) -> bool:
    return bool(_client(redis_url).hdel(SPECS_KEY, job_id))


def list_schedules(redis_url: str) -> dict[str, dict[str, Any]]:
    raw = _client(redis_url).hgetall(SPECS_KEY)
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def recent_runs(redis_url: str, limit: int = 50) -> list[dict[str, Any]]:
    """The newest scheduled runs first: job id, scheduler, start, seconds, outcomes or error."""
    return [json.loads(r) for r in _client(redis_url).lrange(RUNS_KEY, 0, limit - 1)]


def scheduled_run(job_id: str, redis_url: str) -> None:
    """What APScheduler calls (in the leader's executor thread): one pipeline run of the declared request."""
    from precache.registry import open_registry
    from precache.training.pipeline import run_pipeline

    client = _client(redis_url)
    raw = client.hget(SPECS_KEY, job_id)
    record: dict[str, Any] = {"job": job_id, "scheduler": f"{socket.gethostname()}:{os.getpid()}",
                              "started": time.time()}
    try:
        if raw is None:
            raise ValueError(f"schedule {job_id} was removed")
        request = TrainRequest.from_json(json.loads(raw)["request"])
        result = run_pipeline(request, open_registry())
        record["outcomes"] = [o.as_dict() for o in result.outcomes]
    except Exception as exc:  # the scheduler must survive a failed run; the record says what happened
        record["error"] = f"{type(exc).__name__}: {exc}"
        log.error("scheduled training %s failed: %s", job_id, exc)
    record["seconds"] = time.time() - record["started"]
    client.lpush(RUNS_KEY, json.dumps(record, default=str))
    client.ltrim(RUNS_KEY, 0, KEEP_RUNS - 1)


class SchedulerProcess:
    """Stand by for the lock; while holding it, run APScheduler over the Redis job store."""

    def __init__(self, redis_url: str, *, lock_ttl: float = 30.0, misfire_grace: float = 3600.0,
                 auto: tuple[Schedule, TrainRequest] | None = None) -> None:
        if lock_ttl < 1.0:
            raise ValueError("lock_ttl must be >= 1 s")
        self.redis_url = redis_url
        self.lock_ttl = lock_ttl
        self.misfire_grace = misfire_grace
        self.auto = auto
        self.client = _client(redis_url)
        self.leading = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: stand by, lead while holding the lock; Redis being down means standing by."""
        import redis

        while not stop.is_set():
            try:
                self._stand_by_then_lead(stop)
            except redis.RedisError as exc:
                log.warning("scheduler: Redis unavailable (%s); standing by", exc)
                stop.wait(self.lock_ttl / 3)

    def _stand_by_then_lead(self, stop: threading.Event) -> None:
        lock = self.client.lock(LOCK_KEY, timeout=self.lock_ttl, thread_local=False)
        if not lock.acquire(blocking=True, blocking_timeout=self.lock_ttl / 3):
            return
        try:
            self._lead(lock, stop)
        finally:
            self.leading.clear()
            try:
                lock.release()
            except Exception:  # already expired, taken over or Redis gone: nothing to release
                pass

    def _lead(self, lock: Any, stop: threading.Event) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from redis.connection import parse_url
        from redis.exceptions import LockError

        from precache.training.jobstore import JsonRedisJobStore

        parsed: dict[str, Any] = parse_url(self.redis_url)  # type: ignore[no-untyped-call]
        connect = {k: v for k, v in parsed.items() if k in ("host", "port", "db", "username", "password", "ssl")}
        store = JsonRedisJobStore(jobs_key=JOBS_KEY, run_times_key=RUN_TIMES_KEY, **connect)
        scheduler = BackgroundScheduler(
            jobstores={"default": store}, executors={"default": ThreadPoolExecutor(1)}, timezone=dt.UTC,
            job_defaults={"coalesce": True, "misfire_grace_time": int(self.misfire_grace), "max_instances": 1},
        )
        scheduler.start(paused=True)
        self.leading.set()
        log.info("scheduler %s leads", os.getpid())
        try:
            self._install(scheduler)
            scheduler.resume()
            while not stop.wait(self.lock_ttl / 3):
                try:
                    lock.reacquire()
                except LockError:
                    log.warning("scheduler lock lost; standing by")
                    return
                self._install(scheduler)
                scheduler.wakeup()
        finally:
            scheduler.shutdown(wait=False)

    def _install(self, scheduler: Any) -> None:
        """Bring declared schedules into APScheduler: add new or changed ones, drop removed ones."""
        if self.auto is not None and not self.client.hexists(SPECS_KEY, AUTO_ID):
            schedule, request = self.auto
            add_schedule(self.redis_url, request, schedule, AUTO_ID)
        specs = {k.decode(): json.loads(v) for k, v in self.client.hgetall(SPECS_KEY).items()}
        for job in scheduler.get_jobs():
            if job.id not in specs:
                scheduler.remove_job(job.id)
        for job_id, spec in specs.items():
            if spec.get("installed"):
                continue
            schedule = Schedule(**spec["schedule"])
            scheduler.add_job(RUN_FUNC, trigger=schedule.trigger(), id=job_id, name=job_id, replace_existing=True,
                              kwargs={"job_id": job_id, "redis_url": self.redis_url})
            self.client.hset(SPECS_KEY, job_id, json.dumps({**spec, "installed": True}))
