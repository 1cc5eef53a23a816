"""Labels for the cache optimizer, from the trace's own future.

* ``should_cache``: the object is requested again within ``horizon`` seconds.
* ``priority``: log1p(seconds to the next access), capped (never re-accessed → the cap).
* ``ttl``: log1p(seconds until the object's content next changes), capped (censored at the cap).
* ``invalidated``: the content changed between the previous access and this one (the cached copy
  would be stale after that age).

Change signal, one of:
* ``"synthetic-updates"``: the workload's explicit update events (``SyntheticWorkload.updates()``);
* ``"size-change"``: for real logs, a URL's successful (200) responses changing size, where responses
  much smaller than the URL's typical size so far (``< abort_fraction`` of its most frequent full size)
  are treated as aborted transfers and ignored;
* ``"none"``: no signal (every version is 0).
"""

from __future__ import annotations

import bisect
import math
import random
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from precache.models.optimizer.features import N_FEATURES, FeatureTracker
from precache.traces.model import Request

CACHEABLE_STATUS = frozenset({200, 203, 206, 304})


@dataclass(slots=True)
class CacheTrace:
    """A request trace as the optimizer and the replay see it."""

    times: npt.NDArray[np.float64]
    keys: list[str]
    sizes: npt.NDArray[np.int64]  # one canonical size per object (its largest successful response)
    clients: list[str]
    versions: npt.NDArray[np.int64]  # content version of the object as of each request
    change_times: dict[str, list[float]] = field(default_factory=dict)  # per key, time-ordered
    change_signal: str = "none"

    def __len__(self) -> int:
        return len(self.keys)

    def object_ids(self) -> npt.NDArray[np.int64]:
        ids: dict[str, int] = {}
        return np.fromiter((ids.setdefault(k, len(ids) + 1) for k in self.keys), dtype=np.int64,
                           count=len(self.keys))


def trace_from_requests(requests: Iterable[Request], updates: Iterable[tuple[float, str]] | None = None,
                        abort_fraction: float = 0.5, methods: frozenset[str] = frozenset({"GET", "HEAD"}),
                        ) -> CacheTrace:
    """Keep cacheable requests (GET/HEAD with status 200/203/206/304), give each object one size.

    The size of an object is the largest size of its successful responses (1 when it never had one),
    so aborted transfers do not shrink it and every simulator sees the same object sizes.
    With ``updates`` the change signal is the synthetic update events, otherwise the size-change rule.
    """
    times: list[float] = []
    keys: list[str] = []
    clients: list[str] = []
    raw_sizes: list[int] = []
    statuses: list[int] = []
    for r in requests:
        if r.method not in methods or r.status not in CACHEABLE_STATUS:
            continue
        times.append(r.time)
        keys.append(r.path)
        clients.append(r.client)
        raw_sizes.append(r.size)
        statuses.append(r.status)
    n = len(keys)
    max_size: dict[str, int] = {}
    for k, s in zip(keys, raw_sizes, strict=True):
        if s > max_size.get(k, 0):
            max_size[k] = s
    sizes = np.fromiter((max(max_size.get(k, 0), 1) for k in keys), dtype=np.int64, count=n)
    versions = np.zeros(n, dtype=np.int64)
    change_times: dict[str, list[float]] = {}
    if updates is not None:
        signal = "synthetic-updates"
        for t, path in updates:
            change_times.setdefault(path, []).append(t)
        for i, (k, t) in enumerate(zip(keys, times, strict=True)):
            ct = change_times.get(k)
            if ct:
                versions[i] = bisect.bisect_right(ct, t)
    else:
        signal = "size-change"
        change_times = _size_changes(keys, raw_sizes, statuses, times, versions, abort_fraction)
    return CacheTrace(times=np.asarray(times, dtype=np.float64), keys=keys, sizes=sizes, clients=clients,
                      versions=versions, change_times=change_times, change_signal=signal)


