"""Collect stage: trace files (through :mod:`precache.traces`) and collected event files, in one form.

Event files are what :mod:`precache.training.collector` drains from the access-event Redis Stream: one
JSON object per line with the stream entry id, the time, the session, the cache key and the page
(``context.currentPath``). The page predictor learns from the page, never the cache key (one page view
makes many cache gets); the cache optimizer learns from the keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from precache.defaults import CACHE_OPTIMIZER, SESSION_GAP_SECONDS
from precache.traces.model import Request, Session
from precache.training.request import TraceSource, TrainRequest

EVENT_SUFFIX = ".jsonl"


@dataclass(slots=True)
class Collected:
    """The data of one run, plus where it came from and what span of time it covers."""

    sessions: list[Session] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def span(self) -> dict[str, Any]:
        starts = [s.start for s in self.sessions]
        ends = [s.times[-1] if s.times else s.start for s in self.sessions]
        times = [r.time for r in self.requests]
        return {
            "sources": self.sources,
            "sessions": len(self.sessions),
            "requests": len(self.requests),
            "start": min(starts + times, default=None),
            "end": max(ends + times, default=None),
        }


def read_event_files(directory: str | Path) -> Iterator[dict[str, Any]]:
    """Every collected event once (a collector that crashed after writing and before acking wrote some
    twice: duplicates are dropped by stream entry id), in file order."""
    seen: set[str] = set()
    for path in sorted(Path(directory).glob(f"*{EVENT_SUFFIX}")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of a crashed writer
                if not isinstance(event, dict) or event.get("id") in seen:
                    continue
                seen.add(str(event.get("id")))
                yield event


def sessions_from_events(events: list[dict[str, Any]], gap_seconds: float = SESSION_GAP_SECONDS) -> list[Session]:
    """Page sessions: by session id and time, pages from ``context.currentPath``, repeats of the same page
    in a row collapsed (several gets of one page view), split where the idle gap exceeds ``gap_seconds``."""
    by_session: dict[str, list[tuple[float, str]]] = {}
    for event in events:
        page, session = event.get("page"), event.get("session")
        if page and session:
            by_session.setdefault(str(session), []).append((float(event["time"]), str(page)))
    sessions: list[Session] = []
    for sid, views in by_session.items():
        views.sort(key=lambda view: view[0])
        current: Session | None = None
        for t, page in views:
            if current is None or t - current.times[-1] > gap_seconds:
                current = Session(f"{sid}#{len(sessions)}", sid, t)
                sessions.append(current)
            if current.pages and current.pages[-1] == page:
                current.times[-1] = t
                continue
            current.pages.append(page)
            current.times.append(t)
    sessions.sort(key=lambda s: s.start)
    return sessions


def requests_from_events(events: list[dict[str, Any]]) -> list[Request]:
    """Cache-key requests for the optimizer (objects are keys; sizes as the cache saw them)."""
    requests = [Request(float(e["time"]), str(e.get("session") or ""), str(e["key"]), size=int(e.get("size") or 0))
                for e in events if e.get("key")]
    requests.sort(key=lambda r: r.time)
    return requests


def _collect_trace(source: TraceSource, want_requests: bool, out: Collected) -> None:
    from precache.traces import SESSION_FORMATS, detect_format, read_requests, read_sessions
    from precache.traces.report import ReadReport

    path = Path(source.path)
    if not path.is_file():
        raise ValueError(f"trace {path} does not exist")
    options = source.read_options()
    out.sources.append(str(path))
    report = ReadReport()
    out.sessions.extend(read_sessions(path, gap_seconds=source.gap_seconds, keep_query=source.keep_query,
                                      options=options, report=report))
    out.notes.extend(f"{path.name}: {note}" for note in report.notes)
    if report.malformed:
        out.notes.append(f"{path.name}: skipped {report.malformed:,} malformed line(s)")
    if not want_requests:
        return
    explicit = options.log_format is not None or options.pattern is not None
    fmt = options.format if options.format != "auto" or explicit else detect_format(path)
    if fmt in SESSION_FORMATS:
        out.notes.append(f"{path.name}: a session file has no requests; the cache optimizer cannot learn from it")
        return
    out.requests.extend(read_requests(path, options=options))


def collect(request: TrainRequest) -> Collected:
    """Read every source of ``request``; sessions always, requests when the cache optimizer trains."""
    want_requests = CACHE_OPTIMIZER in request.names
    out = Collected()
    for source in request.traces:
        _collect_trace(source, want_requests, out)
    if request.events_dir:
        events = list(read_event_files(request.events_dir))
        out.sources.append(str(request.events_dir))
        gap = request.traces[0].gap_seconds if request.traces else SESSION_GAP_SECONDS
        out.sessions.extend(sessions_from_events(events, gap))
        if want_requests:
            out.requests.extend(requests_from_events(events))
    out.sessions.sort(key=lambda s: s.start)
    out.requests.sort(key=lambda r: r.time)
    return out
