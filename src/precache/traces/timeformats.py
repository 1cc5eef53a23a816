"""``--time-format``: turn a log's timestamp text into epoch seconds, whatever the log's convention.

A time format is a strptime string (``%d/%b/%Y:%H:%M:%S %z``), ``epoch``/``s`` (seconds), ``ms`` or ``us``
(milli-/microseconds since the epoch), or a named convention (:data:`NAMED`). Naive times are read as
UTC. Every parser returns ``None`` for text it cannot read, or for a moment outside :data:`MIN_TIME` ..
:data:`MAX_TIME`, so the line is counted malformed (with its number) instead of failing later on
``year 10000 is out of range``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from precache.traces.errors import TraceFormatError
from precache.traces.timeparse import MAX_TIME, MIN_TIME, ClfTimeParser, parse_loose_time

TimeParser = Callable[[str], float | None]

NAMED: dict[str, str] = {
    "clf": "%d/%b/%Y:%H:%M:%S %z",
    "apache": "%d/%b/%Y:%H:%M:%S %z",
    "ctime": "%a %b %d %H:%M:%S %Y",
    "syslog": "%b %d %H:%M:%S",
    "w3c": "%Y-%m-%d %H:%M:%S",
}
"""Named strptime conventions; ``iso8601`` and the epoch units are handled without strptime."""

EPOCH_UNITS = {"epoch": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "usec": 1e-6}


def in_range(moment: float | None) -> float | None:
    """``moment`` when it is a showable date (see :data:`MAX_TIME`), else ``None``."""
    if moment is None or not (MIN_TIME <= moment < MAX_TIME):
        return None
    return moment


def make_time_parser(time_format: str | None) -> TimeParser:
    """A parser for ``time_format`` (``None``: CLF, ISO 8601 or an epoch number, whichever fits)."""
    if time_format is None or time_format in ("auto", "clf", "apache"):
        return ClfTimeParser()
    name = time_format.strip()
    if name.lower() in EPOCH_UNITS:
        scale = EPOCH_UNITS[name.lower()]
        return lambda text: in_range(_number(text, scale))
    if name.lower() in ("iso8601", "iso", "rfc3339"):
        return lambda text: in_range(parse_loose_time(text) if "-" in text else None)
    pattern = NAMED.get(name.lower(), name)
    if "%" not in pattern:
        raise TraceFormatError(
            f"unknown --time-format {time_format!r}: give a strptime string (%d/%b/%Y:%H:%M:%S %z), "
            f"epoch, ms, us, iso8601 or one of {', '.join(NAMED)}"
        )
    try:
        datetime.now(UTC).strftime(pattern)
        datetime.strptime(datetime(2000, 1, 2, 3, 4, 5, tzinfo=UTC).strftime(pattern), pattern)
    except ValueError as exc:
        raise TraceFormatError(f"bad --time-format {time_format!r}: {exc}") from None
    return _StrptimeParser(pattern)


def _number(text: str, scale: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value:
        return None
    return value * scale


class _StrptimeParser:
    """strptime with a one-entry cache: consecutive log lines often share their timestamp text."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._last_text = ""
        self._last_value: float | None = None

    def __call__(self, text: str) -> float | None:
        if text == self._last_text:
            return self._last_value
        try:
            moment = datetime.strptime(text.strip(), self.pattern)
        except ValueError:
            value = None
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            value = in_range(moment.timestamp())
        self._last_text, self._last_value = text, value
        return value
