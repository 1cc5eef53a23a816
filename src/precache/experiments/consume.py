"""Per-arm statistics from access events: from the stream (the service), or from a cache's own events.

Why the stream: back ends report their cache accesses to ``POST /api/ml/events`` (and embedded caches can
write the same stream, :mod:`precache.cache.stream`); each entry names its session. The arm of a session
is a hash (:func:`~precache.experiments.assignment.assign`), so reading the stream is enough to attribute
every access to its arm: no route, cache or warmer has to know about experiments.

One process at a time reads (a lease in Redis), under one consumer name of its own consumer group, so a
session's accesses are all seen by the same process and its per-session sums stay whole; a new leader
first takes over the previous one's statistics document and unacknowledged entries. A session is closed
(its origin costs and its requests/hits folded into the per-session statistics the delta method needs)
once it has been idle for the session gap, in event time or in wall time.

:class:`ArmAccounting` is the part both share: it attributes accesses to arms and keeps per-session sums.
An embedded application can feed it its cache's events directly (``ExperimentHub.handle_event``), which
also covers replica-scoped experiments (the events carry no replica id in the stream).

What counts: entries with a session and a tier; ``l1``, ``l2``, ``stale`` are hits, ``origin`` and
``miss`` are not, an ``origin`` entry costs one origin request and its bytes; a page view reported without
a key (the service streams it with the page as key and ``currentPath`` = key) is not a cache access.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from precache.defaults import SESSION_GAP_SECONDS
from precache.experiments.arms import ArmStats
from precache.experiments.model import Experiment
from precache.experiments.outcomes import SessionOutcomes
from precache.experiments.recorder import ExperimentRecorder

GROUP = "precache-experiments"
CONSUMER = "stream"
HITS = frozenset({"l1", "l2", "stale"})
COUNTED = HITS | {"origin", "miss"}


@dataclass(slots=True)
class _Open:
    arms: list[tuple[str, str]]
    requests: int = 0
    hits: int = 0
    origin_requests: int = 0
    origin_bytes: int = 0
    latency_ms: float = 0.0
    last_event: float = 0.0
    last_wall: float = 0.0


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ArmAccounting:
    """Accesses -> per-arm statistics in ``recorder``: per request (hit, latency) and per session (requests,
    hits, origin requests and bytes, folded when the session closes). ``scopes``: which experiments it
    attributes (replica-scoped ones only where the accesses are this replica's own, under the recorder's id)."""

    def __init__(self, recorder: ExperimentRecorder, session_gap: float = SESSION_GAP_SECONDS, max_open: int = 200_000,
                 scopes: tuple[str, ...] = ("session",)) -> None:
        self.recorder = recorder
        self.session_gap = session_gap
        self.max_open = max_open
        self.scopes = scopes
        self.read = 0
        self.skipped = 0
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._latest_event = 0.0
        # HR@5 and preload outcomes, per session (reported by the hub, not read from the stream)
        self.outcomes = SessionOutcomes(recorder.stats, session_gap, max_open)
        recorder.view = self.view  # its readouts count the open sessions too

    def reset(self) -> None:
        self._open.clear()
        self.outcomes.clear()
        self.recorder.arms.clear()

    def applicable(self, experiments: list[Experiment]) -> list[Experiment]:
        return [e for e in experiments if e.status == "running" and e.scope in self.scopes]

    def record_fields(self, fields: dict[str, str], running: list[Experiment], now: float) -> None:
        """One access in the stream's field layout (:func:`precache.cache.stream.event_fields`)."""
        try:
            context = json.loads(fields.get("context") or "null")
            latency = float(fields.get("latency", "0"))
            size = int(float(fields.get("size", "0")))
            when = float(fields.get("time", "0"))
        except ValueError:
            self.skipped += 1
            return
        self.record(fields.get("session", ""), fields.get("tier", ""), fields.get("key", ""), context, latency,
                    size, when, running, now)

    def record(self, session: str, tier: str, key: str, context: Any, latency: float, size: int, when: float,
               running: list[Experiment], now: float) -> None:
        """One access (``latency`` in seconds, ``when`` its event time, ``now`` the wall time)."""
        if not session or tier not in COUNTED or not running:
            self.skipped += 1
            return
        if isinstance(context, dict) and context.get("currentPath") == key:
            self.skipped += 1  # a page view, not a cache access
            return
        latency_ms = latency * 1000.0
        self.read += 1
        hit = tier in HITS
        state = self._open.get(session)
        if state is None:
            state = _Open([])
            for experiment in running:
                arm = self.recorder.arm_for(experiment, session)
                if arm is not None:
                    state.arms.append((experiment.id, arm.name))
            self._open[session] = state
            if len(self._open) > self.max_open:
                self._close(*self._open.popitem(last=False))
        else:
            self._open.move_to_end(session)
        for experiment_id, arm_name in state.arms:
            self.recorder.stats(experiment_id, arm_name).record_request(hit, latency_ms)
        state.requests += 1
        state.hits += hit
        state.latency_ms += latency_ms
        if tier == "origin":
            state.origin_requests += 1
            state.origin_bytes += size
        state.last_event = max(state.last_event, when)
        state.last_wall = now
        self._latest_event = max(self._latest_event, when)

    def _close(self, session: str, state: _Open) -> None:
        for experiment_id, arm_name in state.arms:
            stats: ArmStats = self.recorder.stats(experiment_id, arm_name)
            stats.record_session(state.origin_requests, state.origin_bytes, state.requests, state.hits,
                                 state.latency_ms)

    def close_idle(self, now: float) -> int:
        """Fold every session idle for the session gap (in event time or wall time)."""
        done = [s for s, st in self._open.items()
                if st.last_event < self._latest_event - self.session_gap or st.last_wall < now - self.session_gap]
        for session in done:
            self._close(session, self._open.pop(session))
        return len(done) + self.outcomes.close_idle(now)

    def view(self, experiment_id: str) -> dict[str, ArmStats]:
        """Copies of ``experiment_id``'s per-arm statistics with the sessions still open counted as they are so
        far (so a readout does not wait a session gap), without closing them."""
        per_arm = self.recorder.arms.get(experiment_id, {})
        docs = {arm: ArmStats.from_dict(stats.as_dict()) for arm, stats in per_arm.items()}
        for state in self._open.values():
            for eid, arm in state.arms:
                if eid == experiment_id and arm in docs:
                    docs[arm].record_session(state.origin_requests, state.origin_bytes, state.requests, state.hits,
                                             state.latency_ms)
        self.outcomes.include_open(experiment_id, docs)
        return docs

    async def flush(self) -> None:
        """Write :meth:`view` of every experiment as this recorder's documents."""
        for experiment_id in list(self.recorder.arms):
            await self.recorder.write(experiment_id, self.view(experiment_id))


