"""Timestamp parsing for logs, fast for the common shape and tolerant of the odd ones.

``strptime`` per line would cap a reader near 50k lines/s. Common Log Format times share their day and zone
over long runs, so the epoch of each (day, zone) is computed once and the time of day added by slicing.
Anything unusual (no zone, ISO 8601, epoch numbers, fractional seconds) goes through a slower path.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

_MONTHS = {
    name: index
    for index, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}

_CLF_LOOSE = re.compile(
    r"\s*(\d{1,2})/([A-Za-z]{3})/(\d{4})[:\s](\d{1,2}):(\d{2}):(\d{2})(\.\d+)?\s*([+-]\d{2}:?\d{2}|Z|GMT|UTC)?\s*$"
)


MIN_TIME = 0.0
"""1970-01-01: no web log is older, and a negative epoch is a misread field."""
MAX_TIME = 253_370_764_800.0
"""9999-01-01 UTC: later moments cannot be shown as dates (datetime stops at year 9999)."""


def _valid_date(year: int, month: int, day: int) -> bool:
    if not (1 <= year <= 9999 and 1 <= month <= 12):
        return False
    return 1 <= day <= calendar.monthrange(year, month)[1]


_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def _zone_offset(zone: str | None) -> int:
    if not zone or zone in ("Z", "GMT", "UTC"):
        return 0
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)


class ClfTimeParser:
    """Parses ``DD/Mon/YYYY:HH:MM:SS ±ZZZZ`` into epoch seconds, caching per day and zone.

    Returns ``None`` for a string it cannot read, an impossible date or time of day (``00/Jan``,
    ``32/Jan``, ``25:61:61``) or a moment outside ``MIN_TIME .. MAX_TIME``, so the caller counts the line
    as malformed instead of silently reading another date.
    """

    def __init__(self) -> None:
        self._day_base: dict[str, int] = {}
        self._last_text = ""
        self._last_value = 0.0

    def __call__(self, text: str) -> float | None:
        if text == self._last_text:
            return self._last_value
        value: float | None = None
        if len(text) == 26 and text[2] == "/" and text[6] == "/" and text[11] == ":" and text[20] == " ":
            key = text[:11] + text[20:]
            base = self._day_base.get(key)
            if base is None:
                base = self._base(text[:2], text[3:6], text[7:11], text[21:])
                if base is not None:
                    if len(self._day_base) > 4096:
                        self._day_base.clear()
                    self._day_base[key] = base
            if base is not None:
                try:
                    hour, minute, second = int(text[12:14]), int(text[15:17]), int(text[18:20])
                except ValueError:
                    return None
                if hour > 23 or minute > 59 or second > 60 or hour < 0 or minute < 0 or second < 0:
                    return None
                value = float(base + hour * 3600 + minute * 60 + second)
        if value is None:
            value = parse_loose_time(text)
            if value is None:
                return None
        self._last_text = text
        self._last_value = value
        return value

    @staticmethod
    def _base(day: str, month: str, year: str, zone: str) -> int | None:
        month_number = _MONTHS.get(month.lower())
        if month_number is None or not (day.isdigit() and year.isdigit()):
            return None
        if not _valid_date(int(year), month_number, int(day)):
            return None
        try:
            midnight = calendar.timegm((int(year), month_number, int(day), 0, 0, 0, 0, 0, 0))
            base = midnight - _zone_offset(zone)
        except (ValueError, IndexError):
            return None
        return base if base >= MIN_TIME and base + 86_400 < MAX_TIME else None


def parse_loose_time(text: str) -> float | None:
    """Epoch seconds from an epoch number, a CLF time with odd spacing or no zone, or ISO 8601 (UTC if naive)."""
    text = text.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number != number or number in (float("inf"), float("-inf")):
            return None
        return _bounded(number / 1000.0 if number > 1e11 else number)  # epoch milliseconds are common too
    match = _CLF_LOOSE.match(text)
    if match:
        day, month, year, hour, minute, second, fraction, zone = match.groups()
        month_number = _MONTHS.get(month.lower())
        if month_number is None or not _valid_date(int(year), month_number, int(day)):
            return None
        if not (int(hour) < 24 and int(minute) < 60 and int(second) < 61):
            return None
        base = calendar.timegm((int(year), month_number, int(day), int(hour), int(minute), int(second), 0, 0, 0))
        return _bounded(base - _zone_offset(zone) + (float(fraction) if fraction else 0.0))
    match = _LONG_FRACTION.search(text)
    if match:  # Go and Traefik write nanoseconds; datetime keeps microseconds
        text = text[: match.start()] + match.group(1) + text[match.end() :]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _bounded(moment.timestamp())


def _bounded(moment: float) -> float | None:
    return moment if MIN_TIME <= moment < MAX_TIME else None
