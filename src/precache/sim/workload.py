"""Turn a request trace into what the replay needs: training sessions and a time-ordered event list.

The split is by time: requests before the ``train_fraction`` quantile train the predictor (sessionized
with the traces area's :class:`Sessionizer`; the last sessions of that part are the validation slice),
the rest is replayed. Just before the replayed part, a ``warmup`` slice is replayed *unmeasured* so every
configuration is judged on a warm cache rather than on compulsory misses.

Every request (pages and assets) is one event whose cache key is its normalised path. Sessions in the
replay are assigned online, exactly like a server would: per client, a new session after an idle gap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from precache.defaults import SESSION_GAP_SECONDS
from precache.traces.model import Request, Session
from precache.traces.paths import is_page, normalize_path
from precache.traces.sessionize import Sessionizer


@dataclass(slots=True)
class Events:
    """Parallel lists (cheaper than one object per request at 1M requests)."""

    times: list[float] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    pages: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)


@dataclass(slots=True)
class PreparedTrace:
    name: str
    train: list[Session]
    validation: list[Session]
    events: Events
    warmup: int
    """The first ``warmup`` events are replayed but not measured."""
    sizes: dict[str, int]
    updates: list[tuple[float, str]] = field(default_factory=list)

    @property
    def measured(self) -> int:
        return len(self.events) - self.warmup

    @property
    def page_sizes(self) -> list[int]:
        ev = self.events
        return [ev.sizes[i] for i in range(self.warmup, len(ev)) if ev.pages[i]]

    @property
    def duration(self) -> float:
        ev = self.events
        return ev.times[-1] - ev.times[self.warmup] if self.measured > 1 else 0.0


def _typical_size(requests: list[Request]) -> dict[str, int]:
    """Per key, the largest size seen (304s and errors log 0 bytes; the content still has a size)."""
    sizes: dict[str, int] = {}
    for r in requests:
        key = normalize_path(r.path)
        if r.size > sizes.get(key, 0):
            sizes[key] = r.size
    return sizes


def prepare(
    requests: Iterable[Request],
    name: str = "trace",
    train_fraction: float = 0.5,
    warmup_fraction: float = 0.1,
    gap_seconds: float = SESSION_GAP_SECONDS,
    updates: Iterable[tuple[float, str]] = (),
    max_requests: int | None = None,
) -> PreparedTrace:
    """Split ``requests`` (time-ordered) into training sessions and replay events."""
    if not 0 < train_fraction < 1 or not 0 <= warmup_fraction < train_fraction:
        raise ValueError("need 0 <= warmup_fraction < train_fraction < 1")
    reqs = [r for r in requests if r.method in ("GET", "HEAD")]
    if max_requests is not None:
        reqs = reqs[:max_requests]
    reqs.sort(key=lambda r: r.time)
    if len(reqs) < 20:
        raise ValueError(f"trace {name!r} has only {len(reqs)} GET requests; need at least 20")
    n_train = int(len(reqs) * train_fraction)
    n_warm = int(len(reqs) * warmup_fraction)
    train_requests = reqs[:n_train]
    sessions = list(Sessionizer(gap_seconds=gap_seconds).sessionize(train_requests))
    sessions.sort(key=lambda s: s.start)
    n_val = len(sessions) // 10 if len(sessions) >= 20 else 0
    train, validation = sessions[: len(sessions) - n_val], sessions[len(sessions) - n_val :]
    sizes = _typical_size(reqs)
    replay = reqs[n_train - n_warm :]
    events = Events()
    last_seen: dict[str, tuple[str, float]] = {}
    counter = 0
    for r in replay:
        key = normalize_path(r.path)
        current = last_seen.get(r.client)
        if current is None or r.time - current[1] > gap_seconds:
            counter += 1
            sid = f"{r.client}#{counter}"
        else:
            sid = current[0]
        last_seen[r.client] = (sid, r.time)
        events.times.append(r.time)
        events.keys.append(key)
        events.sizes.append(sizes.get(key, r.size))
        events.sessions.append(sid)
        events.pages.append(is_page(r))
    ups = sorted((t, normalize_path(p)) for t, p in updates if t >= events.times[0] - 1e-9)
    return PreparedTrace(name, train, validation, events, n_warm, sizes, ups)
