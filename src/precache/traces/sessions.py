"""``read_sessions``: any supported trace as a list of sessions, the input every predictor trains on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from precache.defaults import SESSION_GAP_SECONDS
from precache.traces.model import Session
from precache.traces.options import ReadOptions
from precache.traces.reader import RequestReader, merge_options, resolve_format
from precache.traces.report import ReadReport
from precache.traces.sequences import read_itemviews, read_seq, read_spmf
from precache.traces.sessionize import Sessionizer
from precache.traces.textio import TextLines


def iter_sessions(
    path: str | os.PathLike[str],
    format: str = "auto",
    *,
    gap_seconds: float = SESSION_GAP_SECONDS,
    keep_query: bool = False,
    strict: bool = False,
    report: ReadReport | None = None,
    options: ReadOptions | None = None,
) -> Iterator[Session]:
    """Stream sessions: logs are sessionized (close order), session files are read in file order.

    ``report`` (if given) is filled with the read's counters as it goes. ``options`` says how to read a
    log (see :class:`ReadOptions`); an explicit ``format``/``strict`` argument overrides its own.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such trace file: {path}")
    options = merge_options(format, strict, options)
    strict = options.strict
    name, note = resolve_format(path, options.format, options)
    if report is None:
        report = ReadReport()
    report.path, report.format = str(path), name
    if note:
        report.notes.append(note)
    if name in ("seq", "spmf", "itemviews"):
        lines = TextLines(path)
        try:
            if name == "seq":
                yield from read_seq(lines, report, strict)
            elif name == "spmf":
                yield from read_spmf(lines, report, strict)
            else:
                yield from read_itemviews(lines, report, strict)
        finally:
            report.add_overlong(lines.overlong, lines.overlong_line_numbers, strict=strict)
        return
    reader = RequestReader(path, options=options)
    sessionizer = Sessionizer(gap_seconds=gap_seconds, keep_query=keep_query)
    try:
        yield from sessionizer.sessionize(reader)
    finally:
        for field in ("format", "lines", "records", "malformed", "blank", "overlong", "malformed_line_numbers",
                      "first_bad_line", "first_bad_line_number", "bots", "notes"):
            setattr(report, field, getattr(reader.report, field))
        report.out_of_order = sessionizer.stats.out_of_order


def read_sessions(
    path: str | os.PathLike[str],
    format: str = "auto",
    *,
    gap_seconds: float = SESSION_GAP_SECONDS,
    keep_query: bool = False,
    strict: bool = False,
    options: ReadOptions | None = None,
    report: ReadReport | None = None,
) -> list[Session]:
    """All sessions of a trace, ordered by start (stable), ready for ``precache.evaluation.time_split``.

    Logs (clf/tsv/csv) are sessionized with ``gap_seconds`` idle gap and the default page filter; "seq",
    "spmf" and "itemviews" files are read as given. Malformed lines are skipped (``strict`` raises; too
    many stop the read, see :class:`RequestReader`). ``report`` (if given) receives the read's counters.
    """
    sessions = list(
        iter_sessions(path, format, gap_seconds=gap_seconds, keep_query=keep_query, strict=strict,
                      options=options, report=report)
    )
    sessions.sort(key=lambda session: session.start)
    return sessions
