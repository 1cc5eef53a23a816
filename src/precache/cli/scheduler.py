"""``precache scheduler`` and ``precache collect-events``: the long-running halves of training.

``scheduler`` stands by for the scheduler lock and, while it holds it, runs the declared training schedules
(``precache train --schedule``, the API, and with ``ML_AUTO_TRAINING_ENABLED`` the ``ML_TRAINING_SCHEDULE``
run over the collected events). ``collect-events`` drains the access-event stream into dated files. Both
stop cleanly on SIGTERM / Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer

from precache.cli.app import app


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@app.command("scheduler")
def scheduler_command(
    lock_ttl: float = typer.Option(30.0, "--lock-ttl", min=1.0, help="Scheduler lock lifetime (renewed every third)."),
    grace: float = typer.Option(3600.0, "--grace", min=1.0, help="A missed run still runs within this many seconds."),
    events: Path = typer.Option(Path("events"), "--events", help="Event files the automatic schedule trains on."),
) -> None:
    """Run training schedules; one scheduler process at a time leads, the others stand by."""
    from precache.config import get_settings
    from precache.training import TrainRequest
    from precache.training.scheduler import SchedulerProcess, parse_schedule

    settings = get_settings()
    auto = None
    if settings.ml_auto_training_enabled:
        auto = (parse_schedule(settings.ml_training_schedule.value),
                TrainRequest("all", events_dir=str(events)))
    SchedulerProcess(settings.redis_url, lock_ttl=lock_ttl, misfire_grace=grace, auto=auto).run(_stop_on_signals())


@app.command("collect-events")
def collect_events_command(
    out: Path = typer.Option(Path("events"), "--out", help="Directory for the dated event files."),
    stream: str = typer.Option("precache:events", "--stream", help="The access-event stream."),
    claim_idle: float = typer.Option(60.0, "--claim-idle", min=0.1,
                                     help="Take over a dead collector's entries after this many idle seconds."),
) -> None:
    """Drain the access-event Redis Stream (consumer group precache-training) into dated event files."""
    import redis

    from precache.config import get_settings
    from precache.training.collector import StreamCollector

    client = redis.Redis.from_url(get_settings().redis_url)
    StreamCollector(client, out, stream=stream, claim_idle_ms=int(claim_idle * 1000)).run(_stop_on_signals())


schedules_app = typer.Typer(help="Training schedules: list and remove (declared by train --schedule or the API).",
                            no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")


@schedules_app.command("list")
def schedules_list() -> None:
    """Every declared training schedule (id, when, what, installed by the leading scheduler)."""
    from precache.config import get_settings
    from precache.training.scheduler import list_schedules

    specs = list_schedules(get_settings().redis_url)
    if not specs:
        print("no training schedules")
    for job_id, spec in sorted(specs.items()):
        when = spec.get("schedule") or {}
        every = f"every {when.get('seconds'):g} s" if when.get("kind") == "interval" else str(when.get("kind"))
        print(f"{job_id}\t{every}\t{(spec.get('request') or {}).get('modelType')}\t"
              f"{'installed' if spec.get('installed') else 'pending'}")


@schedules_app.command("remove")
def schedules_remove(schedule_id: str = typer.Argument(..., help="an id from `precache schedules list`")) -> None:
    """Remove one training schedule (the leading scheduler drops it on its next tick)."""
    from precache.config import get_settings
    from precache.training.scheduler import remove_schedule

    if not remove_schedule(get_settings().redis_url, schedule_id):
        raise ValueError(f"no training schedule {schedule_id!r} (see `precache schedules list`)")
    print(f"removed {schedule_id}")
