"""One line parser per request format, chosen once per read.

A line parser takes one decoded line and returns a :class:`Request`, ``None`` for a malformed (or blank)
line, or :data:`~precache.traces.records.NOT_A_RECORD` for a line that is part of the format but
carries no request (a W3C ``#Fields:`` directive, a TSV header). Stateful formats (W3C headers that
change mid-file, ITA day numbers that roll over to the next month, a TSV header) keep their state in the
parser object, one per read.
"""

from __future__ import annotations

from collections.abc import Callable

from precache.traces import syslog
from precache.traces.clf import make_clf_parser
from precache.traces.errors import TraceFormatError
from precache.traces.ita import ItaParser
from precache.traces.jsonlines import make_json_parser
from precache.traces.logformat import PRESETS, make_log_format_parser
from precache.traces.model import Request
from precache.traces.options import ReadOptions
from precache.traces.pattern import ALB, make_pattern_parser
from precache.traces.records import NOT_A_RECORD
from precache.traces.tabular import make_tabular_parser
from precache.traces.w3c import W3cParser

LineParser = Callable[[str], Request | None]


def describe(name: str, options: ReadOptions) -> str:
    """How a read is described to the user: ``logformat 'combined'``, ``pattern '...'``, ``clf``."""
    if name.startswith(syslog.PREFIX):
        return syslog.PREFIX + describe(name[len(syslog.PREFIX) :], options)
    if name == "logformat":
        return f"logformat {options.log_format!r}"
    if name == "pattern":
        return f"pattern {options.pattern!r}"
    if name in PRESETS:
        return f"logformat {name!r}"
    return name


def make_line_parser(name: str, options: ReadOptions) -> LineParser:
    """The parser for a resolved format name (see :func:`precache.traces.reader.resolve_format`)."""
    if name.startswith(syslog.PREFIX):
        return syslog.unwrap(make_line_parser(name[len(syslog.PREFIX) :], options))
    if name == "clf":
        return make_clf_parser()
    if name in PRESETS:
        return make_log_format_parser(name, options.time_format)
    if name == "logformat":
        if options.log_format is None:
            raise TraceFormatError("format 'logformat' needs --log-format (a LogFormat/log_format string or preset)")
        return make_log_format_parser(options.log_format, options.time_format)
    if name == "pattern":
        if options.pattern is None:
            raise TraceFormatError("format 'pattern' needs --pattern REGEX")
        return make_pattern_parser(options.pattern, options.time_format)
    if name == "json":
        return make_json_parser(options.json_fields, options.time_format)
    if name == "w3c":
        return W3cParser()
    if name == "alb":
        return make_pattern_parser(ALB, "iso8601")
    if name == "ita":
        return ItaParser(options.base_month())
    if name in ("tsv", "csv"):
        return _TabularParser(name)
    raise TraceFormatError(f"{name!r} is not a request format")


class _TabularParser:
    """TSV/CSV: the first non-blank line is the header that names the columns."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._parse: Callable[[str], Request | None] | None = None

    def __call__(self, line: str) -> Request | None:
        if self._parse is not None:
            return self._parse(line)
        if not line.strip():
            return None
        delimiter = "\t" if self.name == "tsv" else ("," if line.count(",") >= line.count(";") else ";")
        self._parse = make_tabular_parser(line, delimiter)
        return NOT_A_RECORD
