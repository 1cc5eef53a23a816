"""The trace-reading options every command that reads a trace shares, and how they report what they read.

``@trace_options`` adds ``--format``, ``--log-format``, ``--pattern``, ``--time-format``, ``--base-date``,
``--json-fields``, ``--max-malformed``, ``--strict`` and ``--drop-bots`` to a typer command and hands the
command one checked :class:`~precache.traces.options.ReadOptions` as its ``read_options`` argument, so
``trace-stats``, ``evaluate``, ``train-predictor``, ``demo --trace`` and ``train`` read logs the same way
and a new option lands everywhere at once. :func:`load_sessions` / :func:`load_requests` read with those
options and tell the user on stderr what was read (the format ``auto`` chose, skipped lines, bots,
out-of-order times), failing with exit 2 when nothing was read instead of going on with zero requests.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from precache.defaults import SESSION_GAP_SECONDS
from precache.traces.options import DEFAULT_MAX_MALFORMED, ReadOptions, parse_json_fields

if TYPE_CHECKING:
    from precache.traces.model import Request, Session
    from precache.traces.report import ReadReport

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS: list[tuple[str, Any, Any]] = [
    ("format", str, typer.Option(
        "auto", "--format", help="trace format: auto, clf, json, w3c, alb, ita, tsv, csv, seq, spmf, itemviews, "
        "or a LogFormat preset (common, combined, vhost_combined, nginx); syslog+FORMAT for syslog-wrapped lines")),
    ("log_format", str | None, typer.Option(
        None, "--log-format", help="Apache LogFormat or nginx log_format string, or a preset name "
        "(common, combined, vhost_combined, nginx)")),
    ("pattern", str | None, typer.Option(
        None, "--pattern", help="regex with named groups (path required; time, host, session, method, "
        "status, size, referrer, agent ...)")),
    ("time_format", str | None, typer.Option(
        None, "--time-format", help="how times are written: strptime string, epoch, ms, us, iso8601, ctime, clf")),
    ("base_date", str | None, typer.Option(
        None, "--base-date", help="YYYY-MM-DD: year and month of the first line of an ITA [DD:HH:MM:SS] log")),
    ("json_fields", str | None, typer.Option(
        None, "--json-fields", help="JSON lines field names, e.g. client=request.remote_ip,time=ts,path=request.uri")),
    ("max_malformed", float, typer.Option(
        DEFAULT_MAX_MALFORMED, "--max-malformed", min=0.0, max=1.0,
        help="stop when more than this share of the first 1,000 non-empty lines is malformed (1 never stops)")),
    ("strict", bool, typer.Option(False, "--strict", help="fail at the first malformed line")),
    ("drop_bots", bool, typer.Option(
        False, "--drop-bots", help="skip requests whose user agent is a known crawler (crawler-user-agents list)")),
]
OPTION_NAMES = tuple(name for name, _, _ in _OPTIONS)


def build_read_options(**values: Any) -> ReadOptions:
    """A checked :class:`ReadOptions` from the CLI values (a bad value raises, exit 2 with its message)."""
    values["json_fields"] = parse_json_fields(values.get("json_fields"))
    return ReadOptions(**values)


def trace_options(command: F) -> F:
    """Decorator for a typer command taking ``read_options: ReadOptions``: adds the shared options."""
    signature = inspect.signature(command)
    if "read_options" not in signature.parameters:
        raise TypeError(f"{command.__name__} must take a read_options parameter")
    kept = [param for name, param in signature.parameters.items() if name != "read_options"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
             for name, annotation, option in _OPTIONS]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in OPTION_NAMES if name in kwargs}
        kwargs["read_options"] = build_read_options(**values)
        return command(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def announce(report: ReadReport) -> None:
    """Tell the user on stderr what the read chose and skipped (stdout stays for tables and JSON)."""
    for note in report.notes:
        print(f"{report.path}: {note}", file=sys.stderr)
    if report.malformed:
        print(f"{report.path}: skipped {report.malformed:,} malformed line(s) "
              f"(first at line {report.first_bad_line_number or report.malformed_line_numbers[0]})", file=sys.stderr)
    if report.bots:
        print(f"{report.path}: dropped {report.bots:,} crawler request(s)", file=sys.stderr)
    if report.out_of_order:
        print(f"warning: {report.path}: {report.out_of_order:,} request(s) are more than a minute older than "
              "their client's previous one; the log is not in time order and its sessions are unreliable "
              "(sort it by time first)", file=sys.stderr)


def no_records_error(report: ReadReport) -> ValueError:
    """The error for a read that produced nothing (never go on with zero requests)."""
    detail = f"{report.lines:,} lines, {report.malformed:,} malformed"
    if report.first_bad_line is not None:
        detail += f"; first bad line {report.first_bad_line_number}: {report.first_bad_line!r}"
    return ValueError(f"{report.path}: read no request from this {report.format} trace ({detail}); "
                      "check --format/--log-format/--pattern")


def load_sessions(trace: Path, options: ReadOptions, gap_seconds: float = SESSION_GAP_SECONDS) -> list[Session]:
    """All sessions of a trace read with ``options``, announced; ValueError when none was read."""
    from precache.traces import read_sessions
    from precache.traces.report import ReadReport

    report = ReadReport()
    sessions = read_sessions(trace, gap_seconds=gap_seconds, options=options, report=report)
    announce(report)
    if not sessions and not report.records:
        raise no_records_error(report)
    return sessions


def load_requests(trace: Path, options: ReadOptions, limit: int | None = None) -> list[Request]:
    """The first ``limit`` requests of a log read with ``options``, announced; ValueError when none."""
    from precache.traces import read_requests

    reader = read_requests(trace, options=options)
    requests: list[Request] = []
    for request in reader:
        requests.append(request)
        if limit is not None and len(requests) >= limit:
            break
    announce(reader.report)
    if not requests:
        raise no_records_error(reader.report)
    return requests
