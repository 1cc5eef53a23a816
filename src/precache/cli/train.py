"""``precache train``: the full pipeline once (collect → … → activate), or put it on a schedule.

It reads traces with the options every command shares (``@trace_options``: ``--format``, ``--log-format``,
``--pattern``, ``--drop-bots`` ..., handed to the worker process as JSON) plus ``--gap``, and/or the
event files the stream collector wrote (``--events DIR``). Training runs in a worker process with a timeout.
``--schedule`` does not train now: it declares the run as a schedule that ``precache scheduler`` executes.

Exit codes: 0 every model was registered (and activated unless ``--no-activate``) or skipped for lack of data;
3 (:data:`REFUSED`) the gate refused a candidate (it is registered as ``rejected``, nothing was activated for
it); 2 bad input; 1 the training worker failed; 130 Ctrl-C (the worker's process group is ended at once).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from precache.cli.app import app
from precache.cli.outputs import check_output_file
from precache.cli.trace_options import trace_options
from precache.defaults import PAGE_PREDICTOR, SESSION_GAP_SECONDS
from precache.traces.options import ReadOptions  # at run time: typer resolves the annotation
from precache.training.request import MODEL_TYPES

if TYPE_CHECKING:
    from precache.training import TrainRequest

REFUSED = 3  # the exit status when the gate refused a candidate: scripts and CI must not read it as success


@app.command("train")
@trace_options
def train_command(
    trace: list[Path] = typer.Option([], "--trace", help="Access log or session file (repeatable)."),
    gap: float = typer.Option(SESSION_GAP_SECONDS, "--gap", help="Session idle gap in seconds (logs only)."),
    keep_query: bool = typer.Option(False, "--keep-query", help="Keep query strings in page ids."),
    events: Path | None = typer.Option(None, "--events", help="Directory of collected event files."),
    model_type: str = typer.Option(PAGE_PREDICTOR, "--model-type", help=f"{', '.join(MODEL_TYPES)}."),
    target_accuracy: float | None = typer.Option(None, "--target-accuracy", help="Gate: HR@5 / decision accuracy."),
    tolerance: float = typer.Option(0.01, "--tolerance", help="Gate: how far below the active model still passes."),
    predictor: str = typer.Option("auto", "--predictor", help="What page-predictor trains (auto, ppm, markov, ...)."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Attention component epochs."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Attention component batch size."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Kill the training worker after this many seconds."),
    no_activate: bool = typer.Option(False, "--no-activate", help="Register an accepted candidate, do not activate."),
    schedule: str | None = typer.Option(
        None, "--schedule", help="once, daily, weekly, monthly or a number of seconds: store a schedule instead."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the outcome as JSON here."),
    *,
    read_options: ReadOptions,
) -> None:
    """Train, evaluate on the latest held-out slice, gate, register and activate."""
    from precache.training import TraceSource, TrainingConfig, TrainRequest

    if gap <= 0:
        raise ValueError("--gap must be positive")
    check_output_file(json_out, "--json")  # before training: a bad path must not cost a run (and activate)
    config = TrainingConfig(epochs=epochs, batch_size=batch_size, target_accuracy=target_accuracy,
                            tolerance=tolerance, predictor=predictor, timeout_seconds=timeout)
    options = {k: (dict(v) if k == "json_fields" and v else v) for k, v in asdict(read_options).items()
               if k != "format"}
    sources = [TraceSource(str(path), read_options.format, gap, keep_query, options) for path in trace]
    for source in sources:
        if not Path(source.path).is_file():
            raise ValueError(f"trace {source.path} does not exist")
    request = TrainRequest(model_type, sources, str(events) if events else None, config)  # type: ignore[arg-type]
    if schedule is not None:
        _store_schedule(request, schedule)
        return
    _run_once(request, not no_activate, json_out)


def _store_schedule(request: TrainRequest, schedule: str) -> None:
    from precache.config import get_settings
    from precache.training.scheduler import add_schedule, parse_schedule

    job_id = add_schedule(get_settings().redis_url, request, parse_schedule(schedule))
    print(f"stored schedule {job_id} ({schedule}); `precache scheduler` runs it")


def _run_once(request: TrainRequest, activate: bool, json_out: Path | None) -> None:
    from precache.registry import open_registry
    from precache.training import run_pipeline
    console = Console() if Console().is_terminal else Console(width=160)
    registry = open_registry()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("starting the training worker", total=None)
        result = run_pipeline(request, registry, activate=activate,
                              progress=lambda text: progress.update(task, description=text))
    table = Table(title=f"training run: {result.seconds:.1f} s (registry revision {registry.revision()})")
    for column in ("model", "outcome", "version", "metric", "candidate", "active", "reason"):
        table.add_column(column)
    for outcome in result.outcomes:
        d = outcome.decision
        table.add_row(outcome.name, outcome.status, outcome.version or "-", d.metric if d else "-",
                      f"{d.candidate:.4f}" if d else "-",
                      f"{d.active:.4f}" if d and d.active is not None else "-", outcome.reason)
    console.print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.as_dict(), indent=1, default=str), encoding="utf-8")
    refused = [o.name for o in result.outcomes if o.status == "rejected"]
    if refused:
        print(f"the gate refused the candidate for {', '.join(refused)} (exit {REFUSED})", file=sys.stderr)
        raise SystemExit(REFUSED)  # not typer.Exit: under standalone_mode=False click returns that as a value
