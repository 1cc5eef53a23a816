"""Online per-object feature tracker for the cache optimizer (O(1) amortised per request).

The tracker keeps a small state per object (last accesses, decayed counters, sizes, updates) and
turns it into a fixed-length float32 vector at any time ``now``. The same code builds the training
rows (``labels.py``) and the runtime rows (``policy.py``), so the two never drift apart.

Features (``FEATURE_NAMES``, 50 of them):
size and log size, content type (from the extension), path depth and two hashed segment ids,
time since last access, the last ``N_GAPS`` inter-arrival gaps (log seconds, -1 when missing), their
mean/min/max, exponentially decayed counters at four half-lives, access count, age since first seen,
distinct clients, time of day / day of week (sin/cos), the page predictor's probability for the
object (-1 when none), observed origin latency (-1 when none), observed updates, time since the last
update, the object's mean update interval, two global signals (request rate, distinct objects), and
a few ratios (idle time and last gap against the mean gap, clients per access, decayed bytes, overdue).

``stream_counts=False`` writes 0 for the one feature that counts the whole stream, the number of distinct
objects seen so far. That count only grows, so a model trained *once* on an earlier stretch meets values
beyond its training range when it serves (its trees read the present as the end of the training stretch).
Dropping it from the offline optimizer's rows helped on the validation protocol but lost on the full
benchmark's evaluation half at every real trace's 10% point, so the rows keep it (``True``, the default);
the option stays for ``bench/policy_diagnose.py`` and a model's manifest records which rows it was trained
on (issue 26, docs/policy.md).
"""

from __future__ import annotations

import functools
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

N_GAPS = 16
HALF_LIVES = (60.0, 600.0, 3600.0, 86400.0)
MAX_CLIENTS_TRACKED = 64
SEGMENT_BUCKETS = 1024

_TYPE_BY_EXT = {
    "": 0, "html": 1, "htm": 1, "shtml": 1, "php": 1, "asp": 1, "jsp": 1,
    "gif": 2, "jpg": 2, "jpeg": 2, "png": 2, "bmp": 2, "xbm": 2, "ico": 2, "webp": 2, "svg": 2,
    "css": 3, "js": 4, "woff": 5, "woff2": 5, "ttf": 5, "eot": 5,
    "mpg": 6, "mpeg": 6, "mp4": 6, "avi": 6, "mov": 6, "wav": 7, "mp3": 7, "au": 7,
    "txt": 8, "pdf": 8, "ps": 8, "doc": 8, "json": 9, "xml": 9,
    "gz": 10, "zip": 10, "tar": 10, "z": 10, "exe": 10, "pl": 11, "cgi": 11, "bin": 12,
}

FEATURE_NAMES: tuple[str, ...] = (
    "size", "log_size", "content_type", "path_depth", "segment0", "segment1",
    "log_time_since_last",
    *(f"log_gap_{i}" for i in range(N_GAPS)),
    "log_gap_mean", "log_gap_min", "log_gap_max",
    *(f"decay_{int(h)}s" for h in HALF_LIVES),
    "log_count", "log_age", "log_distinct_clients",
    "tod_sin", "tod_cos", "dow_sin", "dow_cos",
    "predictor_prob", "log_origin_latency",
    "log_updates", "log_time_since_update", "log_update_interval",
    "log_global_rate", "log_distinct_objects", "size_rank",
    "since_last_minus_mean_gap", "last_gap_minus_mean_gap", "clients_per_access", "log_bytes_decay_3600s",
    "overdue",
)
N_FEATURES = len(FEATURE_NAMES)


def _log(x: float) -> float:
    return math.log1p(x) if x > 0.0 else 0.0


