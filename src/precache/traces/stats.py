"""Summary statistics of a trace in one streaming pass: what ``precache trace-stats`` prints.

A quick look at a trace before training answers most "why is the hit rate so low" questions: how many
requests are pages vs assets, how many lines were skipped, how long the sessions are, how concentrated
the popular pages are.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from precache.defaults import SESSION_GAP_SECONDS
from precache.traces.detect import SESSION_FORMATS
from precache.traces.model import Request, Session
from precache.traces.options import ReadOptions
from precache.traces.reader import RequestReader, merge_options, resolve_format
from precache.traces.report import ReadReport
from precache.traces.sessionize import Sessionizer
from precache.traces.sessions import iter_sessions
from precache.traces.synthetic import SyntheticWorkload

SYNTHETIC_PREFIX = "synthetic:"


@dataclass(slots=True)
class TraceStats:
    """Counts of one trace. ``requests``/``assets`` are ``None`` for session files (they have no log)."""

    source: str
    format: str
    requests: int | None
    clients: int
    sessions: int
    page_views: int
    distinct_pages: int
    assets: int | None
    ignored: int | None
    malformed: int
    malformed_line_numbers: list[int]
    lines: int
    first_time: float | None
    last_time: float | None
    mean_session_pages: float
    top_pages: list[tuple[str, int]] = field(default_factory=list)
    out_of_order: int = 0
    bots: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def span_seconds(self) -> float | None:
        if self.first_time is None or self.last_time is None:
            return None
        return self.last_time - self.first_time

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["span_seconds"] = self.span_seconds
        data["top_pages"] = [{"page": page, "count": count} for page, count in self.top_pages]
        return data


def parse_synthetic(source: str) -> int | None:
    """``N`` from ``synthetic:N`` (accepts ``10k``/``1M`` suffixes and ``_``), else ``None``."""
    if not source.startswith(SYNTHETIC_PREFIX):
        return None
    text = source[len(SYNTHETIC_PREFIX) :].strip().lower().replace("_", "")
    scale = 1
    if text.endswith("k"):
        scale, text = 1_000, text[:-1]
    elif text.endswith("m"):
        scale, text = 1_000_000, text[:-1]
    if not text.isdigit() or int(text) * scale <= 0:
        raise ValueError(f"bad synthetic source {source!r}: expected synthetic:N with N > 0 (e.g. synthetic:100k)")
    return int(text) * scale


def trace_stats(source: str | os.PathLike[str], format: str = "auto", *, gap_seconds: float = SESSION_GAP_SECONDS,
                top: int = 10, seed: int = 0, options: ReadOptions | None = None) -> TraceStats:
    """Statistics of a trace file, or of the synthetic workload when ``source`` is ``synthetic:N``.

    ``options`` says how to read a log (:class:`ReadOptions`); an explicit ``format`` overrides its own.
    """
    text = os.fspath(source)
    n_synthetic = parse_synthetic(text)
    if n_synthetic is not None:
        workload = SyntheticWorkload(n_synthetic, seed=seed)
        return _request_stats(text, "synthetic", workload.requests(), ReadReport(), gap_seconds, top)
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"no such trace file: {path}")
    options = merge_options(format, False, options)
    name, _ = resolve_format(path, options.format, options)
    if name not in SESSION_FORMATS:
        reader = RequestReader(path, options=options)
        return _request_stats(text, reader.report.format, reader, reader.report, gap_seconds, top, reader=reader)
    report = ReadReport()
    return _session_stats(text, name, iter_sessions(path, name, report=report), report, top)


def _request_stats(source: str, name: str, requests: Iterable[Request], report: ReadReport,
                   gap_seconds: float, top: int, reader: RequestReader | None = None) -> TraceStats:
    clients: set[str] = set()
    bounds = [float("inf"), float("-inf")]
    counted = [0]

    def observe() -> Iterator[Request]:
        for request in requests:
            counted[0] += 1
            clients.add(request.client)
            moment = request.time
            if moment < bounds[0]:
                bounds[0] = moment
            if moment > bounds[1]:
                bounds[1] = moment
            yield request

    sessionizer = Sessionizer(gap_seconds=gap_seconds)
    pages: Counter[str] = Counter()
    sessions = 0
    for session in sessionizer.sessionize(observe()):
        sessions += 1
        pages.update(session.pages)
    if reader is not None:
        report = reader.report
    stats = sessionizer.stats
    return TraceStats(
        source=source, format=name, requests=counted[0], clients=len(clients), sessions=sessions,
        page_views=stats.pages, distinct_pages=len(pages), assets=stats.assets, ignored=stats.ignored,
        malformed=report.malformed, malformed_line_numbers=list(report.malformed_line_numbers),
        lines=report.lines if reader is not None else counted[0],
        first_time=bounds[0] if counted[0] else None, last_time=bounds[1] if counted[0] else None,
        mean_session_pages=stats.pages / sessions if sessions else 0.0, top_pages=pages.most_common(top),
        out_of_order=stats.out_of_order, bots=report.bots, notes=list(report.notes),
    )


def _session_stats(source: str, name: str, sessions: Iterable[Session], report: ReadReport,
                   top: int) -> TraceStats:
    pages: Counter[str] = Counter()
    clients: set[str] = set()
    count = 0
    first = float("inf")
    last = float("-inf")
    for session in sessions:
        count += 1
        pages.update(session.pages)
        clients.add(session.client)
        if session.times:
            first = min(first, session.times[0])
            last = max(last, session.times[-1])
    views = sum(pages.values())
    return TraceStats(
        source=source, format=name, requests=None, clients=len(clients), sessions=count, page_views=views,
        distinct_pages=len(pages), assets=None, ignored=None, malformed=report.malformed,
        malformed_line_numbers=list(report.malformed_line_numbers), lines=report.lines,
        first_time=first if last >= first else None, last_time=last if last >= first else None,
        mean_session_pages=views / count if count else 0.0, top_pages=pages.most_common(top),
    )
