"""``read_requests``: stream ``Request`` records from an access log, with a report of what was skipped."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from precache.traces.clf import make_clf_parser
from precache.traces.detect import FORMATS, REQUEST_FORMATS, SESSION_FORMATS, detect_format
from precache.traces.errors import TraceFormatError
from precache.traces.model import Request
from precache.traces.report import ReadReport
from precache.traces.tabular import make_tabular_parser
from precache.traces.textio import MAX_LINE_CHARS, TextLines

LineParser = Callable[[str], Request | None]


def resolve_format(path: str | os.PathLike[str], format: str) -> str:
    """The concrete format: ``format`` itself, or the sniffed one for ``auto``; unknown names are refused."""
    name = format.lower()
    if name == "auto":
        return detect_format(path)
    if name not in FORMATS:
        raise TraceFormatError(f"unknown format {format!r}; expected auto or one of {', '.join(FORMATS)}")
    return name


class RequestReader:
    """Iterable of the requests of one log file. Each iteration re-reads the file and resets ``report``.

    Malformed lines are skipped and counted in ``report`` (with the first line numbers), or raise
    :class:`TraceFormatError` at the first one when ``strict``. Memory is bounded: one line at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str = "auto",
        strict: bool = False,
        max_line_chars: int = MAX_LINE_CHARS,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no such trace file: {self.path}")
        self.format = resolve_format(self.path, format)
        if self.format in SESSION_FORMATS:
            raise TraceFormatError(
                f"{self.format!r} is a session format without requests; use read_sessions()",
                path=str(self.path),
            )
        self.strict = strict
        self.max_line_chars = max_line_chars
        self.report = ReadReport(path=str(self.path), format=self.format)

    def __iter__(self) -> Iterator[Request]:
        report = self.report = ReadReport(path=str(self.path), format=self.format)
        lines = TextLines(self.path, self.max_line_chars)
        strict = self.strict
        parse: LineParser | None = make_clf_parser() if self.format == "clf" else None
        count = 0
        blank = 0
        try:
            for line in lines:
                if strict and lines.overlong:
                    report.add_overlong(1, lines.overlong_line_numbers, strict=True)
                if parse is None:  # tabular: the first non-blank line is the header
                    if not line.strip():
                        blank += 1
                        continue
                    delimiter = "\t" if self.format == "tsv" else ("," if line.count(",") >= line.count(";") else ";")
                    try:
                        parse = make_tabular_parser(line, delimiter)
                    except TraceFormatError as exc:
                        raise TraceFormatError(str(exc), path=str(self.path), line_number=lines.line_number) from None
                    continue
                record = parse(line)
                if record is not None:
                    count += 1
                    yield record
                elif not line or line.isspace():
                    blank += 1
                else:
                    report.add_malformed(lines.line_number, line, strict)
        finally:
            report.lines = lines.line_number
            report.records = count
            report.blank = blank
            report.add_overlong(lines.overlong, lines.overlong_line_numbers, strict=False)
        if strict and lines.overlong:  # an overlong last line
            report.add_overlong(1, lines.overlong_line_numbers, strict=True)


def read_requests(
    path: str | os.PathLike[str], format: str = "auto", strict: bool = False
) -> RequestReader:
    """Requests of a CLF/Combined, TSV or CSV log (see :class:`RequestReader`).

    Session formats (seq, spmf, itemviews) are refused with a clear error: they have no requests.
    """
    return RequestReader(path, format=format, strict=strict)


__all__ = ["REQUEST_FORMATS", "RequestReader", "read_requests", "resolve_format"]
