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
