"""Common Log Format and Combined Log Format (Apache/nginx), including old-server variants.

One compiled regex handles the usual shape; a looser one catches missing ident/user fields, extra spaces
and a missing size. The request string is then split by hand: old logs (NASA 1995) have requests without
a protocol (``"GET /ksc.html"``), targets with spaces, and garbage that is not a request at all; the last
is a malformed line, the others are read.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from precache.traces.model import Request
from precache.traces.records import make_request
from precache.traces.timeparse import ClfTimeParser

FAST = re.compile(r'(\S+) \S+ \S+ \[([^\]]*)\] "(.*?)" (\d{3}|-)(?: (\d+|-))?(?: |$)')
LOOSE = re.compile(r'\s*(\S+)\s.*?\[([^\]]*)\]\s+"(.*?)"\s+(\d{3}|-)(?:\s+(\d+|-))?(?:\s|$)')
SNIFF = re.compile(r'\s*\S+\s.*?\[[^\]]*\]\s+"')

_MAX_METHOD = 16


def split_request(text: str) -> tuple[str, str] | None:
    """``(method, target)`` of a request line, or ``None`` when it is not a request.

    Accepts ``METHOD target PROTO``, ``METHOD target`` (HTTP/0.9 style), a bare ``/target`` (method GET)
    and targets containing spaces. A lower-case method (``get``, written by some clients and proxies) is
    upper-cased.
    """
    parts = text.split(" ")
    count = len(parts)
    if count == 3:
        method, target = parts[0], parts[1]
    elif count == 2:
        method, target = parts
    elif count == 1:
        if not text.startswith("/"):
            return None
        return "GET", text
    elif count > 3:
        method = parts[0]
        last = parts[-1]
        middle = parts[1:-1] if last.startswith("HTTP/") else parts[1:]
        target = " ".join(part for part in middle if part)
    else:
        return None
    if not target or not method or len(method) > _MAX_METHOD or not method.isalpha():
        return None
    return (method if method.isupper() else method.upper()), target


def make_clf_parser() -> Callable[[str], Request | None]:
    """A line parser for CLF/Combined with its own timestamp cache (one per reader, not thread-shared).

    The common shape ``host ident user [DD/Mon/YYYY:HH:MM:SS +ZZZZ] "M /t P" 200 123 ...`` is sliced by hand
    (about 1.5x the regex); anything else goes through the regexes.
    """
    parse_time = ClfTimeParser()
    slow = _make_slow(parse_time)
    build = make_request

    def parse(line: str) -> Request | None:
        space = line.find(" ")
        bracket = line.find(" [", space)
        if space <= 0 or bracket < 0 or line[bracket + 28 : bracket + 31] != '] "':
            return slow(line)
        end = line.find('" ', bracket + 31)
        if end < 0:
            return slow(line)
        parts = line[bracket + 31 : end].split(" ")
        rest = line[end + 2 :].split(" ", 2)
        status = rest[0]
        size = rest[1] if len(rest) > 1 else "-"
        if (
            len(parts) != 3
            or len(status) != 3
            or not status.isdigit()
            or not (size == "-" or size.isdigit())
            or not parts[1]
        ):
            return slow(line)
        method = parts[0]
        if not (method.isalpha() and method.isupper()):
            return slow(line)
        moment = parse_time(line[bracket + 2 : bracket + 28])
        if moment is None:
            return slow(line)
        return build(moment, line[:space], parts[1], method, int(status), 0 if size == "-" else int(size))

    return parse


def _make_slow(parse_time: ClfTimeParser) -> Callable[[str], Request | None]:
    fast_match = FAST.match
    loose_match = LOOSE.match

    def parse(line: str) -> Request | None:
        match = fast_match(line) or loose_match(line)
        if match is None:
            return None
        host, stamp, request, status, size = match.groups()
        moment = parse_time(stamp)
        if moment is None:
            return None
        pair = split_request(request)
        if pair is None:
            return None
        method, target = pair
        return make_request(
            moment,
            host,
            target,
            method,
            0 if status == "-" else int(status),
            0 if size is None or size == "-" else int(size),
        )

    return parse
