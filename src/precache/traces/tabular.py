"""TSV/CSV access logs whose header names the columns (e.g. Indeed's NASA 1 Aug 1995 TSV).

Columns are found by name, with the usual aliases, so column order and extra columns do not matter. The
time column may hold epoch seconds (or milliseconds), ISO 8601 or a Common Log Format timestamp.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence

from precache.traces.errors import TraceFormatError
from precache.traces.model import Request
from precache.traces.records import make_request
from precache.traces.timeparse import ClfTimeParser, parse_loose_time

ALIASES: dict[str, tuple[str, ...]] = {
    "client": ("host", "client", "ip", "remote_addr", "remote_host", "clientip", "client_ip", "user", "c-ip"),
    "time": ("time", "timestamp", "ts", "epoch", "datetime", "date_time", "time_local", "request_time"),
    "path": ("url", "path", "uri", "request_uri", "cs-uri-stem", "target", "page", "resource", "key",
             "obj_id", "object_id", "lbn", "item_id"),
    "method": ("method", "verb", "cs-method", "request_method"),
    "status": ("response", "status", "code", "status_code", "sc-status", "http_status"),
    "size": ("bytes", "size", "body_bytes_sent", "sc-bytes", "object_size", "length", "bytes_sent"),
}
# No "op": block traces (CloudPhysics) use it for SCSI opcodes (2a, 28), not HTTP methods.
REQUIRED = ("time", "path")
"""A block or CDN trace has no client column: its requests get client ``-`` (one client)."""


def header_columns(fields: Sequence[str]) -> dict[str, int]:
    """Map our field names to column indexes from a header row; missing optional fields are absent."""
    lowered = [field.strip().strip('"').lower() for field in fields]
    columns: dict[str, int] = {}
    for name, aliases in ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                columns[name] = lowered.index(alias)
                break
    return columns


def looks_like_header(fields: Sequence[str]) -> bool:
    """True when a first row names at least the time and path (object) columns."""
    columns = header_columns(fields)
    return all(name in columns for name in REQUIRED)


def make_tabular_parser(header: str, delimiter: str) -> Callable[[str], Request | None]:
    """A line parser for rows under ``header``; raises TraceFormatError when required columns are missing."""
    fields = _split(header, delimiter)
    columns = header_columns(fields)
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise TraceFormatError(
            f"header {header[:120]!r} has no column for {', '.join(missing)} "
            f"(accepted names: {', '.join(a for n in missing for a in ALIASES[n])})"
        )
    i_time, i_path = columns["time"], columns["path"]
    i_client = columns.get("client")
    i_method = columns.get("method")
    i_status = columns.get("status")
    i_size = columns.get("size")
    width = max(columns.values()) + 1
    clf_time = ClfTimeParser()

    def parse_time(text: str) -> float | None:
        try:
            value = float(text)
        except ValueError:
            return clf_time(text) if "/" in text else parse_loose_time(text)
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return value / 1000.0 if value > 1e11 else value

    def parse(line: str) -> Request | None:
        row = _split(line, delimiter)
        if len(row) < width:
            return None
        moment = parse_time(row[i_time])
        path = row[i_path]
        if moment is None or not path:
            return None
        try:
            status = 200 if i_status is None else _int_or_zero(row[i_status])
            size = 0 if i_size is None else _int_or_zero(row[i_size])
        except ValueError:
            return None
        method = "GET" if i_method is None else (row[i_method] or "GET")
        client = "-" if i_client is None else row[i_client]
        return make_request(moment, client, path, method, status, size)

    return parse


def _int_or_zero(text: str) -> int:
    text = text.strip()
    if text in ("", "-"):
        return 0
    return int(text)


def _split(line: str, delimiter: str) -> list[str]:
    if delimiter == "\t" or '"' not in line:
        return line.split(delimiter)
    return next(csv.reader((line,), delimiter=delimiter))
