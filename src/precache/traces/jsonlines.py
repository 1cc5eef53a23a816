"""JSON-lines access logs: nginx ``escape=json`` formats, Caddy, Envoy, Traefik, or any flat/nested JSON.

Each field is looked up by a list of dotted paths, the first present wins; the defaults cover the field
names of the servers' documented examples (nginx variable names, Caddy's ``request.uri``/``ts``, Envoy's
``path``/``start_time``/``response_code``, Traefik's ``RequestPath``/``StartUTC``/``DownstreamStatus``).
``--json-fields path=req.url,time=@ts`` puts the user's names first. Caddy logs headers as lists; the
first value is used. ``ip:port`` client addresses (Envoy, old Caddy) lose the port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from precache.traces.clf import split_request
from precache.traces.model import Request
from precache.traces.records import make_request
from precache.traces.timeformats import make_time_parser
from precache.traces.timeparse import MAX_TIME, MIN_TIME

DEFAULT_PATHS: dict[str, tuple[str, ...]] = {
    "client": ("remote_addr", "client_ip", "request.client_ip", "request.remote_ip", "request.remote_addr",
               "ClientHost", "downstream_remote_address", "remote_ip", "ip", "clientip", "c-ip"),
    "time": ("time_local", "time_iso8601", "time", "timestamp", "ts", "start_time", "StartUTC", "@timestamp",
             "msec", "date"),
    "method": ("request_method", "method", "request.method", "RequestMethod", "cs-method"),
    "path": ("request_uri", "uri", "path", "request.uri", "RequestPath", "url", "cs-uri-stem"),
    "request": ("request",),
    "status": ("status", "response_code", "status_code", "DownstreamStatus", "response.status", "sc-status"),
    "size": ("body_bytes_sent", "bytes_sent", "size", "DownstreamContentSize", "response_size", "sc-bytes"),
    "referrer": ("http_referer", "http_referrer", "referer", "referrer", "request.headers.Referer",
                 "request_Referer"),
    "agent": ("http_user_agent", "user_agent", "request.headers.User-Agent", "request_User-Agent", "useragent",
              "agent"),
}  # fmt: skip


def _lookup(record: Mapping[str, Any], path: str) -> Any:
    if path in record:
        return record[path]
    value: Any = record
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or value == "" or value == "-":
        return None
    return value if isinstance(value, str) else str(value)


def _strip_port(address: str) -> str:
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() and "." in host and ":" not in host else address


def make_json_parser(
    fields: Mapping[str, str] | None = None, time_format: str | None = None
) -> Callable[[str], Request | None]:
    """A line parser for JSON lines; ``fields`` maps our names to the log's dotted paths first."""
    paths = {name: ((fields[name],) if fields and name in fields else ()) + defaults
             for name, defaults in DEFAULT_PATHS.items()}
    text_time = make_time_parser(time_format)

    def first(record: Mapping[str, Any], name: str) -> Any:
        for path in paths[name]:
            value = _lookup(record, path)
            if value is not None:
                return value
        return None

    def parse_time(value: Any) -> float | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            moment = value / 1000.0 if value > 1e11 else float(value)
            return moment if MIN_TIME <= moment < MAX_TIME else None
        return text_time(value) if isinstance(value, str) else None

    def parse(line: str) -> Request | None:
        if not line.lstrip().startswith("{"):
            return None
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(record, dict):
            return None
        moment = parse_time(first(record, "time"))
        if moment is None:
            return None
        method = _text(first(record, "method")) or "GET"
        path = _text(first(record, "path"))
        if path is None:
            request = _text(first(record, "request"))
            pair = split_request(request) if request else None
            if pair is None:
                return None
            method, path = pair
        if not method.isalpha():
            return None
        try:
            status = int(_text(first(record, "status")) or 0)
            size = int(float(_text(first(record, "size")) or 0))
        except ValueError:
            return None
        client = _text(first(record, "client"))
        return make_request(moment, _strip_port(client) if client else "-", path, method.upper(), status, size,
                            _text(first(record, "referrer")), _text(first(record, "agent")))

    return parse
