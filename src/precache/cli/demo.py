"""``precache demo``: generate (or read) a workload, train, replay, print the before/after table.

On a fresh machine it needs nothing but the package: the synthetic site workload stands in for a real
log. ``--trace FILE`` replays a real access log instead. The HTML report lands in ``--out``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import typer

from precache.cli.app import app
from precache.cli.outputs import check_output_dir
from precache.cli.trace_options import load_requests, trace_options
from precache.defaults import WARMING_THRESHOLD
from precache.traces.model import Request
from precache.traces.options import ReadOptions


def _iter_once(items: list[Request]) -> Iterator[Request]:
    """The items, from a generator that drops its list when it is done (the caller keeps no reference)."""
    yield from items


def _table(rows: list[dict[str, Any]], title: str) -> Any:
    from rich import box
    from rich.table import Table

    from precache.sim.report import fmt

    columns = [("mode", "config", "s"), ("hit_rate", "hit", "%"), ("hit_or_joined_rate", "hit|joined", "%"),
               ("byte_hit_rate", "byte hit", "%"),
               ("cold_starts_per_min", "cold/min", ".1f"), ("avg_load_ms", "avg ms", ".1f"),
               ("p95_load_ms", "p95 ms", ".0f"), ("online_hr5", "HR@5", "%"),
               ("preload_efficiency", "preload eff", "%"), ("predictive_hit_rate", "pred hits", "%"),
               ("extra_origin_requests", "preload req", "d"), ("net_extra_origin_requests", "net extra", "d")]
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for _, header, _ in columns:
        table.add_column(header, justify="left" if header == "config" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(fmt(row.get(key), kind) for key, _, kind in columns))
    return table


def _summary(exp: Any) -> str:
    """Before ML -> precache full (same TTL, L1, L2 and origin draws), the best heuristic and the oracle,
    next to the numbers precache was specified with."""
    h = exp.headline()
    if h is None:
        return ""
    before, after = h.before, h.after
    lines = [
        f"size {exp.meta.get('size')}: L1 {exp.meta['l1_bytes']:,} B, L2 {exp.meta.get('l2_bytes') or 0:,} B; "
        f"every row has TTL {exp.meta['ttl']:.0f}s unless it says otherwise",
        f"hit rate          {before['hit_rate']:.1%} -> {after['hit_rate']:.1%}   (specified: 95% -> 99.5%)",
        f"cold starts       {h.cold_start_change:+.0%}   (specified: -90%)",
        f"avg load time     {before['avg_load_ms']:.1f} -> {after['avg_load_ms']:.1f} ms   (specified: 120 -> 30 ms)",
    ]
    if after["online_hr5"] is not None:
        lines.append(f"online HR@5       {after['online_hr5']:.1%}   (specified accuracy: 87%)")
    if after["preload_efficiency"] is not None:
        lines.append(f"preload eff.      {after['preload_efficiency']:.1%}   (specified: 82%)")
    lines.append(f"misses removed by warming {h.misses_removed_by_warming:.1%} at "
                 f"{after['extra_origin_requests']:,} preload origin requests (gross), net "
                 f"{after.get('net_extra_origin_requests', 0):+,} requests / "
                 f"{after.get('net_extra_origin_bytes', 0) / 1e6:+.1f} MB")
    vs = exp.as_json()["meta"]["vs_best_heuristic"]
    if vs:
        gap = vs.get("load_gap_closed")
        lines.append(f"vs the best heuristic ({vs['best_heuristic']}): avg load {vs['avg_load_ms']['best']:.1f} -> "
                     f"{vs['avg_load_ms']['full']:.1f} ms, origin misses {vs['misses_removed']:.1%} fewer"
                     + (f", {gap:.0%} of the gap to the oracle closed" if gap is not None else ""))
    bd = exp.meta.get("miss_breakdown")
    if bd:
        lines.append(f"of {bd['misses']:,} misses without warming, {bd['improvable_misses']:,} are reachable by a "
                     f"predictor + asset model; warming removed {bd['removed']:,} (pages {bd['removed_pages']:,}, "
                     f"assets {bd['removed_assets']:,})")
    return "\n".join(lines)


@app.command()
@trace_options
def demo(
    trace: Path | None = typer.Option(None, "--trace", help="replay this access log instead of the synthetic site"),
    requests: int = typer.Option(100_000, "--requests", min=1_000, help="requests to generate or read"),
    out: Path = typer.Option(Path("precache-report"), "--out", help="where index.html is written"),
    threshold: float = typer.Option(WARMING_THRESHOLD, "--threshold", min=0.0, max=1.0, help="warming threshold"),
    seed: int = typer.Option(0, "--seed"),
    sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="also sweep the warming threshold"),
    learned_policy: bool = typer.Option(True, "--learned-policy/--no-learned-policy"),
    *,
    read_options: ReadOptions,
) -> None:
    """Generate a workload, train the models, replay it with and without ML, write the report."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from precache.sim.experiment import ExperimentConfig, run_experiment
    from precache.sim.report import write_report

    check_output_dir(out, "--out")
    console = Console()
    if not console.is_terminal:  # piped (make, CI): rich would assume 80 columns and squash the table
        console = Console(width=max(console.width, 160))
    # the requests reach run_experiment as a generator, so that only it holds them, and only until the
    # trace is prepared (at 1M requests they are ~150 MB the replays do not need)
    source: Iterator[Request]
    updates: Iterable[tuple[float, str]] = ()
    if trace is not None:
        source = _iter_once(load_requests(trace, read_options, limit=requests))
        name = trace.name
    else:
        from precache.traces.synthetic import SyntheticWorkload

        workload = SyntheticWorkload(requests, seed=seed)
        source, updates = workload.requests(), workload.updates()
        name = f"synthetic-{requests}"
    config = ExperimentConfig(threshold=threshold, seed=seed, sweep=ExperimentConfig().sweep if sweep else (),
                              sweep_max_events=50_000,
                              learned_policy=learned_policy)
    with Progress(TextColumn("{task.description:<22}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def tick(stage: str, done: int, total: int) -> None:
            task = tasks.get(stage)
            if task is None:
                task = tasks[stage] = progress.add_task(stage, total=max(total, 1))
            progress.update(task, completed=done, total=max(total, 1))

        exp = run_experiment(source, name, config, updates=updates, progress=tick)
    console.print(f"[bold]{name}[/]: {exp.meta['requests']:,} requests")
    console.print(_table(exp.table(), f"precache before / after — {name} (threshold {threshold})"))
    console.print(_summary(exp))
    if exp.meta.get("learned_policy_error"):
        console.print(f"[yellow]learned policy unavailable[/]: {exp.meta['learned_policy_error']}")
    path = write_report([exp], out)
    console.print(f"report: {path}")
