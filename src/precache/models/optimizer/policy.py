"""The learned cache policy: implements :class:`precache.cache.policy.EvictionPolicy`.

* **Admission** from ``should_cache``. Inference is batched, so the decision is *lazy*: a new entry is
  stored, scored with the next batch, and if ``should_cache`` < ``admit_threshold`` it goes to a
  reject queue that ``victim()`` empties first (it is the first thing evicted, before any resident
  the model wants to keep). An entry whose previous scoring (an earlier access) was below the threshold
  is refused outright when ``strict_admission`` is set.
* **Eviction** LRB-style: sample ``sample_size`` residents, predict their time to next access at
  ``now`` in one batch, evict the one predicted farthest in the future; the next ``evict_batch - 1``
  farthest are queued as the following victims (skipped if they were read in between).
* **TTL** from the predicted time to the next content change (the ``ttl`` output, whose features
  include the object's access rate and update history), scaled by ``ttl_scale`` and bounded by
  ``min_ttl``/``max_ttl``. Known once the key has been scored at an earlier access; before that the
  tier's default TTL is kept.
* **Staleness**: entries whose ``invalidation`` probability passes ``invalidation_threshold`` are
  queued for proactive revalidation (``drain_revalidations()``) or evicted (``stale_action="evict"``).

Every hook is O(1) amortised: feature rows are built and the ONNX model runs once per
``batch_size`` accesses or per ``evict_batch`` evictions, never per request.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Literal

import numpy as np

from precache.cache.clock import Clock, SystemClock
from precache.cache.policy import EntryInfo
from precache.models.optimizer.features import FeatureTracker, ObjectState
from precache.models.optimizer.model import OptimizerModel


class _Node:
    __slots__ = ("idx", "key", "p_cache", "p_inval", "pending", "pred_next", "seq", "size", "state")

    def __init__(self, key: str, size: int, idx: int, state: ObjectState) -> None:
        self.key = key
        self.size = size
        self.idx = idx
        self.state = state
        self.seq = 0
        self.pending = False
        self.pred_next = math.inf
        self.p_cache = math.nan
        self.p_inval = 0.0


class LearnedPolicy:
    """A model-driven :class:`~precache.cache.policy.EvictionPolicy` (see the module docstring)."""

    name = "learned"

    def __init__(
        self,
        model: OptimizerModel,
        clock: Clock | None = None,
        *,
        batch_size: int = 64,
        sample_size: int = 64,
        evict_batch: int = 8,
        admission: Literal["should_cache", "none"] = "should_cache",
        admit_threshold: float = 0.5,
        strict_admission: bool = False,
        adaptive_ttl: bool = True,
        ttl_scale: float = 1.0,
        min_ttl: float = 1.0,
        max_ttl: float = 86400.0,
        invalidation_threshold: float = 0.5,
        stale_action: Literal["revalidate", "evict", "none"] = "revalidate",
        max_tracked_objects: int | None = 1_000_000,
        seed: int = 0,
    ) -> None:
        if batch_size < 1 or sample_size < 1 or evict_batch < 1:
            raise ValueError("batch_size, sample_size and evict_batch must be >= 1")
        if not 0.0 < min_ttl <= max_ttl:
            raise ValueError(f"need 0 < min_ttl <= max_ttl, got {min_ttl}, {max_ttl}")
        self.model = model
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.tracker = FeatureTracker(max_objects=max_tracked_objects)
        self.batch_size = batch_size
        self.sample_size = sample_size
        self.evict_batch = min(evict_batch, sample_size)
        self.admission = admission
        self.admit_threshold = admit_threshold
        self.strict_admission = strict_admission
        self.adaptive_ttl = adaptive_ttl
        self.ttl_scale = ttl_scale
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.invalidation_threshold = invalidation_threshold
        self.stale_action = stale_action
        self._rng = random.Random(seed)
        self._nodes: dict[str, _Node] = {}
        self._keys: list[str] = []
        self._pending: list[_Node] = []
        self._reject: deque[tuple[str, int]] = deque()
        self._victims: deque[tuple[str, int]] = deque()
        self._revalidate: deque[str] = deque()
        # per-key memory of the last scoring (for TTL / strict admission of keys not resident now)
        self._last_ttl: dict[str, float] = {}
        self._last_p_cache: dict[str, float] = {}
        self._observed: tuple[str, float] | None = None
        self.inference_calls = 0
        self.rows_scored = 0
        self.rejected = 0

    # -- the EvictionPolicy protocol ----------------------------------------------------------------
    def admit(self, info: EntryInfo) -> bool:
        self._observe_set(info)
        if self.strict_admission and self.admission == "should_cache":
            p = self._last_p_cache.get(info.key)
            if p is not None and p < self.admit_threshold:
                self.rejected += 1
                return False
        return True

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        self._observe_set(info)
        if not self.adaptive_ttl:
            return default_ttl
        change = self._last_ttl.get(info.key)
        if change is None:
            return default_ttl
        return self._ttl_from(change)

    def on_insert(self, info: EntryInfo) -> None:
        key = info.key
        state = self.tracker.get(key)
        if state is None:  # inserted without a set() we saw (e.g. filled from L2)
            state = self.tracker.observe(key, self.clock.now(), info.size)
        node = _Node(key, info.size, len(self._keys), state)
        self._nodes[key] = node
        self._keys.append(key)
        self._enqueue(node)

    def on_hit(self, info: EntryInfo) -> None:
        node = self._nodes.get(info.key)
        self.tracker.observe(info.key, self.clock.now(), info.size)
        if node is not None:
            node.seq += 1
            self._enqueue(node)

    def on_remove(self, key: str) -> None:
        node = self._nodes.pop(key, None)
        if node is not None:
            self._drop_index(node)

    def victim(self) -> str | None:
        for queue in (self._reject, self._victims):
            while queue:
                key, seq = queue.popleft()
                node = self._nodes.get(key)
                if node is not None and node.seq == seq:
                    return self._forget(node)
        if not self._keys:
            return None
        self._score_sample()
        while self._victims:
            key, seq = self._victims.popleft()
            node = self._nodes.get(key)
            if node is not None and node.seq == seq:
                return self._forget(node)
        return None  # pragma: no cover - the sample always yields a live victim

    # -- extras for the cache / warmer ------------------------------------------------------------------
    def record_access(self, key: str, now: float | None = None, size: int = 0, client: str = "",
                      latency: float | None = None, predictor_prob: float | None = None) -> None:
        """Tell the policy about an access it would not otherwise see (an L2 hit, a miss not stored)."""
        self.tracker.observe(key, self.clock.now() if now is None else now, size, client, latency,
                             predictor_prob)

    def record_update(self, key: str, now: float | None = None) -> None:
        """The origin copy of ``key`` changed (an invalidation event or a detected new version)."""
        self.tracker.observe_update(key, self.clock.now() if now is None else now)

    def drain_revalidations(self, limit: int = 100) -> list[str]:
        """Resident keys predicted stale (``invalidation`` >= threshold): revalidate them off the hot path."""
        out: list[str] = []
        while self._revalidate and len(out) < limit:
            key = self._revalidate.popleft()
            if key in self._nodes:
                out.append(key)
        return out

    def flush(self) -> None:
        """Score the accesses queued since the last batch (the hooks call this every ``batch_size``)."""
        if not self._pending:
            return
        batch = self._pending
        self._pending = []
        now = self.clock.now()
        row = self.tracker.row_list
        X = np.asarray([row(n.state, now) for n in batch], dtype=np.float32)
        p = self.model.predict(X)
        self.inference_calls += 1
        self.rows_scored += len(batch)
        nxt = np.expm1(p.priority.astype(np.float64)) + now
        for i, node in enumerate(batch):
            node.pending = False
            pc = float(p.should_cache[i])
            node.p_cache = pc
            node.p_inval = float(p.invalidation[i])
            node.pred_next = float(nxt[i])
            self._last_ttl[node.key] = float(p.ttl[i])
            self._last_p_cache[node.key] = pc
            if self._nodes.get(node.key) is not node:
                continue
            if self.admission == "should_cache" and pc < self.admit_threshold:
                self._reject.append((node.key, node.seq))
            elif self.stale_action != "none" and node.p_inval >= self.invalidation_threshold:
                if self.stale_action == "evict":
                    self._reject.append((node.key, node.seq))
                else:
                    self._revalidate.append(node.key)
        if len(self._last_ttl) > 4 * max(len(self._nodes), 1024):
            self._prune_memory()

    def predicted_ttl(self, key: str) -> float | None:
        change = self._last_ttl.get(key)
        return None if change is None else self._ttl_from(change)

    def __len__(self) -> int:
        return len(self._nodes)

    # -- internals ------------------------------------------------------------------------------------
    def _ttl_from(self, log_change: float) -> float:
        seconds = math.expm1(log_change) * self.ttl_scale
        return min(self.max_ttl, max(self.min_ttl, seconds))

    def _observe_set(self, info: EntryInfo) -> None:
        mark = (info.key, info.inserted_at)
        if self._observed != mark:
            self._observed = mark
            self.tracker.observe(info.key, self.clock.now(), info.size)

    def _enqueue(self, node: _Node) -> None:
        if not node.pending:
            node.pending = True
            self._pending.append(node)
            if len(self._pending) >= self.batch_size:
                self.flush()

    def _score_sample(self) -> None:
        keys = self._keys
        n = len(keys)
        k = min(self.sample_size, n)
        idx = self._rng.sample(range(n), k) if k < n else range(n)
        nodes = [self._nodes[keys[i]] for i in idx]
        now = self.clock.now()
        row = self.tracker.row_list
        X = np.asarray([row(nd.state, now) for nd in nodes], dtype=np.float32)
        p = self.model.predict(X)
        self.inference_calls += 1
        self.rows_scored += len(nodes)
        nxt = np.expm1(p.priority.astype(np.float64)) + now
        order = np.argsort(-nxt)[: self.evict_batch]
        for j in order:
            nd = nodes[int(j)]
            nd.pred_next = float(nxt[j])
            self._victims.append((nd.key, nd.seq))

    def _forget(self, node: _Node) -> str:
        del self._nodes[node.key]
        self._drop_index(node)
        return node.key

    def _drop_index(self, node: _Node) -> None:
        keys = self._keys
        last = keys.pop()
        if last != node.key:
            keys[node.idx] = last
            self._nodes[last].idx = node.idx

    def _prune_memory(self) -> None:
        keep = set(self._nodes)
        for memory in (self._last_ttl, self._last_p_cache):
            extra = [k for k in memory if k not in keep]
            for k in extra[: len(extra) // 2]:  # dicts are insertion-ordered: drop the older half
                del memory[k]
