"""``precache trace-stats``: what is in a trace (or the synthetic workload) before you train on it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from precache.cli.app import app
from precache.cli.outputs import check_output_file
from precache.cli.trace_options import announce, no_records_error, trace_options
from precache.defaults import SESSION_GAP_SECONDS
from precache.traces.options import ReadOptions
from precache.traces.report import ReadReport
from precache.traces.stats import TraceStats, trace_stats


def _when(moment: float | None) -> str:
    if moment is None:
        return "n/a"
    return dt.datetime.fromtimestamp(moment, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "n/a (no timestamps)"
    return f"{seconds:,.0f} s ({seconds / 3600:,.2f} h)"


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def render(stats: TraceStats, console: Console) -> None:
    """Print the summary table and the top pages."""
    table = Table(title="trace statistics", caption=f"{stats.source} ({stats.format})", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("lines read", _count(stats.lines)),
        ("requests", _count(stats.requests)),
        ("clients", _count(stats.clients)),
        ("sessions", _count(stats.sessions)),
        ("page views", _count(stats.page_views)),
        ("distinct pages", _count(stats.distinct_pages)),
        ("assets", _count(stats.assets)),
        ("other (not page/asset)", _count(stats.ignored)),
        ("malformed lines", _count(stats.malformed)
         + (f" (first at {stats.malformed_line_numbers[:5]})" if stats.malformed_line_numbers else "")),
        ("crawler requests dropped", _count(stats.bots)),
        ("out-of-order requests", _count(stats.out_of_order)),
        ("mean pages/session", f"{stats.mean_session_pages:.2f}"),
        ("first", _when(stats.first_time)),
        ("last", _when(stats.last_time)),
        ("time span", _span(stats.span_seconds)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    top = Table(title="top pages", show_header=True)
    top.add_column("#", justify="right")
    top.add_column("page")
    top.add_column("views", justify="right")
    top.add_column("share", justify="right")
    for rank, (page, count) in enumerate(stats.top_pages, start=1):
        share = count / stats.page_views if stats.page_views else 0.0
        top.add_row(str(rank), page, f"{count:,}", f"{share:.1%}")
    console.print(top)


@app.command("trace-stats")
@trace_options
def trace_stats_command(
    file: str = typer.Argument(..., help="trace file (plain/.gz/.zip), or synthetic:N for the synthetic site"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the statistics as JSON here"),
    gap: float = typer.Option(SESSION_GAP_SECONDS, "--gap", help="session idle gap in seconds (logs only)"),
    top: int = typer.Option(10, "--top", help="how many top pages to list"),
    *,
    read_options: ReadOptions,
) -> None:
    """Requests, clients, sessions, pages, assets, malformed lines, time span and top pages of a trace.

    Exits 2 when the trace yields no request (or no session), instead of printing an empty table.
    """
    if gap <= 0:
        raise ValueError("--gap must be positive")
    check_output_file(json_out, "--json")
    stats = trace_stats(file, gap_seconds=gap, top=max(0, top), options=read_options)
    report = ReadReport(path=file, format=stats.format, lines=stats.lines, malformed=stats.malformed,
                        malformed_line_numbers=stats.malformed_line_numbers, bots=stats.bots,
                        out_of_order=stats.out_of_order, notes=stats.notes)
    announce(report)
    if not (stats.requests or stats.sessions):
        raise no_records_error(report)
    if stats.sessions == 0:  # requests but no page view: usually a status field the reader did not recognise
        raise ValueError(
            f"{file}: read {stats.requests:,} request(s) but no page view ({stats.ignored or 0:,} are neither a page "
            "nor an asset: a page view is a GET with status 200/304 and a page path). If the log names its status "
            "field differently, say which with --json-fields status=FIELD (or --log-format/--pattern)")
    render(stats, Console())
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(stats.as_dict(), indent=2) + "\n", encoding="utf-8")