def _vlog(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Vectorised ``_log``: log1p(x) for x > 0, else 0."""
    return np.log1p(np.maximum(x, 0.0))


_NO_GAPS = [-1.0] * N_GAPS
_NO_DECAY = [0.0] * len(HALF_LIVES)
_SMALL_BATCH = 16
# columns filled from the cached static part (row_list's ``pre`` then ``mid``)
_STATIC_COLS = np.asarray([*range(6), *range(7, 7 + N_GAPS + 3)], dtype=np.intp)
_HALF_LIVES = np.asarray(HALF_LIVES, dtype=np.float64)
_GAP_INDEX = np.arange(N_GAPS)
# _RING_ORDER[p]: ring indices newest first when the next write goes to slot p
_RING_ORDER = np.asarray([[(p - 1 - j) % N_GAPS for j in range(N_GAPS)] for p in range(N_GAPS)], dtype=np.intp)


@functools.lru_cache(maxsize=65536)
def _segment_id(segment: str) -> int:
    # stable across processes (no PYTHONHASHSEED): a small FNV-1a
    h = 2166136261
    for ch in segment.encode("utf-8", "replace"):
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h % SEGMENT_BUCKETS


def static_features(key: str) -> tuple[int, int, int, int]:
    """(content type, path depth, segment0 id, segment1 id) from a path-like key."""
    path = key.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    last = parts[-1] if parts else ""
    ext = last.rsplit(".", 1)[1].lower() if "." in last else ""
    ctype = _TYPE_BY_EXT.get(ext, 13)
    seg0 = _segment_id(parts[0]) if parts else 0
    seg1 = _segment_id(parts[1]) if len(parts) > 1 else 0
    return ctype, len(parts), seg0, seg1


@dataclass(slots=True)
class ObjectState:
    """What the tracker remembers about one object."""

    first_seen: float
    last_access: float
    size: int
    ctype: int
    depth: int
    seg0: int
    seg1: int
    count: int = 0
    # ring of N_GAPS log gaps, newest at gap_pos-1; unused slots hold -1 (log gaps are >= 0)
    # (arrays of doubles, not lists: not tracked by the cyclic GC, which matters with ~1M objects)
    gaps: array[float] = field(default_factory=lambda: array("d", _NO_GAPS))
    gap_pos: int = 0
    gap_n: int = 0  # how many gaps the ring holds (<= N_GAPS)
    decay: array[float] = field(default_factory=lambda: array("d", _NO_DECAY))
    decay_time: float = 0.0
    clients: set[str] | None = None  # created at the first named client
    n_clients: int = 0
    updates: int = 0
    last_update: float = -1.0
    latency: float = -1.0
    predictor_prob: float = -1.0
    cache: tuple[float, ...] | None = None  # row parts that only change when observed (see row_list)


class FeatureTracker:
    """Per-object online statistics; ``observe`` is O(1), ``features`` is O(N_GAPS)."""

    def __init__(self, max_objects: int | None = None, *, stream_counts: bool = True) -> None:
        self.objects: dict[str, ObjectState] = {}
        self.max_objects = max_objects
        self.stream_counts = stream_counts  # False: the distinct-objects count is written as 0 (see above)
        self._rate = 0.0  # decayed global request counter (half-life 60 s)
        self._rate_time = 0.0
        self._size_sum = 0.0
        self._size_n = 0
        self._observations = 0
        self._globals: tuple[float, ...] = ()
        self._globals_key: tuple[float, int, int] = (math.nan, -1, -1)

    def __len__(self) -> int:
        return len(self.objects)

    def get(self, key: str) -> ObjectState | None:
        return self.objects.get(key)

    def observe(self, key: str, now: float, size: int = 0, client: str = "", latency: float | None = None,
                predictor_prob: float | None = None) -> ObjectState:
        """Record one access of ``key`` at ``now`` (seconds)."""
        self._observations += 1
        st = self.objects.get(key)
        if st is None:
            ctype, depth, seg0, seg1 = static_features(key)
            st = ObjectState(first_seen=now, last_access=now, size=size, ctype=ctype, depth=depth,
                             seg0=seg0, seg1=seg1, decay_time=now)
            if self.max_objects is not None and len(self.objects) >= self.max_objects:
                # forget the oldest-inserted object (dicts keep insertion order): amortised O(1)
                self.objects.pop(next(iter(self.objects)))
            self.objects[key] = st
        else:
            st.cache = None
            gap = now - st.last_access
            st.gaps[st.gap_pos] = math.log1p(gap) if gap > 0.0 else 0.0
            st.gap_pos = (st.gap_pos + 1) % N_GAPS
            if st.gap_n < N_GAPS:
                st.gap_n += 1
            st.last_access = now
        dt = now - st.decay_time
        dec = st.decay
        if dt > 0.0:
            for i, h in enumerate(HALF_LIVES):
                dec[i] = dec[i] * 0.5 ** (dt / h) + 1.0
            st.decay_time = now
        else:
            for i in range(len(HALF_LIVES)):
                dec[i] += 1.0
        st.count += 1
        if size > 0:
            st.size = size
            self._size_sum += math.log1p(size)
            self._size_n += 1
        if client and st.n_clients < MAX_CLIENTS_TRACKED:
            seen = st.clients
            if seen is None:
                st.clients = {client}
                st.n_clients = 1
            elif client not in seen:
                seen.add(client)
                st.n_clients += 1
        if latency is not None:
            st.latency = latency if st.latency < 0 else 0.8 * st.latency + 0.2 * latency
        if predictor_prob is not None:
            st.predictor_prob = predictor_prob
        gdt = now - self._rate_time
        if gdt > 0.0:
            self._rate *= 0.5 ** (gdt / 60.0)
            self._rate_time = now
        self._rate += 1.0
        return st

    def observe_update(self, key: str, now: float) -> None:
        """Record that the origin copy of ``key`` changed at ``now`` (known or detected)."""
        st = self.objects.get(key)
        if st is None:
            return
        st.updates += 1
        st.last_update = now
        st.cache = None

    def set_predictor_prob(self, key: str, prob: float) -> None:
        st = self.objects.get(key)
        if st is not None:
            st.predictor_prob = prob
            st.cache = None

    def row(self, st: ObjectState, now: float, out: npt.NDArray[np.float32] | None = None
            ) -> npt.NDArray[np.float32]:
        """The feature vector of one object at time ``now``."""
        v = np.empty(N_FEATURES, dtype=np.float32) if out is None else out
        v[:] = self.row_list(st, now)
        return v

    def row_list(self, st: ObjectState, now: float) -> list[float]:
        """The feature vector as a Python list (cheaper to build many rows, then one np.array).

        The parts that only change when the object is observed are cached on the state (``st.cache``,
        cleared by ``observe``/``observe_update``), the global parts per ``now``; only the
        time-dependent features are computed per call."""
        c = st.cache
        if c is None:
            c = self._static_part(st)
        gmean, gmax, newest, n, log_size, log_count, log_nc, pp, lat, lupd, cpa = c[25:]
        g = self._globals if self._globals_key == (now, self._observations, len(self.objects)) \
            else self._global_part(now)
        dt = now - st.decay_time
        decay = [d * 0.5 ** (dt / h) for d, h in zip(st.decay, HALF_LIVES, strict=True)] if dt > 0.0 else list(st.decay)
        age = now - st.first_seen
        upd_interval = age / st.updates if st.updates else -1.0
        tsu = now - st.last_update if st.last_update >= 0 else -1.0
        x = now - st.last_access
        tsl = math.log1p(x) if x > 0.0 else 0.0
        return [
            *c[:6],
            tsl,
            *c[6:25],
            *decay,
            log_count, math.log1p(age) if age > 0.0 else 0.0, log_nc,
            g[0], g[1], g[2], g[3],
            pp, lat, lupd,
            _log(tsu) if tsu >= 0 else -1.0, _log(upd_interval) if upd_interval >= 0 else -1.0,
            g[4], g[5], log_size - g[6],
            tsl - gmean if n else -1.0, newest - gmean if n else 0.0, cpa,
            math.log1p(st.size * decay[2]), float(n > 0 and tsl > gmax),
        ]

    def _static_part(self, st: ObjectState) -> tuple[float, ...]:
        """A flat tuple of floats (untracked by the GC): the 6 leading columns, the 19 gap columns, then
        gmean, gmax, newest gap, gap count, log size, log count, log clients, predictor prob,
        log latency, log updates, clients per access."""
        gaps = st.gaps
        n = st.gap_n
        p = st.gap_pos
        ordered = (gaps[p:] + gaps[:p])[::-1]  # newest first, then the unused slots (-1)
        if n:
            valid = gaps[:n]  # the ring fills 0..n-1 before it wraps
            gmean = sum(valid) / n
            gmin = min(valid)
            gmax = max(valid)
        else:
            gmean = gmin = gmax = -1.0
        log_size = _log(st.size)
        c = (float(st.size), log_size, float(st.ctype), float(st.depth), float(st.seg0), float(st.seg1),
             *ordered, gmean, gmin, gmax, gmean, gmax, ordered[0], float(n), log_size, _log(st.count),
             _log(st.n_clients), st.predictor_prob, _log(st.latency * 1000.0) if st.latency >= 0 else -1.0,
             _log(st.updates), st.n_clients / st.count)
        st.cache = c
        return c

    def _global_part(self, now: float) -> tuple[float, ...]:
        tod = (now % 86400.0) / 86400.0 * 2.0 * math.pi
        dow = ((now / 86400.0 + 3.0) % 7.0) / 7.0 * 2.0 * math.pi  # 1970-01-01 was a Thursday
        grate_dt = now - self._rate_time
        grate = self._rate * 0.5 ** (grate_dt / 60.0) if grate_dt > 0 else self._rate
        mean_log_size = self._size_sum / self._size_n if self._size_n else 0.0
        g = (math.sin(tod), math.cos(tod), math.sin(dow), math.cos(dow), _log(grate),
             _log(len(self.objects)) if self.stream_counts else 0.0,
             mean_log_size)
        self._globals = g
        self._globals_key = (now, self._observations, len(self.objects))
        return g

    def rows(self, states: Sequence[ObjectState], now: float) -> npt.NDArray[np.float32]:
        """``row_list`` for many objects at once, vectorised (the runtime policy's batch path).

        The parts that only change when an object is observed come from its cache (``st.cache``,
        as in ``row_list``); only the ~20 time-dependent columns are computed, per column in numpy.
        Gives the same float32 rows as ``row_list``."""
        m = len(states)
        if m < _SMALL_BATCH:  # numpy's per-call overhead dominates: per-row Python is cheaper
            return np.asarray([self.row_list(st, now) for st in states], dtype=np.float32).reshape(m, N_FEATURES)
        static = self._static_part
        parts = [st.cache or static(st) for st in states]
        out = np.empty((m, N_FEATURES), dtype=np.float64)
        flat = np.array(parts, dtype=np.float64)
        out[:, _STATIC_COLS] = flat[:, :25]
        cs = flat[:, 25:]
        dyn = np.array([(st.last_access, st.first_seen, st.decay_time, st.updates, st.last_update, st.size, *st.decay)
                        for st in states], dtype=np.float64)
        gmean, gmax, newest, n, log_size = cs[:, 0], cs[:, 1], cs[:, 2], cs[:, 3], cs[:, 4]
        has = n > 0
        tsl = _vlog(now - dyn[:, 0])
        out[:, 6] = tsl
        dt = (now - dyn[:, 2])[:, None]
        dec = dyn[:, 6:]
        decay = np.where(dt > 0.0, dec * np.power(0.5, np.maximum(dt, 0.0) / _HALF_LIVES), dec)
        c = 7 + N_GAPS + 3
        out[:, c:c + len(HALF_LIVES)] = decay
        c += len(HALF_LIVES)
        age = now - dyn[:, 1]
        updates = dyn[:, 3]
        last_update = dyn[:, 4]
        g = self._globals if self._globals_key == (now, self._observations, len(self.objects)) \
            else self._global_part(now)
        tsu = np.where(last_update >= 0, now - last_update, -1.0)
        upd_interval = np.where(updates > 0, age / np.maximum(updates, 1.0), -1.0)
        out[:, c] = cs[:, 5]  # log count
        out[:, c + 1] = _vlog(age)
        out[:, c + 2] = cs[:, 6]  # log distinct clients
        out[:, c + 3:c + 7] = g[0:4]
        out[:, c + 7:c + 10] = cs[:, 7:10]  # predictor prob, log latency, log updates
        out[:, c + 10] = np.where(tsu >= 0, _vlog(tsu), -1.0)
        out[:, c + 11] = np.where(upd_interval >= 0, _vlog(upd_interval), -1.0)
        out[:, c + 12] = g[4]
        out[:, c + 13] = g[5]
        out[:, c + 14] = log_size - g[6]
        out[:, c + 15] = np.where(has, tsl - gmean, -1.0)
        out[:, c + 16] = np.where(has, newest - gmean, 0.0)
        out[:, c + 17] = cs[:, 10]  # clients per access
        out[:, c + 18] = np.log1p(dyn[:, 5] * decay[:, 2])
        out[:, c + 19] = (has & (tsl > gmax)).astype(np.float64)
        return out.astype(np.float32)

    def features(self, key: str, now: float) -> npt.NDArray[np.float32] | None:
        st = self.objects.get(key)
        return None if st is None else self.row(st, now)

    def matrix(self, keys: list[str], now: float) -> npt.NDArray[np.float32]:
        """Rows for many known keys at once (unknown keys give a row of -1)."""
        rows: list[list[float]] = []
        missing = [-1.0] * N_FEATURES
        for k in keys:
            st = self.objects.get(k)
            rows.append(missing if st is None else self.row_list(st, now))
        return np.asarray(rows, dtype=np.float32).reshape(len(keys), N_FEATURES)
