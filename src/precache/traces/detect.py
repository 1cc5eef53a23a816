"""Guess a trace's format from its first lines, so ``format="auto"`` works on every supported file.

Sniffing looks at content, not names: a ``.txt`` can be SPMF or a log. Headers decide first (TSV/CSV
column names, W3C ``#Fields:``, sequence files); line formats are then scored by trial-parsing up to
:data:`SAMPLE_LINES` lines with each candidate parser, and the one that reads the most wins, so a file that
opens with a few JSON lines but is mostly CLF is read as CLF (the JSON lines count as malformed). The
result says how many sample lines the chosen format read, which the CLI prints. Binary data is refused
here with a clear message rather than read as millions of malformed lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from precache.traces.clf import make_clf_parser
from precache.traces.errors import TraceFormatError
from precache.traces.ita import ItaParser
from precache.traces.jsonlines import make_json_parser
from precache.traces.logformat import PRESETS, make_log_format_parser
from precache.traces.model import Request
from precache.traces.pattern import ALB, make_pattern_parser
from precache.traces.sequences import ITEMVIEW_COLUMNS
from precache.traces.syslog import PREFIX as SYSLOG
from precache.traces.syslog import strip_header
from precache.traces.tabular import looks_like_header
from precache.traces.textio import MAX_LINE_CHARS, TextLines

REQUEST_FORMATS = ("clf", "logformat", "json", "w3c", "alb", "ita", "pattern", "tsv", "csv")
SESSION_FORMATS = ("seq", "spmf", "itemviews")
FORMATS = (*REQUEST_FORMATS, *SESSION_FORMATS)
"""Format names; the LogFormat presets (common, combined, vhost_combined, nginx) are accepted too."""

SAMPLE_LINES = 1000
SAMPLE_CHARS = 1 << 20


@dataclass(frozen=True, slots=True)
class Detection:
    """What ``auto`` chose, and on what evidence (``matched`` of ``sampled`` non-blank lines read)."""

    format: str
    matched: int
    sampled: int

    def describe(self) -> str:
        return f"auto: chose {self.format} ({self.matched:,} of the first {self.sampled:,} lines read as it)"


def _is_binary(lines: list[str]) -> bool:
    text = "\n".join(lines)
    if not text:
        return False
    if "\x00" in text:
        return True
    bad = text.count("\ufffd") + sum(1 for char in text if char < " " and char not in "\t\n\r\f")
    return bad > 0.1 * len(text)


def _sample(path: str | os.PathLike[str]) -> tuple[list[str], TextLines]:
    lines: list[str] = []
    reader = TextLines(path, max_line_chars=MAX_LINE_CHARS)
    iterator = iter(reader)
    total = 0
    try:
        for line in iterator:
            if line.strip():
                lines.append(line)
                total += len(line)
            if len(lines) >= SAMPLE_LINES or total >= SAMPLE_CHARS:
                break
    except TraceFormatError:
        if not lines:
            raise
    finally:
        iterator.close()  # type: ignore[attr-defined]
    return lines, reader


def _candidates() -> list[tuple[str, Callable[[str], Request | None]]]:
    """Line formats in preference order (vhost_combined first: the CLF reader would misread its lines)."""
    return [
        ("vhost_combined", make_log_format_parser(PRESETS["vhost_combined"])),
        ("clf", make_clf_parser()),
        ("json", make_json_parser()),
        ("ita", ItaParser()),
        ("alb", make_pattern_parser(ALB, "iso8601")),
    ]


def _best_line_format(lines: list[str]) -> tuple[str, int]:
    """The candidate line format that reads the most ``lines``, and how many it reads."""
    best, best_score = "", 0
    for name, parse in _candidates():
        score = sum(1 for line in lines if parse(line))
        if score > best_score:
            best, best_score = name, score
    return best, best_score


def detect(path: str | os.PathLike[str]) -> Detection:
    """The format of a trace, with the evidence; TraceFormatError when none fits."""
    lines, reader = _sample(path)
    if not lines:
        if reader.overlong:
            raise TraceFormatError(
                f"line {reader.overlong_line_numbers[0]} is longer than {MAX_LINE_CHARS:,} characters and no "
                "shorter line comes first: this is not a line-oriented log",
                path=str(path),
            )
        raise TraceFormatError("file is empty (no non-blank line)", path=str(path))
    if _is_binary(lines):
        raise TraceFormatError("file looks binary, not a text trace", path=str(path))
    count = len(lines)
    first = lines[0]
    for delimiter, name in (("\t", "tsv"), (",", "csv"), (";", "csv")):
        if delimiter in first:
            fields = [field.strip().strip('"').lower() for field in first.split(delimiter)]
            if all(column in fields for column in ITEMVIEW_COLUMNS):
                return Detection("itemviews", count, count)
            if looks_like_header(fields):
                return Detection(name, count, count)
    if any(line.startswith("#Fields:") for line in lines):
        return Detection("w3c", count, count)
    body = [line for line in lines if not line.startswith(("%", "@", "#"))]
    if body and all(line.replace(" ", "").lstrip("-").replace("-", "").isdigit() for line in body[-5:]):
        if any(" -1" in line or line.strip() == "-1" for line in body):
            return Detection("spmf", count, count)
        return Detection("seq", count, count)
    if first.startswith("%") and body and all(line.replace(" ", "").isdigit() for line in body[1:]):
        return Detection("seq", count, count)
    best, best_score = _best_line_format(lines)
    unwrapped = [text for text in map(strip_header, lines) if text is not None]
    if len(unwrapped) >= count / 2:  # syslog-wrapped: the loose CLF reader would take "<190>Mar" as the client
        inner, inner_score = _best_line_format(unwrapped)
        if inner and inner_score >= best_score:
            best, best_score = SYSLOG + inner, inner_score
    if best and best_score >= count / 2:
        return Detection(best, best_score, count)
    shown = first if len(first) <= 100 else first[:97] + "..."
    raise TraceFormatError(
        f"unknown trace format (first line {shown!r}); known formats: {', '.join(FORMATS)}; "
        "for another log give its --log-format (Apache LogFormat / nginx log_format string) or a --pattern REGEX",
        path=str(path),
    )


def detect_format(path: str | os.PathLike[str]) -> str:
    """The sniffed format name (see :func:`detect`)."""
    return detect(path).format
