"""``read_sessions``: any supported trace as a list of sessions, the input every predictor trains on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from precache.defaults import SESSION_GAP_SECONDS
from precache.traces.model import Session
from precache.traces.reader import RequestReader, resolve_format
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
) -> Iterator[Session]:
    """Stream sessions: logs are sessionized (close order), session files are read in file order.

    ``report`` (if given) is filled with the read's counters as it goes.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such trace file: {path}")
    name = resolve_format(path, format)
    if report is None:
        report = ReadReport()
    report.path, report.format = str(path), name
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
    reader = RequestReader(path, name, strict=strict)
    try:
        yield from Sessionizer(gap_seconds=gap_seconds, keep_query=keep_query).sessionize(reader)
    finally:
        for field in ("lines", "records", "malformed", "blank", "overlong", "malformed_line_numbers"):
            setattr(report, field, getattr(reader.report, field))


def read_sessions(
    path: str | os.PathLike[str],
    format: str = "auto",
    *,
    gap_seconds: float = SESSION_GAP_SECONDS,
    keep_query: bool = False,
    strict: bool = False,
) -> list[Session]:
    """All sessions of a trace, ordered by start (stable), ready for ``precache.evaluation.time_split``.

    Logs (clf/tsv/csv) are sessionized with ``gap_seconds`` idle gap and the default page filter; "seq",
    "spmf" and "itemviews" files are read as given. Malformed lines are skipped (``strict`` raises).
    """
    sessions = list(
        iter_sessions(path, format, gap_seconds=gap_seconds, keep_query=keep_query, strict=strict)
    )
    sessions.sort(key=lambda session: session.start)
    return sessions
