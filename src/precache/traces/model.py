"""The records every trace reader produces and every consumer (sessionizer, models, replay) reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, frozen=True)
class Request:
    """One access-log record.

    ``time`` is epoch seconds (float); ``size`` is the response size in bytes (0 when the log says ``-``);
    ``path`` is the raw request target, query string included (normalisation happens in the sessionizer).
    ``referrer`` and ``agent`` (the ``Referer`` and ``User-Agent`` headers) are kept when the log has them,
    else ``None``; a log's ``-`` placeholder reads as ``None`` too.
    """

    time: float
    client: str
    path: str
    method: str = "GET"
    status: int = 200
    size: int = 0
    referrer: str | None = None
    agent: str | None = None


@dataclass(slots=True)
class Session:
    """A client's run of page views with no idle gap longer than the session gap.

    ``pages`` are normalised page ids in click order. ``times`` holds one epoch time per page when the
    trace has timestamps, else it is empty (sequence files such as MSNBC carry order only). ``start`` orders
    sessions for the time split: the first request's time, or the line number for sequence files.
    ``assets`` are the non-page requests of the session (images, css ...), kept for caching work.
    """

    session_id: str
    client: str
    start: float
    pages: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    assets: list[Request] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pages)
