"""Online prediction accuracy: every served prediction scored against the page visited next.

Why per session and bounded: the service predicts for a session, and the truth arrives with that
session's next page view. One pending prediction per session is kept (a newer prediction for the same
session replaces the older, which is counted as ``superseded``); it expires when the session would
have ended (the session gap) and is then counted as ``expired``, not as a miss. At most
``max_sessions`` predictions wait at once: past that the oldest is dropped and counted as ``evicted``,
so memory is bounded whatever the number of sessions.

Counts are cumulative and per model version (versions beyond ``max_versions`` are pooled as ``other``,
keeping label cardinality low); rolling windows are derived from them by the monitor's sampler.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from precache.defaults import SESSION_GAP_SECONDS
from precache.scoring import page_rank

OTHER_VERSION = "other"


@dataclass(slots=True)
class VersionCounts:
    scored: int = 0
    hit1: int = 0
    hit5: int = 0


class OnlineAccuracyTracker:
    """Scores served predictions when the session's next page arrives (HR@1 and HR@5)."""

    def __init__(self, session_gap: float = SESSION_GAP_SECONDS, max_sessions: int = 100_000,
                 max_versions: int = 8) -> None:
        if session_gap <= 0 or max_sessions <= 0 or max_versions <= 0:
            raise ValueError("OnlineAccuracyTracker needs a positive session gap, session and version bound")
        self.session_gap = float(session_gap)
        self.max_sessions = int(max_sessions)
        self.max_versions = int(max_versions)
        # session -> (top-5 pages, version, expires_at); insertion order = age, oldest first.
        self._pending: OrderedDict[str, tuple[tuple[str, ...], str, float]] = OrderedDict()
        self.by_version: dict[str, VersionCounts] = {}
        self.superseded = 0
        self.expired = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._pending)

    def _version(self, version: str) -> str:
        if version in self.by_version or len(self.by_version) < self.max_versions - 1:
            return version
        return OTHER_VERSION

    def on_prediction(self, session_id: str, pages: Sequence[str], version: str, now: float) -> None:
        """A prediction was served for ``session_id`` (best first); only the top 5 matter."""
        if session_id in self._pending:
            self.superseded += 1
            del self._pending[session_id]
        self._pending[session_id] = (tuple(pages[:5]), self._version(version), now + self.session_gap)
        self._expire(now)
        while len(self._pending) > self.max_sessions:
            self._pending.popitem(last=False)
            self.evicted += 1

    def on_page(self, session_id: str, page: str, now: float) -> bool | None:
        """The session visited ``page``: score its pending prediction. Returns hit@5, or None if none waited."""
        pending = self._pending.pop(session_id, None)
        if pending is None:
            return None
        top, version, expires_at = pending
        if now > expires_at:
            self.expired += 1
            return None
        counts = self.by_version.get(version)
        if counts is None:
            counts = self.by_version[version] = VersionCounts()
        counts.scored += 1
        rank = page_rank(top, page, 5)
        counts.hit5 += rank > 0
        counts.hit1 += rank == 1
        return rank > 0

    def _expire(self, now: float) -> None:
        """Drop expired predictions from the old end (amortised O(1): each is dropped once)."""
        while self._pending:
            session_id, (_, _, expires_at) = next(iter(self._pending.items()))
            if expires_at >= now:
                return
            del self._pending[session_id]
            self.expired += 1

    def totals(self) -> VersionCounts:
        out = VersionCounts()
        for counts in self.by_version.values():
            out.scored += counts.scored
            out.hit1 += counts.hit1
            out.hit5 += counts.hit5
        return out
