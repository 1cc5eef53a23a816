"""``precache evaluate`` and ``precache train-predictor``: compare page predictors on a trace, ship one.

Both follow the evaluation protocol (:mod:`precache.evaluation`): time-ordered sessions, first 80% train
(its last 10% is the validation slice), last 20% test. Errors (unknown model, unreadable trace) are raised
as ``ValueError``/``OSError`` and turned into one line and exit code 2 by the entry point.
"""

from __future__ import annotations

import json
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from precache.cli.app import app
from precache.cli.outputs import check_output_dir, check_output_file
from precache.cli.prequential import check_protocol, run_prequential
from precache.cli.trace_options import load_sessions, trace_options
from precache.evaluation import ModelReport, Split, compare_predictors, evaluate, time_split
from precache.traces.options import ReadOptions

DEFAULT_MODELS = "popularity,markov-count,markov,ppm,sknn"


def parse_models(models: str) -> list[str]:
    """Comma-separated names -> checked list (unknown names raise ValueError naming the known ones)."""
    from precache.models.kinds import predictor_class

    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise ValueError("--models is empty; give e.g. popularity,markov-count,markov,ppm,sknn")
    for name in names:
        predictor_class(name)
    return names


def load_split(trace: Path, options: ReadOptions, progress: Progress | None = None) -> tuple[Split, int]:
    """Read and sessionize the trace, then split it; returns (split, number of sessions)."""
    if not trace.exists():
        raise ValueError(f"trace {trace} does not exist")
    task = progress.add_task(f"reading {trace.name}", total=None) if progress else None
    sessions = load_sessions(trace, options)
    if progress is not None and task is not None:
        progress.update(task, description=f"read {len(sessions):,} sessions from {trace.name}", completed=1, total=1)
    if sum(max(0, len(s.pages) - 1) for s in sessions) == 0:
        raise ValueError(f"{trace}: no session has two pages or more; nothing to predict")
    return time_split(sessions), len(sessions)


def _console() -> Console:
    """Wide enough for the 12-column table even when output is piped (rich assumes 80 columns then)."""
    console = Console()
    return console if console.is_terminal and console.width >= 150 else Console(width=170)


def _fmt(value: float, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def report_table(title: str, reports: list[ModelReport]) -> Table:
    table = Table(title=title)
    for column in ("model", "HR@1", "HR@5", "HR@10", "MRR@5", "ECE", "fit s", "size", "p50 µs", "p99 µs",
                   "pred/s @256", "test trans."):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in reports:
        s = r.scores
        if r.error:
            table.add_row(s.model, *(["-"] * 10), f"error: {r.error[:60]}")
            continue
        table.add_row(
            s.model, _fmt(s.hr1, ".3f"), _fmt(s.hr5, ".3f"), _fmt(s.hr10, ".3f"), _fmt(s.mrr5, ".3f"),
            _fmt(s.ece, ".3f"), _fmt(s.fit_seconds, ".2f"), f"{r.size_bytes / 1024:,.0f} KiB",
            _fmt(r.p50_us, ",.0f"), _fmt(r.p99_us, ",.0f"), _fmt(r.throughput_256, ",.0f"), f"{s.transitions:,}",
        )
    return table


def run_evaluate(
    trace: Path, options: ReadOptions, names: list[str], max_transitions: int | None, console: Console
) -> dict[str, Any]:
    """Evaluate ``names`` on one trace; print the table; return the JSON-able result."""
    from precache.models.kinds import build_predictor

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        split, n_sessions = load_split(trace, options, progress)
        task = progress.add_task("models", total=None)
        reports = compare_predictors(
            split, {name: partial(build_predictor, name) for name in names}, max_transitions=max_transitions,
            on_progress=lambda text: progress.update(task, description=text),
        )
    n_test = sum(max(0, len(s.pages) - 1) for s in split.test)
    title = (f"{trace.name}: {n_sessions:,} sessions, train {len(split.train):,} / validation "
             f"{len(split.validation):,} / test {len(split.test):,} ({n_test:,} transitions"
             + (f", scored first {max_transitions:,}" if max_transitions and max_transitions < n_test else "") + ")")
    console.print(report_table(title, reports))
    return {
        "trace": str(trace),
        "sessions": n_sessions,
        "train_sessions": len(split.train),
        "validation_sessions": len(split.validation),
        "test_sessions": len(split.test),
        "test_transitions": n_test,
        "max_test_transitions": max_transitions,
        "models": [r.as_dict() for r in reports],
    }


@app.command("evaluate")
@trace_options
def evaluate_command(
    trace: Path = typer.Option(..., "--trace", help="Access log or session file (see trace-stats)."),
    models: str = typer.Option(DEFAULT_MODELS, "--models", help="Comma-separated predictor names."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON here."),
    max_test_transitions: int | None = typer.Option(
        None, "--max-test-transitions", min=1, help="Score only the first N test transitions (faster)."
    ),
    protocol: str = typer.Option(
        "split", "--protocol", help="split (the default: frozen models) or prequential (test-then-learn in "
        "time order: frozen and online rows per model)."),
    *,
    read_options: ReadOptions,
) -> None:
    """Compare predictors with the evaluation protocol: HR@1/5/10, MRR@5, ECE, fit time, size, latency."""
    check_protocol(protocol)
    names = parse_models(models)
    check_output_file(json_out, "--json")
    console = _console()
    if protocol == "prequential":
        result = run_prequential(trace, read_options, names, max_test_transitions, console, load_split)
    else:
        result = run_evaluate(trace, read_options, names, max_test_transitions, console)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1, default=float), encoding="utf-8")
        console.print(f"wrote {json_out}")


@app.command("train-predictor")
@trace_options
def train_predictor_command(
    trace: Path = typer.Option(..., "--trace", help="Access log or session file."),
    model: str = typer.Option(
        "ppm", "--model", help="Predictor name (popularity, markov-count, markov, ppm, sknn, attention, auto)."),
    out: Path = typer.Option(..., "--out", help="Model directory to write (created)."),
    *,
    read_options: ReadOptions,
) -> None:
    """Fit one predictor on the training part of a trace, score it on the test part, save it to --out."""
    from precache.models.kinds import build_predictor

    (name,) = parse_models(model) if "," not in model else (None,)
    if name is None:
        raise ValueError("--model takes one predictor name")
    check_output_dir(out, "--out")
    console = _console()
    predictor = build_predictor(name)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        split, _ = load_split(trace, read_options, progress)
        task = progress.add_task(f"fitting {name}", total=None)
        started = time.perf_counter()
        predictor.fit(split.train, split.validation)
        fit_seconds = time.perf_counter() - started
        progress.update(task, description=f"scoring {name}")
        scores = evaluate(predictor, split.test, predictor.vocabulary_size)
    scores.fit_seconds = fit_seconds
    predictor.metrics.update({f"test_{k}": v for k, v in scores.as_dict().items() if k != "model"})
    predictor.metrics["trace"] = str(trace)
    predictor.save(out)
    console.print(
        f"{name}: HR@5 {scores.hr5:.3f}, MRR@5 {scores.mrr5:.3f}, ECE {scores.ece:.3f} on "
        f"{scores.transitions:,} test transitions; fit {fit_seconds:.1f} s; saved to {out}"
    )