def _size_changes(keys: list[str], raw_sizes: list[int], statuses: list[int], times: list[float],
                  versions: npt.NDArray[np.int64], abort_fraction: float = 0.5) -> dict[str, list[float]]:
    """The size-change rule: a full transfer (status 200, at least ``abort_fraction`` of the object's
    most common full size, so an aborted transfer is not a version) with another size than the key's
    previous full transfer is a new version. Fills ``versions`` (as of each request); returns per key the
    time-ordered change times."""
    counts: dict[str, Counter[int]] = {}
    last_full: dict[str, int] = {}
    version: dict[str, int] = {}
    change_times: dict[str, list[float]] = {}
    for i, (k, s, st) in enumerate(zip(keys, raw_sizes, statuses, strict=True)):
        if st == 200 and s > 0:
            c = counts.setdefault(k, Counter())
            typical = c.most_common(1)[0][0] if c else s
            if s >= abort_fraction * typical:  # a full transfer
                c[s] += 1
                prev = last_full.get(k)
                if prev is not None and prev != s:
                    version[k] = version.get(k, 0) + 1
                    change_times.setdefault(k, []).append(times[i])
                last_full[k] = s
        versions[i] = version.get(k, 0)
    return change_times


def content_changes(requests: Iterable[Request], key: Callable[[str], str] = lambda p: p,
                    methods: frozenset[str] = frozenset({"GET", "HEAD"})) -> list[tuple[float, str]]:
    """The content changes a request log shows (the size-change rule of :func:`trace_from_requests`),
    time-ordered ``(time, key(path))``: what the replay uses when a trace has no explicit updates."""
    reqs = sorted((r for r in requests if r.method in methods and r.status in CACHEABLE_STATUS),
                  key=lambda r: r.time)
    keys = [r.path for r in reqs]
    versions = np.zeros(len(reqs), dtype=np.int64)
    changes = _size_changes(keys, [r.size for r in reqs], [r.status for r in reqs], [r.time for r in reqs],
                            versions)
    return sorted((t, key(path)) for path, ts in changes.items() for t in ts)


def next_access_index(keys: list[str]) -> npt.NDArray[np.int64]:
    """For each request, the index of the same key's next request (-1 when none)."""
    nxt = np.full(len(keys), -1, dtype=np.int64)
    last: dict[str, int] = {}
    for i in range(len(keys) - 1, -1, -1):
        k = keys[i]
        nxt[i] = last.get(k, -1)
        last[k] = i
    return nxt


def previous_access_index(keys: list[str]) -> npt.NDArray[np.int64]:
    prv = np.full(len(keys), -1, dtype=np.int64)
    last: dict[str, int] = {}
    for i, k in enumerate(keys):
        prv[i] = last.get(k, -1)
        last[k] = i
    return prv


@dataclass(slots=True)
class Dataset:
    """Training/evaluation rows. ``access`` rows: right after an access; ``delayed`` rows: some time
    after an access with no access since (what an eviction sees); ``inval`` rows: just before a
    re-access, labelled by whether the content changed since the previous access."""

    X_access: npt.NDArray[np.float32]
    should_cache: npt.NDArray[np.int8]
    priority_access: npt.NDArray[np.float32]  # log1p seconds to next access (capped)
    ttl: npt.NDArray[np.float32]  # log1p seconds to next change (capped)
    X_delayed: npt.NDArray[np.float32]
    priority_delayed: npt.NDArray[np.float32]
    X_inval: npt.NDArray[np.float32]
    invalidated: npt.NDArray[np.int8]
    horizon: float
    cap: float
    change_signal: str
    stream_counts: bool = True  # the rows carry the distinct-objects count (FeatureTracker's stream_counts)

    @property
    def X_priority(self) -> npt.NDArray[np.float32]:
        return np.concatenate([self.X_access, self.X_delayed])

    @property
    def priority(self) -> npt.NDArray[np.float32]:
        return np.concatenate([self.priority_access, self.priority_delayed])


def _replay_history(trace: CacheTrace, end: int, tr: FeatureTracker) -> dict[str, int]:
    """Feed requests ``0..end-1`` to the tracker (history only, no rows); returns each key's last version."""
    times = trace.times
    last_version: dict[str, int] = {}
    for i in range(end):
        k = trace.keys[i]
        v = int(trace.versions[i])
        if k in last_version and last_version[k] != v:
            tr.observe_update(k, float(times[i]))
        last_version[k] = v
        tr.observe(k, float(times[i]), int(trace.sizes[i]), trace.clients[i])
    return last_version


def _time_to_change(changes: Mapping[str, Sequence[float]], pointers: dict[str, int], key: str, t: float,
                    t_end: float) -> float:
    """Seconds from ``t`` to the key's next content change within the slice (inf: none known by ``t_end``).
    ``pointers`` keeps each key's position in its change list (times only move forward)."""
    ct = changes.get(key)
    if not ct:
        return math.inf
    p = pointers.get(key, 0)
    while p < len(ct) and ct[p] <= t:
        p += 1
    pointers[key] = p
    return ct[p] - t if p < len(ct) and ct[p] <= t_end else math.inf


