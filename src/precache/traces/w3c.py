"""W3C extended log format: IIS, CloudFront and others, where ``#Fields:`` lines name the columns.

A ``#Fields:`` line may come again mid-file (IIS starts a new header when its settings change), so the
column map is rebuilt at each one. Columns are split on tabs when the line has them (CloudFront) and on
spaces otherwise (IIS, which writes spaces inside values as ``+``). Times are ``date`` + ``time`` in UTC.
"""

from __future__ import annotations

import calendar
from urllib.parse import unquote

from precache.traces.model import Request
from precache.traces.records import NOT_A_RECORD, make_request
from precache.traces.timeparse import MAX_TIME

_COLUMNS = {
    "c-ip": "client", "cs-method": "method", "cs-uri-stem": "path", "cs-uri-query": "query",
    "sc-status": "status", "sc-bytes": "size", "cs(referer)": "referrer", "cs(referrer)": "referrer",
    "cs(user-agent)": "agent", "date": "date", "time": "time", "cs-uri": "uri",
}  # fmt: skip


def _value(text: str) -> str | None:
    return None if text in ("-", "") else text


class W3cParser:
    """Line parser for W3C extended logs (stateful: the latest ``#Fields:`` line names the columns)."""

    def __init__(self) -> None:
        self.columns: dict[str, int] = {}
        self.width = 0
        self._days: dict[str, int | None] = {}

    def _fields(self, names: list[str]) -> None:
        lowered = [name.lower() for name in names]
        self.columns = {_COLUMNS[name]: index for index, name in enumerate(lowered) if name in _COLUMNS}
        self.width = len(names)

    def _day(self, text: str) -> int | None:
        if text not in self._days:
            try:
                year, month, day = (int(part) for part in text.split("-"))
                self._days[text] = calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))
                if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
                    self._days[text] = None
            except (ValueError, OverflowError):
                self._days[text] = None
        return self._days[text]

    def __call__(self, line: str) -> Request | None:
        if line.startswith("#"):
            if line.startswith("#Fields:"):
                self._fields(line[8:].split())
            return NOT_A_RECORD
        columns = self.columns
        if "date" not in columns or "time" not in columns:
            return None
        values = line.split("\t") if "\t" in line else line.split()
        if len(values) != self.width:
            return None
        day = self._day(values[columns["date"]])
        clock = values[columns["time"]].split(":")
        if day is None or len(clock) != 3:
            return None
        try:
            hour, minute, second = int(clock[0]), int(clock[1]), float(clock[2])
        except ValueError:
            return None
        if hour > 23 or minute > 59 or not 0 <= second < 61 or day + 86_400 >= MAX_TIME or day < 0:
            return None
        path = _value(values[columns["path"]]) if "path" in columns else None
        if path is None and "uri" in columns:
            path = _value(values[columns["uri"]])
        if path is None:
            return None
        query = _value(values[columns["query"]]) if "query" in columns else None
        method = (_value(values[columns["method"]]) if "method" in columns else None) or "GET"
        if not method.isalpha():
            return None
        try:
            status = int(_value(values[columns["status"]]) or 0) if "status" in columns else 200
            size = int(_value(values[columns["size"]]) or 0) if "size" in columns else 0
        except ValueError:
            return None
        referrer = _value(values[columns["referrer"]]) if "referrer" in columns else None
        agent = _value(values[columns["agent"]]) if "agent" in columns else None
        return make_request(
            day + hour * 3600 + minute * 60 + second,
            (_value(values[columns["client"]]) if "client" in columns else None) or "-",
            f"{path}?{query}" if query else path,
            method.upper(),
            status,
            size,
            referrer,
            unquote(agent.replace("+", " ")) if agent else None,
        )
