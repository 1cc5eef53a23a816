"""Access-log lines wrapped in a syslog header (nginx ``access_log syslog:server=...``, rsyslog files).

``<190>Mar 22 10:15:32 web1 nginx: 192.0.2.1 - - [22/Mar/2024:10:15:32 +0000] "GET / HTTP/1.1" ...``:
the header (optional ``<PRI>``, an RFC 3164 or RFC 3339 time, the host, the tag with an optional
``[pid]``) is cut off and the rest is read by the inner format's parser. The format name is
``syslog+INNER`` (``syslog+clf``, ``syslog+nginx``, ``syslog+json`` ...); ``auto`` finds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from precache.traces.model import Request

PREFIX = "syslog+"
HEADER = re.compile(
    r"(?:<\d{1,3}>\d? ?)?"
    r"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ [^\s:\[]+(?:\[\d+\])?: "
)


def strip_header(line: str) -> str | None:
    """The line without its syslog header, or ``None`` when it has none."""
    found = HEADER.match(line)
    return line[found.end() :] if found else None


def unwrap(parse: Callable[[str], Request | None]) -> Callable[[str], Request | None]:
    """A parser for syslog-wrapped lines of the format ``parse`` reads."""
    match = HEADER.match

    def parse_wrapped(line: str) -> Request | None:
        found = match(line)
        return parse(line[found.end() :]) if found else None

    return parse_wrapped