def _rows_view(rows: array[float]) -> npt.NDArray[np.float32]:
    # a view on the array's buffer (which it keeps alive), not a copy: at 1M requests the rows are
    # the replay's largest allocation, and a copy doubled it
    return np.frombuffer(rows, dtype=np.float32).reshape(-1, N_FEATURES)


def _labels_view(values: array[int] | array[float], dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.frombuffer(values, dtype=dtype)


def build_dataset(trace: CacheTrace, start: int, end: int, *, horizon: float = 3600.0,
                  cap: float | None = None, sample_rate: float = 1.0, delayed_rate: float = 1.0,
                  seed: int = 0, tracker: FeatureTracker | None = None) -> Dataset:
    """Rows for requests ``start..end-1``; the tracker first replays ``0..start-1`` (history only).

    Labels only look at the trace up to ``end`` (a training slice never peeks into the test slice):
    next accesses and content changes after the slice's last request are unknown (a change after it is
    censored like "no change", at the cap); rows closer than ``horizon`` to the slice's end are dropped,
    since their label is unknown. Features at a row read only what happened up to its time.
    """
    rng = random.Random(seed)
    cap = cap if cap is not None else 4.0 * horizon
    keys = trace.keys[:end]
    times = trace.times
    nxt = next_access_index(keys)
    t_end = float(times[end - 1]) if end > 0 else 0.0
    # the rows keep the distinct-objects count: dropping it (stream_counts=False) was tried and not adopted
    # (features.py, docs/policy.md)
    tr = tracker if tracker is not None else FeatureTracker()
    last_version = _replay_history(trace, start, tr)
    # pointers into each key's change list for the ttl label
    changes = trace.change_times
    change_ptr: dict[str, int] = {}

    # rows go straight into float32 arrays (4 bytes a value, as the model reads them), not lists of
    # Python floats: a 500k-request slice would otherwise hold ~1 GB of row lists at once
    # the labels too: array('f') stores the same float32 values np.asarray(list, float32) made
    xa = array("f")
    ya = array("b")
    pa = array("f")
    tt = array("f")
    xd = array("f")
    pd = array("f")
    xi = array("f")
    yi = array("b")
    log_cap = math.log1p(cap)
    for i in range(start, end):
        k = keys[i]
        t = float(times[i])
        v = int(trace.versions[i])
        st = tr.get(k)
        if st is not None:
            # invalidation row: before the access, age = time since the previous access
            prev_v = last_version.get(k, v)
            if rng.random() < sample_rate:
                xi.extend(tr.row_list(st, t))  # before the change is known: no leak
                yi.append(int(v != prev_v))
            if v != prev_v:
                tr.observe_update(k, t)  # the change becomes known at this access
        last_version[k] = v
        st = tr.observe(k, t, int(trace.sizes[i]), trace.clients[i])
        if t > t_end - horizon:
            continue
        j = int(nxt[i])
        gap = float(times[j]) - t if j >= 0 else math.inf
        if rng.random() < sample_rate:
            xa.extend(tr.row_list(st, t))
            ya.append(int(gap <= horizon))
            pa.append(math.log1p(gap) if gap < cap else log_cap)
            dt = _time_to_change(changes, change_ptr, k, t, t_end)
            tt.append(math.log1p(dt) if dt < cap else log_cap)
        if rng.random() < delayed_rate:
            u = math.exp(rng.uniform(0.0, math.log(2.0 * horizon)))
            ts = t + u
            if ts < t + gap and ts <= t_end - horizon:
                xd.extend(tr.row_list(st, ts))
                rest = gap - u
                pd.append(math.log1p(rest) if rest < cap else log_cap)
    arr, labels = _rows_view, _labels_view
    return Dataset(
        X_access=arr(xa), should_cache=labels(ya, np.int8), priority_access=labels(pa, np.float32),
        ttl=labels(tt, np.float32), X_delayed=arr(xd), priority_delayed=labels(pd, np.float32),
        X_inval=arr(xi), invalidated=labels(yi, np.int8), horizon=horizon, cap=cap,
        change_signal=trace.change_signal, stream_counts=tr.stream_counts,
    )

