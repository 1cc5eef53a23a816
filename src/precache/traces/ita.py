"""Internet Traffic Archive variants with ``[DD:HH:MM:SS]`` times (day of month only, e.g. the EPA trace).

The lines carry no month or year: ``--base-date YYYY-MM-DD`` gives the year and month of the first line,
and a day number lower than the previous line's moves to the next month. Without a base date the log is
placed in January 1970, which keeps order and gaps (all sessions need) but not the calendar.
"""

from __future__ import annotations

import calendar
import re

from precache.traces.clf import split_request
from precache.traces.model import Request
from precache.traces.records import make_request

LINE = re.compile(r'\s*(\S+)\s+\[(\d{1,2}):(\d{2}):(\d{2}):(\d{2})\]\s+"(.*?)"\s+(\d{3}|-)(?:\s+(\d+|-))?\s*$')
SNIFF = re.compile(r"\s*\S+\s+\[\d{1,2}:\d{2}:\d{2}:\d{2}\]\s")


class ItaParser:
    """Line parser for ``host [DD:HH:MM:SS] "request" status size`` (stateful: the month rolls over)."""

    def __init__(self, base_month: tuple[int, int] | None = None) -> None:
        self.year, self.month = base_month or (1970, 1)
        self._last_day = 0

    def __call__(self, line: str) -> Request | None:
        found = LINE.match(line)
        if found is None:
            return None
        host, day_text, hour, minute, second, request, status, size = found.groups()
        day = int(day_text)
        if day < self._last_day:
            self.month += 1
            if self.month > 12:
                self.year, self.month = self.year + 1, 1
        if not (1 <= day <= calendar.monthrange(self.year, self.month)[1]):
            return None
        if int(hour) > 23 or int(minute) > 59 or int(second) > 60:
            return None
        pair = split_request(request)
        if pair is None:
            return None
        self._last_day = day
        moment = calendar.timegm((self.year, self.month, day, int(hour), int(minute), int(second), 0, 0, 0))
        return make_request(float(moment), host, pair[1], pair[0], 0 if status == "-" else int(status),
                            0 if size is None or size == "-" else int(size))
