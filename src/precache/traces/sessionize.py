"""Turn a time-ordered request stream into sessions: per client, a new session after an idle gap.

Streaming with bounded state: only clients with an open session are held, and sessions idle past the gap
are closed on a periodic sweep, so a month-long log needs memory for the clients active in the last gap,
not for the whole log. Slightly out-of-order records (same second, proxies) are tolerated: a request older
than the client's last one joins the open session.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

from precache.defaults import SESSION_GAP_SECONDS
from precache.traces.model import Request, Session
from precache.traces.paths import ASSET_EXTENSIONS, is_page, normalize_path
from precache.traces.paths import is_asset as path_is_asset

OUT_OF_ORDER_SECONDS = 60.0
"""Proxies and threaded servers reorder requests by a few seconds; more than this is an unsorted log."""


@dataclass(slots=True)
class SessionizerStats:
    """Where every request went: into a session's pages, its assets, or ignored (e.g. 404s, redirects)."""

    requests: int = 0
    pages: int = 0
    assets: int = 0
    ignored: int = 0
    sessions: int = 0
    dropped_sessions: int = 0
    """Sessions with assets but no page: not emitted unless ``keep_empty``."""
    max_open: int = 0
    out_of_order: int = 0
    """Requests more than :data:`OUT_OF_ORDER_SECONDS` older than their client's previous request: the
    log is not in time order and the sessions drawn from it are wrong (sort the log by time)."""


class _Open:
    __slots__ = ("last", "session")

    def __init__(self, session: Session, last: float) -> None:
        self.session = session
        self.last = last


class Sessionizer:
    """Split requests into sessions.

    ``page_filter`` decides what is a page (default :func:`is_page`: 200/304 and not a static asset);
    non-page requests whose path is an asset (``asset_extensions``) go to ``Session.assets``; the rest are
    counted in ``stats.ignored``. Pages are normalised with :func:`normalize_path` (``keep_query``).
    Sessions are yielded when they close (idle gap passed, or end of input), so output order is close
    order; sort by ``start`` if you need start order.
    """

    def __init__(
        self,
        gap_seconds: float = SESSION_GAP_SECONDS,
        keep_query: bool = False,
        page_filter: Callable[[Request], bool] = is_page,
        asset_extensions: Collection[str] = ASSET_EXTENSIONS,
        keep_empty: bool = False,
    ) -> None:
        if not gap_seconds > 0:
            raise ValueError(f"gap_seconds must be positive, got {gap_seconds!r}")
        self.gap_seconds = float(gap_seconds)
        self.keep_query = keep_query
        self.page_filter = page_filter
        self.asset_extensions = frozenset(asset_extensions)
        self.keep_empty = keep_empty
        self.stats = SessionizerStats()

    def __call__(self, requests: Iterable[Request]) -> Iterator[Session]:
        return self.sessionize(requests)

    def sessionize(self, requests: Iterable[Request]) -> Iterator[Session]:
        """Yield sessions from ``requests`` (time-ordered per client; globally ordered keeps memory low)."""
        stats = self.stats = SessionizerStats()
        gap = self.gap_seconds
        keep_query = self.keep_query
        page_filter = self.page_filter
        assets = self.asset_extensions
        open_sessions: dict[str, _Open] = {}
        next_id = 0
        clock = float("-inf")
        next_sweep = float("-inf")
        normalized: dict[str, str] = {}
        for request in requests:
            stats.requests += 1
            moment = request.time
            if moment > clock:
                clock = moment
                if clock >= next_sweep:
                    yield from self._sweep(open_sessions, clock)
                    next_sweep = clock + gap / 4
            client = request.client
            current = open_sessions.get(client)
            if current is not None and moment - current.last > gap:
                del open_sessions[client]
                yield from self._close(current.session)
                current = None
            if page_filter(request):
                page = normalized.get(request.path)
                if page is None:
                    page = normalize_path(request.path, keep_query)
                    if len(normalized) > 100_000:
                        normalized.clear()
                    normalized[request.path] = page
                kind = 0
            elif path_is_asset(request.path, assets):
                kind = 1
                page = ""
            else:
                stats.ignored += 1
                continue
            if current is None:
                session = Session(str(next_id), client, moment)
                next_id += 1
                current = open_sessions[client] = _Open(session, moment)
                if len(open_sessions) > stats.max_open:
                    stats.max_open = len(open_sessions)
            elif moment > current.last:
                current.last = moment
            elif moment < current.last - OUT_OF_ORDER_SECONDS:
                stats.out_of_order += 1
            session = current.session
            if kind == 0:
                session.pages.append(page)
                session.times.append(moment)
                stats.pages += 1
            else:
                session.assets.append(request)
                stats.assets += 1
        for current in list(open_sessions.values()):
            yield from self._close(current.session)
        open_sessions.clear()

    def _sweep(self, open_sessions: dict[str, _Open], clock: float) -> Iterator[Session]:
        limit = clock - self.gap_seconds
        stale = [client for client, current in open_sessions.items() if current.last < limit]
        for client in stale:
            yield from self._close(open_sessions.pop(client).session)

    def _close(self, session: Session) -> Iterator[Session]:
        if session.pages or self.keep_empty:
            self.stats.sessions += 1
            yield session
        else:
            self.stats.dropped_sessions += 1
