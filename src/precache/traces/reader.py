"""``read_requests``: stream ``Request`` records from an access log, with a report of what was skipped.

Reading fails loudly rather than quietly returning nothing: when more than ``max_malformed`` (default
half) of the first 1,000 non-empty lines do not parse, the read stops with :class:`TraceFormatError`
naming the format tried, quoting the first bad line and saying how to describe the log instead. Those
first lines are held back until the check passes, so a consumer never sees records from a read that
then fails the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from precache.traces.detect import FORMATS, REQUEST_FORMATS, SESSION_FORMATS, detect
from precache.traces.errors import TraceFormatError
from precache.traces.logformat import PRESETS
from precache.traces.model import Request
from precache.traces.options import DEFAULT_MAX_MALFORMED, SAMPLE_LINES, ReadOptions
from precache.traces.parsers import LineParser, describe, make_line_parser
from precache.traces.records import NOT_A_RECORD
from precache.traces.report import ReadReport
from precache.traces.syslog import PREFIX as SYSLOG
from precache.traces.textio import MAX_LINE_CHARS, TextLines

SESSION_FILE_HINT = (
    "trace-stats, evaluate and train-predictor accept it (Python: read_sessions()); "
    "demo --trace and other request replays need an access log"
)


def resolve_format(
    path: str | os.PathLike[str], format: str, options: ReadOptions | None = None
) -> tuple[str, str | None]:
    """``(format, note)``: the concrete format name, and for ``auto`` a note saying what was chosen and why.

    ``--pattern``/``--log-format`` decide the format themselves; unknown names are refused.
    """
    name = format.strip().lower()
    wrapper = ""
    if name == "syslog" or name.startswith(SYSLOG):
        wrapper, name = SYSLOG, name[len(SYSLOG) :] or "auto"
    if options is not None and options.pattern is not None:
        return wrapper + "pattern", None
    if options is not None and options.log_format is not None:
        return wrapper + "logformat", None
    if name == "auto" and not wrapper:
        found = detect(path)
        return found.format, found.describe()
    if wrapper and (name == "auto" or name in SESSION_FORMATS):
        raise TraceFormatError("--format syslog needs the inner format: syslog+clf, syslog+nginx, syslog+json ...")
    if name not in FORMATS and name not in PRESETS:
        raise TraceFormatError(
            f"unknown format {format!r}; expected auto, one of {', '.join(FORMATS)} "
            f"or a LogFormat preset ({', '.join(PRESETS)}), optionally after syslog+"
        )
    return wrapper + name, None


def merge_options(format: str, strict: bool, options: ReadOptions | None) -> ReadOptions:
    """``options`` with an explicit ``format``/``strict`` argument applied on top (defaults keep it)."""
    if options is None:
        return ReadOptions(format=format, strict=strict)
    if format != "auto":
        options = replace(options, format=format)
    return replace(options, strict=True) if strict else options


class RequestReader:
    """Iterable of the requests of one log file. Each iteration re-reads the file and resets ``report``.

    Malformed lines are skipped and counted in ``report`` (with the first line numbers), or raise
    :class:`TraceFormatError` at the first one when ``strict``, or stop the read when too many of the first
    1,000 are bad (``max_malformed``). Memory is bounded: one line at a time, plus the held-back first lines.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str = "auto",
        strict: bool = False,
        max_line_chars: int = MAX_LINE_CHARS,
        *,
        options: ReadOptions | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no such trace file: {self.path}")
        self.options = merge_options(format, strict, options)
        self.format, self.note = resolve_format(self.path, self.options.format, self.options)
        if self.format in SESSION_FORMATS:
            raise TraceFormatError(
                f"this is a {self.format!r} session file (sessions, no requests): {SESSION_FILE_HINT}",
                path=str(self.path),
            )
        self.strict = self.options.strict
        self.max_line_chars = max_line_chars
        make_line_parser(self.format, self.options)  # a bad --log-format/--pattern fails here, before reading
        self.report = self._new_report()

    def _new_report(self) -> ReadReport:
        report = ReadReport(path=str(self.path), format=describe(self.format, self.options))
        if self.note:
            report.notes.append(self.note)
        if self.format == "ita" and self.options.base_date is None:
            report.notes.append("ITA log without --base-date: its days are placed in January 1970")
        return report

    def __iter__(self) -> Iterator[Request]:
        report = self.report = self._new_report()
        lines = TextLines(self.path, self.max_line_chars)
        strict = self.strict
        parse = make_line_parser(self.format, self.options)
        if self.options.drop_bots:
            parse = _drop_bots(parse, report)
        count = 0
        blank = 0
        held: list[Request] = []
        non_empty = 0
        source = iter(lines)
        try:
            for line in source:  # the first SAMPLE_LINES non-empty lines, checked before any record leaves
                if strict and lines.overlong:
                    report.add_overlong(1, lines.overlong_line_numbers, strict=True)
                try:
                    record = parse(line)
                except TraceFormatError as exc:
                    raise TraceFormatError(str(exc), path=str(self.path), line_number=lines.line_number) from None
                if record is None:
                    if not line or line.isspace():
                        blank += 1
                        continue
                    non_empty += 1
                    report.add_malformed(lines.line_number, line, strict)
                elif record is not NOT_A_RECORD:
                    held.append(record)
                    non_empty += 1
                if non_empty + lines.overlong >= SAMPLE_LINES:
                    break
            self._check_sample(report, non_empty + lines.overlong, report.malformed + lines.overlong)
            count = len(held)
            yield from held
            held = []
            for line in source:
                if strict and lines.overlong:
                    report.add_overlong(1, lines.overlong_line_numbers, strict=True)
                record = parse(line)
                if record is None:
                    if not line or line.isspace():
                        blank += 1
                    else:
                        report.add_malformed(lines.line_number, line, strict)
                elif record is not NOT_A_RECORD:
                    count += 1
                    yield record
        finally:
            report.lines = lines.line_number
            report.records = count
            report.blank = blank
            report.add_overlong(lines.overlong, lines.overlong_line_numbers, strict=False)
        if strict and lines.overlong:  # an overlong last line
            report.add_overlong(1, lines.overlong_line_numbers, strict=True)

    def _check_sample(self, report: ReadReport, checked: int, bad: int) -> None:
        """Stop when more than ``max_malformed`` of the first non-empty lines are bad (the loud failure)."""
        if not checked or bad <= self.options.max_malformed * checked:
            return
        example = f" (first bad line {report.first_bad_line_number}: {report.first_bad_line!r})"
        if report.first_bad_line is None:
            example = " (they are longer than the line limit)"
        raise TraceFormatError(
            f"{bad:,} of the first {checked:,} non-empty lines are not {report.format} records{example}. "
            "Say how the log is written: --log-format 'LOGFORMAT' (Apache LogFormat or nginx log_format string, "
            f"or one of {', '.join(PRESETS)}), --format ({', '.join(REQUEST_FORMATS)}) or --pattern REGEX "
            "with named groups; --max-malformed 1 reads it anyway",
            path=str(self.path),
        )


