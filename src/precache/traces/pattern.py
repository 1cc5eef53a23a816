"""``--pattern REGEX``: the escape hatch that reads any line-oriented log.

Named groups say where the fields are: ``path`` (required, or a whole ``request`` line), ``time`` (read with
``--time-format``), ``host``/``client``, ``session`` (stands in for a missing client: a process or
connection id), ``method``, ``query``, ``status``, ``size``, ``referrer``, ``agent``. A group with any other
name is refused, since a typo there would silently drop a field. Without a ``time`` group the line number
stands for the time, so the session gap then counts lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from precache.traces.clf import split_request
from precache.traces.errors import TraceFormatError
from precache.traces.model import Request
from precache.traces.records import make_request
from precache.traces.timeformats import make_time_parser

GROUPS = ("path", "request", "time", "host", "client", "session", "method", "query", "status", "size",
          "referrer", "agent")  # fmt: skip


ALB = (
    r'^\S+ (?P<time>\d{4}-\d\d-\d\dT\S+) \S+ (?P<client>[^\s:]+|\[[^\]]+\]):\d+ \S+ \S+ \S+ \S+ '
    r'(?P<status>\d{3}|-) \S+ \S+ (?P<size>\d+|-) "(?P<request>[^"]*)" "(?P<agent>[^"]*)"'
)
"""AWS Application Load Balancer access logs (space-separated, no header): ``--format alb``."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled ``--pattern``; TraceFormatError names a bad regex, an unknown group or a missing path."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise TraceFormatError(f"--pattern is not a valid regular expression: {exc}") from None
    unknown = sorted(set(regex.groupindex) - set(GROUPS))
    if unknown:
        raise TraceFormatError(f"--pattern has unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    if "path" not in regex.groupindex and "request" not in regex.groupindex:
        raise TraceFormatError("--pattern has no (?P<path>...) group (or (?P<request>...) for a whole request line)")
    return regex


def make_pattern_parser(pattern: str, time_format: str | None) -> Callable[[str], Request | None]:
    """A line parser for ``pattern`` (see the module doc)."""
    regex = compile_pattern(pattern)
    search = regex.search
    parse_time = make_time_parser(time_format)
    has_time = "time" in regex.groupindex
    counter = [0]

    def parse(line: str) -> Request | None:
        counter[0] += 1
        found = search(line)
        if found is None:
            return None
        group = found.groupdict()
        if has_time:
            moment = parse_time(group["time"] or "")
            if moment is None:
                return None
        else:
            moment = float(counter[0])
        method = group.get("method") or "GET"
        path = group.get("path")
        request = group.get("request")
        if request:
            pair = split_request(request)
            if pair is None:
                return None
            method, path = pair
        if not path or not method.isalpha():
            return None
        query = group.get("query")
        if query:
            path = path + query if query[0] == "?" else f"{path}?{query}"
        try:
            status = int(group.get("status") or 200) if group.get("status") != "-" else 0
            size = int(group.get("size") or 0) if group.get("size") != "-" else 0
        except ValueError:
            return None
        client = group.get("session") or group.get("host") or group.get("client") or "-"
        referrer, agent = group.get("referrer"), group.get("agent")
        return make_request(moment, client, path, method.upper(), status, size,
                            referrer if referrer and referrer != "-" else None,
                            agent if agent and agent != "-" else None)

    return parse
