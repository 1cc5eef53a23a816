"""APScheduler 3's Redis job store, storing jobs as JSON instead of pickle.

Why: the project never unpickles anything read from Redis, and APScheduler 3's ``RedisJobStore`` pickles
each job's state. This subclass keeps the library's store (its keys, due-time index, removal of jobs that
fail to restore) and replaces only the serialization: the job state becomes JSON, the trigger is written
as a small description of the three triggers our schedules use (date, interval, cron; UTC), and only
functions in :data:`ALLOWED_FUNCS` are restored, so a forged entry cannot name an arbitrary callable.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import datetime_to_utc_timestamp

ALLOWED_FUNCS = frozenset({"precache.training.scheduler:scheduled_run"})
UTC = dt.UTC


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_when(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def trigger_to_json(trigger: BaseTrigger) -> dict[str, Any]:
    if isinstance(trigger, DateTrigger):
        return {"type": "date", "run_date": _when(trigger.run_date)}
    if isinstance(trigger, IntervalTrigger):
        return {"type": "interval", "seconds": trigger.interval.total_seconds(),
                "start_date": _when(trigger.start_date), "end_date": _when(trigger.end_date), "jitter": trigger.jitter}
    if isinstance(trigger, CronTrigger):
        fields = {f.name: str(f) for f in trigger.fields if not f.is_default}
        return {"type": "cron", "fields": fields, "start_date": _when(trigger.start_date),
                "end_date": _when(trigger.end_date), "jitter": trigger.jitter}
    raise TypeError(f"cannot store a {type(trigger).__name__} as JSON")


def trigger_from_json(data: dict[str, Any]) -> BaseTrigger:
    kind = data.get("type")
    if kind == "date":
        return DateTrigger(run_date=_parse_when(data["run_date"]), timezone=UTC)
    if kind == "interval":
        return IntervalTrigger(seconds=float(data["seconds"]), start_date=_parse_when(data.get("start_date")),
                               end_date=_parse_when(data.get("end_date")), jitter=data.get("jitter"), timezone=UTC)
    if kind == "cron":
        return CronTrigger(**{str(k): str(v) for k, v in dict(data["fields"]).items()},
                           start_date=_parse_when(data.get("start_date")), end_date=_parse_when(data.get("end_date")),
                           jitter=data.get("jitter"), timezone=UTC)
    raise ValueError(f"unknown trigger type {kind!r}")


def job_to_json(job: Job) -> str:
    state = job.__getstate__()
    return json.dumps({**state, "args": list(state["args"]), "trigger": trigger_to_json(state["trigger"]),
                       "next_run_time": _when(state["next_run_time"])}, sort_keys=True)


class JsonRedisJobStore(RedisJobStore):  # type: ignore[misc]
    """``RedisJobStore`` with JSON job states (see the module docstring)."""

    def add_job(self, job: Job) -> None:
        if self.redis.hexists(self.jobs_key, job.id):
            raise ConflictingIdError(job.id)
        self._write(job)

    def update_job(self, job: Job) -> None:
        if not self.redis.hexists(self.jobs_key, job.id):
            raise JobLookupError(job.id)
        self._write(job)

    def _write(self, job: Job) -> None:
        with self.redis.pipeline() as pipe:
            pipe.multi()
            pipe.hset(self.jobs_key, job.id, job_to_json(job))
            if job.next_run_time:
                pipe.zadd(self.run_times_key, {job.id: datetime_to_utc_timestamp(job.next_run_time)})
            else:
                pipe.zrem(self.run_times_key, job.id)
            pipe.execute()

    def _reconstitute_job(self, job_state: bytes | str) -> Job:
        state = json.loads(job_state)
        if state.get("func") not in ALLOWED_FUNCS:
            raise ValueError(f"job {state.get('id')!r} names a function that may not be scheduled: "
                             f"{state.get('func')!r}")
        state["args"] = tuple(state["args"])
        state["trigger"] = trigger_from_json(state["trigger"])
        state["next_run_time"] = _parse_when(state["next_run_time"])
        job = Job.__new__(Job)
        job.__setstate__(state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job
