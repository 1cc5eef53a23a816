"""``ReadOptions``: how to read one trace, the same for the Python API and every command's CLI options.

One value object rather than eight keyword arguments threaded through ``read_requests``, ``read_sessions``,
``trace_stats`` and the CLI: adding a way to read logs means adding a field here, not editing every caller.
Options are checked when built, so a bad ``--base-date`` or ``--max-malformed`` fails before any reading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from precache.traces.errors import TraceFormatError

DEFAULT_MAX_MALFORMED = 0.5
"""More than this share of bad lines among the first :data:`SAMPLE_LINES` non-empty lines stops the read."""
SAMPLE_LINES = 1000

JSON_FIELDS = ("client", "time", "method", "path", "request", "status", "size", "referrer", "agent")
"""The record fields a ``--json-fields`` mapping may name (``request`` is a whole ``GET /x HTTP/1.1``)."""


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How to read a trace.

    ``format``: ``auto`` or a format name (:data:`precache.traces.detect.FORMATS`, or a LogFormat preset).
    ``log_format``: an Apache ``LogFormat`` / nginx ``log_format`` string, or a preset name.
    ``pattern``: a regex with named groups (``path`` required), read with ``time_format``.
    ``time_format``: strptime string, ``epoch``/``ms``/``us``, ``iso8601`` or a name (``ctime``, ``clf``).
    ``base_date``: ``YYYY-MM-DD`` giving year and month of the first line of an ITA ``[DD:HH:MM:SS]`` log.
    ``json_fields``: our field name -> dotted JSON path, overriding the defaults for JSON lines.
    ``strict``: raise at the first bad line. ``max_malformed``: the tolerated share of bad lines among the
    first 1,000 non-empty ones (1.0 never stops). ``drop_bots``: skip requests whose user agent is a known
    crawler (the maintained ``crawler-user-agents`` list).
    """

    format: str = "auto"
    log_format: str | None = None
    pattern: str | None = None
    time_format: str | None = None
    base_date: str | None = None
    json_fields: Mapping[str, str] | None = field(default=None, hash=False)
    strict: bool = False
    max_malformed: float = DEFAULT_MAX_MALFORMED
    drop_bots: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.max_malformed <= 1.0):
            raise TraceFormatError(f"--max-malformed must be a ratio in 0..1, got {self.max_malformed!r}")
        if self.pattern is not None and self.log_format is not None:
            raise TraceFormatError("give either --pattern or --log-format, not both")
        explicit = self.pattern is not None or self.log_format is not None
        if explicit and self.format.lower() not in ("auto", "pattern", "logformat", "syslog"):
            raise TraceFormatError(
                f"--format {self.format} conflicts with --{'pattern' if self.pattern else 'log-format'}"
            )
        if self.base_date is not None:
            self.base_month()
        for name in self.json_fields or {}:
            if name not in JSON_FIELDS:
                raise TraceFormatError(f"unknown --json-fields name {name!r}; known: {', '.join(JSON_FIELDS)}")

    def base_month(self) -> tuple[int, int] | None:
        """``(year, month)`` of ``base_date``; ``None`` when not given."""
        if self.base_date is None:
            return None
        try:
            day = dt.date.fromisoformat(self.base_date.strip())
        except ValueError:
            raise TraceFormatError(f"--base-date must be YYYY-MM-DD, got {self.base_date!r}") from None
        return day.year, day.month


def parse_json_fields(text: str | None) -> dict[str, str] | None:
    """``client=request.remote_ip,time=ts`` -> ``{"client": "request.remote_ip", "time": "ts"}``."""
    if text is None or not text.strip():
        return None
    mapping: dict[str, str] = {}
    for item in text.split(","):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise TraceFormatError(f"--json-fields takes NAME=DOTTED.PATH pairs separated by commas, got {item!r}")
        mapping[name.strip()] = path.strip()
    return mapping