def _drop_bots(parse: LineParser, report: ReadReport) -> LineParser:
    from precache.traces.bots import BotFilter

    is_bot = BotFilter()

    def parse_without_bots(line: str) -> Request | None:
        record = parse(line)
        if record is not None and record.agent is not None and is_bot(record.agent):
            report.bots += 1
            return NOT_A_RECORD
        return record

    return parse_without_bots


def read_requests(
    path: str | os.PathLike[str],
    format: str = "auto",
    strict: bool = False,
    *,
    log_format: str | None = None,
    pattern: str | None = None,
    time_format: str | None = None,
    base_date: str | None = None,
    max_malformed: float | None = None,
    drop_bots: bool = False,
    options: ReadOptions | None = None,
) -> RequestReader:
    """Requests of an access log (see :class:`RequestReader` and :class:`ReadOptions` for the options).

    Session formats (seq, spmf, itemviews) are refused with a clear error: they have no requests.
    """
    if options is None:
        options = ReadOptions(
            format=format, strict=strict, log_format=log_format, pattern=pattern, time_format=time_format,
            base_date=base_date, drop_bots=drop_bots,
            max_malformed=DEFAULT_MAX_MALFORMED if max_malformed is None else max_malformed,
        )
    return RequestReader(path, format=format, strict=strict, options=options)


__all__ = ["REQUEST_FORMATS", "RequestReader", "merge_options", "read_requests", "resolve_format"]
