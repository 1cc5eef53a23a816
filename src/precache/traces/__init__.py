"""Trace reading for precache: access logs and session files in, ``Request`` and ``Session`` out.

Streaming readers (bounded memory) for Common/Combined Log Format and its old-server variants, TSV/CSV
logs with named columns, MSNBC ``.seq``, SPMF/BMS and DIGINETICA item views; a sessionizer; and a
synthetic site workload (:mod:`precache.traces.synthetic`).
"""

from precache.traces import synthetic
from precache.traces.detect import FORMATS, REQUEST_FORMATS, SESSION_FORMATS, detect_format
from precache.traces.errors import TraceFormatError
from precache.traces.model import Request, Session
from precache.traces.paths import ASSET_EXTENSIONS, is_asset, is_page, normalize_path
from precache.traces.reader import RequestReader, read_requests
from precache.traces.report import ReadReport
from precache.traces.sessionize import Sessionizer, SessionizerStats
from precache.traces.sessions import iter_sessions, read_sessions
from precache.traces.synthetic import Site, SyntheticWorkload
from precache.traces.textio import open_text

__all__ = [
    "ASSET_EXTENSIONS",
    "FORMATS",
    "REQUEST_FORMATS",
    "SESSION_FORMATS",
    "ReadReport",
    "Request",
    "RequestReader",
    "Session",
    "Sessionizer",
    "SessionizerStats",
    "Site",
    "SyntheticWorkload",
    "TraceFormatError",
    "detect_format",
    "is_asset",
    "is_page",
    "iter_sessions",
    "normalize_path",
    "open_text",
    "read_requests",
    "read_sessions",
    "synthetic",
]