class StreamArmRecorder:
    """Reads ``stream`` (while holding the lease) into an :class:`ArmAccounting` whose recorder's replica id
    is ``CONSUMER``, so whichever process reads continues the same statistics document."""

    def __init__(self, redis: Any, stream: str, prefix: str, owner: str, session_gap: float = SESSION_GAP_SECONDS,
                 batch: int = 500, lease_ms: int = 15_000, max_open: int = 200_000) -> None:
        self.redis = redis
        self.stream = stream
        self.owner = owner
        self.accounting = ArmAccounting(ExperimentRecorder(redis, replica_id=CONSUMER, prefix=prefix), session_gap,
                                        max_open)
        self.recorder = self.accounting.recorder
        self.lease_key = f"{prefix}:consumer"
        self.batch = batch
        self.lease_ms = lease_ms
        self.leading = False
        self._pending_first = True

    async def _lead(self) -> bool:
        """Take or renew the lease; on taking it, adopt the previous leader's statistics and group."""
        if await self.redis.set(self.lease_key, self.owner, nx=True, px=self.lease_ms):
            await self._take_over()
            return True
        holder = await self.redis.get(self.lease_key)
        if holder is not None and _text(holder) == self.owner:
            await self.redis.pexpire(self.lease_key, self.lease_ms)
            return True
        self.leading = False
        return False

    async def _take_over(self) -> None:
        self.leading, self._pending_first = True, True
        self.accounting.reset()
        await self.recorder.adopt()
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="$", mkstream=True)
        except Exception as exc:  # BUSYGROUP: it exists already
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self, experiments: list[Experiment], now: float | None = None) -> int:
        """Read and record one batch if this process leads; returns the entries handled."""
        now = time.time() if now is None else now
        if not await self._lead():
            return 0
        running = self.accounting.applicable(experiments)
        entries: list[Any] = []
        if self._pending_first:  # first our own unacknowledged entries (a previous leader's), then new ones
            entries = await self._read("0")
            self._pending_first = bool(entries)
        if not entries:
            entries = await self._read(">")
        ids = []
        for entry_id, fields in entries:
            ids.append(entry_id)
            if fields:
                self.accounting.record_fields({_text(k): _text(v) for k, v in fields.items()}, running, now)
        if ids:
            await self.redis.xack(self.stream, GROUP, *ids)
        self.accounting.close_idle(now)
        return len(entries)

    async def _read(self, start: str) -> list[Any]:
        reply = await self.redis.xreadgroup(GROUP, CONSUMER, {self.stream: start}, count=self.batch)
        return [entry for _, items in (reply or []) for entry in items]

    async def flush(self) -> None:
        if self.leading:
            await self.accounting.flush()
