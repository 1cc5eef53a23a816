"""``precache evaluate --protocol prequential``: frozen and online (test-then-learn) rows for each model.

The split is the evaluation protocol's; the test period is scored in time order, each transition before it
is learned (:mod:`precache.online.prequential`). The online merge (half-life, weight, evidence) is chosen
on the training period only and printed with each online row (the training pipeline stores the same choice
with the model: :mod:`precache.online.stored`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from precache.evaluation import Split
from precache.traces.options import ReadOptions

PROTOCOLS = ("split", "prequential")
SplitLoader = Callable[[Path, ReadOptions, Progress], tuple[Split, int]]


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def _half_life(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    return f"{value:,.0f}"


def prequential_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("model", "protocol", "HR@1", "HR@5", "HR@10", "MRR@5", "ECE", "half-life", "weight",
                   "evidence", "test trans."):
        table.add_column(column, justify="left" if column in ("model", "protocol") else "right")
    for r in rows:
        online = r["protocol"] == "online"
        table.add_row(
            r["model"], r["protocol"], f"{r['hr1']:.3f}", f"{r['hr5']:.3f}", f"{r['hr10']:.3f}",
            f"{r['mrr5']:.3f}", f"{r['ece']:.3f}", _half_life(r.get("half_life")) if online else "-",
            f"{r['weight']:g}" if online else "-", f"{r['evidence']:g}" if online else "-", f"{r['transitions']:,}",
        )
    return table


def run_prequential(trace: Path, options: ReadOptions, names: list[str], max_transitions: int | None,
                    console: Console, load_split: SplitLoader) -> dict[str, Any]:
    """Frozen and online rows of ``names`` on one trace (read by ``load_split``, the split protocol's reader);
    prints the table; returns the JSON-able result."""
    from precache.models.kinds import build_predictor
    from precache.online.protocol import prequential_rows

    rows: list[dict[str, Any]] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        split, n_sessions = load_split(trace, options, progress)
        task = progress.add_task("models", total=None)
        for name in names:
            rows.extend(prequential_rows(name, lambda name=name: build_predictor(name), split, max_transitions,  # type: ignore[misc]
                                         on_progress=lambda text: progress.update(task, description=text)))
    n_test = sum(max(0, len(s.pages) - 1) for s in split.test)
    title = (f"{trace.name}: prequential (test-then-learn, time order) over {len(split.test):,} test sessions "
             f"({n_test:,} transitions"
             + (f", scored first {max_transitions:,}" if max_transitions and max_transitions < n_test else "")
             + "); online merge chosen on the training period")
    console.print(prequential_table(title, rows))
    return {"trace": str(trace), "protocol": "prequential", "sessions": n_sessions,
            "train_sessions": len(split.train), "validation_sessions": len(split.validation),
            "test_sessions": len(split.test), "test_transitions": n_test, "max_test_transitions": max_transitions,
            "rows": rows}
