"""Guess a trace's format from its first lines, so ``format="auto"`` works on every supported file.

Sniffing looks at content, not names: a ``.txt`` can be SPMF or a log. Binary data (NULs, mostly undecodable
bytes) is refused here with a clear message rather than read as millions of malformed lines.
"""

from __future__ import annotations

import os

from precache.traces.clf import SNIFF
from precache.traces.errors import TraceFormatError
from precache.traces.sequences import ITEMVIEW_COLUMNS
from precache.traces.tabular import looks_like_header
from precache.traces.textio import read_head

REQUEST_FORMATS = ("clf", "tsv", "csv")
SESSION_FORMATS = ("seq", "spmf", "itemviews")
FORMATS = (*REQUEST_FORMATS, *SESSION_FORMATS)


def _is_binary(lines: list[str]) -> bool:
    text = "\n".join(lines)
    if not text:
        return False
    if "\x00" in text:
        return True
    bad = text.count("\ufffd") + sum(1 for char in text if char < " " and char not in "\t\n\r\f")
    return bad > 0.1 * len(text)


def detect_format(path: str | os.PathLike[str]) -> str:
    """One of ``clf``, ``tsv``, ``csv``, ``seq``, ``spmf``, ``itemviews``; TraceFormatError when none fits."""
    head = read_head(path)
    lines = [line for line in head if line.strip()]
    if not lines:
        raise TraceFormatError("file is empty (no non-blank line)", path=str(path))
    if _is_binary(lines):
        raise TraceFormatError("file looks binary, not a text trace", path=str(path))
    first = lines[0]
    for delimiter, name in (("\t", "tsv"), (",", "csv"), (";", "csv")):
        if delimiter in first:
            fields = [field.strip().strip('"').lower() for field in first.split(delimiter)]
            if all(column in fields for column in ITEMVIEW_COLUMNS):
                return "itemviews"
            if looks_like_header(fields):
                return name
    body = [line for line in lines if not line.startswith(("%", "@", "#"))]
    if body and all(line.replace(" ", "").lstrip("-").replace("-", "").isdigit() for line in body[-5:]):
        if any(" -1" in line or line.strip() == "-1" for line in body):
            return "spmf"
        return "seq"
    if first.startswith("%") and body and all(line.replace(" ", "").isdigit() for line in body[1:]):
        return "seq"
    matches = sum(1 for line in lines if SNIFF.match(line))
    if matches and matches >= len(lines) / 2:
        return "clf"
    shown = first if len(first) <= 80 else first[:77] + "..."
    raise TraceFormatError(
        f"unknown trace format (first line {shown!r}); expected one of {', '.join(FORMATS)}", path=str(path)
    )
