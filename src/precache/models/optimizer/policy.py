"""The learned cache policy: implements :class:`precache.cache.policy.EvictionPolicy`.

* **Admission** from ``should_cache``. Inference is batched, so the decision is *lazy*: a new entry is
  stored, scored with the next batch, and if ``should_cache`` < ``admit_threshold`` it goes to a
  reject queue that ``victim()`` empties first (it is the first thing evicted, before any resident
  the model wants to keep). An entry whose previous scoring (an earlier access) was below the threshold
  is refused outright when ``strict_admission`` is set.
  With ``admission="model"`` the decision is made up front instead, through ``admit``: the miss's
  own feature row is scored at once (one single-row inference per miss) and the object is refused
  when ``should_cache`` < ``admit_threshold``; nothing is stored and then evicted.
  ``admission="seen"`` is a doorkeeper instead (TinyLFU's, a CDN's cache-on-second-hit): a miss is
  stored only if the key was requested before (exactly, over the tracker's memory), so one-hit objects
  never displace residents; no inference.
* **Eviction** LRB-style: sample ``sample_size`` residents, evict the one predicted farthest in the
  future. Scores are cached per resident (absolute predicted next-access time) and only the *stale*
  ones are re-scored, in one batch of the priority model alone: a score is stale when the object was
  read since, or when more than ``max_staleness`` of its predicted gap has elapsed (an object that
  has not come back when predicted is re-scored: its prediction moves out). The next farthest of the
  sample are queued as the following victims (at most ``evict_batch``, and at most one per
  ``queue_divisor`` sampled residents so a small cache still considers its newest entries); a
  queued victim read in between is skipped.
* **Probation** (``probation`` > 0, off by default): new entries first wait in a FIFO holding about
  that fraction of the resident bytes, like S3-FIFO's small queue. At its head an entry moves to the
  sampled main area if it was read meanwhile, or (``probation_model``) if its batch score says
  ``should_cache``; otherwise it is evicted and remembered in a ghost list, and a ghost that comes
  back goes straight to the main area. Most evictions of a small cache then need no inference.
  ``shift_on_hit`` (off by default) keeps a read entry's last predicted gap, counted from the read,
  instead of re-scoring it.
* **TTL** from the predicted time to the next content change (the ``ttl`` output, whose features
  include the object's access rate and update history), scaled by ``ttl_scale`` and bounded by
  ``min_ttl``/``max_ttl``. Known once the key has been scored at an earlier access; before that the
  tier's default TTL is kept.
* **Staleness**: entries whose ``invalidation`` probability passes ``invalidation_threshold`` are
  queued for proactive revalidation (``drain_revalidations()``) or evicted (``stale_action="evict"``:
  first in line at the next ``victim()``). ``stale_keys()`` (the optional
  :class:`~precache.cache.policy.StalenessSource` method) hands both to
  :class:`~precache.cache.layered.PredictiveCache`, which reloads the keys in the background or drops
  them from L1 right away, off the hit path.

Cost: every hook is O(1) amortised. Inserts are scored with all four outputs once per ``batch_size``
of them; a hit only updates the object's features (and joins the next batch every
``hit_rescore_every``-th hit, for TTL and staleness): ``on_hit`` never runs the model, so a read
never waits for inference; batches run on the insert and eviction paths. Feature rows are built for
a whole batch at once (:meth:`FeatureTracker.rows`, vectorised).
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Literal

import numpy as np

from precache.cache.clock import Clock, SystemClock
from precache.cache.policy import EntryInfo, StaleAction
from precache.models.optimizer.features import FeatureTracker, ObjectState
from precache.models.optimizer.model import OptimizerModel

_MAX_STALE_QUEUE = 65_536


class _Node:
    __slots__ = ("hits", "idx", "key", "p_cache", "p_inval", "pending", "pred_next", "prob", "scored_at",
                 "scored_seq", "seq", "size", "state")

    def __init__(self, key: str, size: int, idx: int, state: ObjectState) -> None:
        self.key = key
        self.size = size
        self.idx = idx
        self.state = state
        self.seq = 0  # bumped on every read: invalidates queued victims and cached scores
        self.hits = 0  # reads since the last full (four-output) scoring
        self.pending = False
        self.pred_next = math.inf  # absolute predicted time of the next access
        self.scored_at = -math.inf
        self.scored_seq = -1  # seq at the last scoring (-1: never scored)
        self.p_cache = math.nan
        self.p_inval = 0.0
        self.prob = False  # in the probationary FIFO (not in the sampled main area)


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
        admission: Literal["should_cache", "model", "seen", "none"] = "should_cache",
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
        max_staleness: float = 0.5,
        queue_divisor: int = 8,
        hit_rescore_every: int = 8,
        probation: float = 0.0,
        probation_model: bool = True,
        shift_on_hit: bool = False,
    ) -> None:
        if batch_size < 1 or sample_size < 1 or evict_batch < 1 or queue_divisor < 1:
            raise ValueError("batch_size, sample_size, evict_batch and queue_divisor must be >= 1")
        if not 0.0 < min_ttl <= max_ttl:
            raise ValueError(f"need 0 < min_ttl <= max_ttl, got {min_ttl}, {max_ttl}")
        if not 0.0 <= probation < 1.0:
            raise ValueError(f"probation must be in [0, 1), got {probation}")
        if max_staleness < 0.0:
            raise ValueError(f"max_staleness must be >= 0, got {max_staleness}")
        self.model = model
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.tracker = FeatureTracker(max_objects=max_tracked_objects, stream_counts=model.stream_counts)
        self.batch_size = batch_size
        self.sample_size = sample_size
        self.evict_batch = min(evict_batch, sample_size)
        self.queue_divisor = queue_divisor
        self.max_staleness = max_staleness
        self.hit_rescore_every = hit_rescore_every  # 0: hits are never re-scored with all outputs
        self.probation = probation
        self.shift_on_hit = shift_on_hit
        self.probation_model = probation_model
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
        self._keys: list[str] = []  # the main (sampled) area
        self._prob: deque[_Node] = deque()
        self._prob_bytes = 0
        self._bytes = 0
        self._ghost: dict[str, None] = {}
        self._pending: list[_Node] = []
        # Queued (node, seq): a queued victim is stale once its node was read (seq moved) or the key was
        # removed and inserted again (a different node), so entries are matched by identity, not key.
        self._reject: deque[tuple[_Node, int]] = deque()
        self._victims: deque[tuple[_Node, int]] = deque()
        # flagged stale, for drain_revalidations / stale_keys; bounded (oldest dropped) when nobody drains
        self._revalidate: deque[str] = deque(maxlen=_MAX_STALE_QUEUE)
        self._stale_evict: deque[_Node] = deque(maxlen=_MAX_STALE_QUEUE)
        # per-key memory of the last scoring (for TTL / strict admission of keys not resident now)
        self._last_ttl: dict[str, float] = {}
        self._last_p_cache: dict[str, float] = {}
        self._observed: tuple[str, float] | None = None
        self.inference_calls = 0
        self.rows_scored = 0
        self.rows_reused = 0  # sampled candidates whose cached score was fresh enough
        self.rejected = 0

    # -- the EvictionPolicy protocol ----------------------------------------------------------------
    def admit(self, info: EntryInfo) -> bool:
        self._observe_set(info)
        if self.admission == "seen":
            seen = self.tracker.get(info.key)
            if seen is None or seen.count < 2:
                self.rejected += 1
                return False
            return True
        if self.admission == "model":
            state = self.tracker.get(info.key)
            if state is not None:
                row = np.asarray([self.tracker.row_list(state, self.clock.now())], dtype=np.float32)
                p_cache = float(self.model.predict(row).should_cache[0])
                self.inference_calls += 1
                self.rows_scored += 1
                self._last_p_cache[info.key] = p_cache
                if p_cache < self.admit_threshold:
                    self.rejected += 1
                    return False
            return True
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
        if key in self._nodes:  # a replace without on_remove: forget the old entry first
            self.on_remove(key)
        state = self.tracker.get(key)
        if state is None:  # inserted without a set() we saw (e.g. filled from L2)
            state = self.tracker.observe(key, self.clock.now(), info.size)
        node = _Node(key, info.size, len(self._keys), state)
        self._nodes[key] = node
        self._bytes += info.size
        if self.probation and key not in self._ghost:
            node.prob = True  # new: a FIFO stay in probation first (as S3-FIFO's small queue)
            self._prob.append(node)
            self._prob_bytes += info.size
        else:
            self._ghost.pop(key, None)  # evicted from probation recently and back: straight to main
            self._keys.append(key)
        self._enqueue(node)

    def on_hit(self, info: EntryInfo) -> None:
        now = self.clock.now()
        self.tracker.observe(info.key, now, info.size)
        node = self._nodes.get(info.key)
        if node is not None:
            node.seq += 1
            node.hits += 1
            if self.shift_on_hit and node.scored_seq >= 0:
                # keep the last predicted gap, counted from this read, instead of re-scoring now
                node.pred_next = now + (node.pred_next - node.scored_at)
                node.scored_at = now
                node.scored_seq = node.seq
            if self.hit_rescore_every and node.hits >= self.hit_rescore_every and not node.pending:
                # queued only: the batch runs on the insert/evict path, never inside a read
                node.pending = True
                self._pending.append(node)

    def on_remove(self, key: str) -> None:
        node = self._nodes.pop(key, None)
        if node is not None:
            self._drop_index(node)

    def victim(self) -> str | None:
        for queue in (self._reject, self._victims):
            while queue:
                node, seq = queue.popleft()
                if node.seq == seq and self._nodes.get(node.key) is node:
                    return self._forget(node)
        while self._prob and (not self._keys or self._prob_bytes > self.probation * self._bytes):
            node = self._prob.popleft()
            if not node.prob or self._nodes.get(node.key) is not node:
                continue  # removed while in probation
            if node.seq or (self.probation_model and node.scored_seq >= 0
                            and node.p_cache >= self.admit_threshold):
                node.prob = False  # read in probation, or the model wants it: to the main area
                self._prob_bytes -= node.size
                node.idx = len(self._keys)
                self._keys.append(node.key)
                continue
            ghost = self._ghost
            ghost[node.key] = None
            if len(ghost) > len(self._nodes) + 64:
                del ghost[next(iter(ghost))]
            return self._forget(node)
        if not self._keys:
            return None
        self._score_sample()
        while self._victims:
            node, seq = self._victims.popleft()
            if node.seq == seq and self._nodes.get(node.key) is node:
                return self._forget(node)
        return None  # pragma: no cover - the sample always yields a live victim

    # -- extras for the cache / warmer ------------------------------------------------------------------
    def record_access(self, key: str, now: float | None = None, size: int = 0, client: str = "",
                      latency: float | None = None, predictor_prob: float | None = None) -> None:
        """Tell the policy about an access it would not otherwise see (an L2 hit, a miss not stored)."""
        self.tracker.observe(key, self.clock.now() if now is None else now, size, client, latency,
                             predictor_prob)
        node = self._nodes.get(key)
        if node is not None:
            node.seq += 1

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

    def stale_keys(self, limit: int = 100) -> list[tuple[str, StaleAction]]:
        """The :class:`~precache.cache.policy.StalenessSource` method: up to ``limit`` resident keys
        predicted stale since the last call, each with the cache's action: ``"revalidate"`` (from
        :meth:`drain_revalidations`) or, with ``stale_action="evict"``, ``"evict"`` (skipped if the
        entry scored was removed or replaced since). O(limit); never runs the model."""
        out: list[tuple[str, StaleAction]] = []
        queue = self._stale_evict
        nodes = self._nodes
        while queue and len(out) < limit:
            node = queue.popleft()
            if nodes.get(node.key) is node:  # still the entry that was scored (a read does not
                out.append((node.key, "evict"))  # make it fresher; a replaced value is a new node)
        if len(out) < limit:
            out.extend((key, "revalidate") for key in self.drain_revalidations(limit - len(out)))
        return out

    def flush(self) -> None:
        """Score the accesses queued since the last batch (the hooks call this every ``batch_size``)."""
        if not self._pending:
            return
        batch = self._pending
        self._pending = []
        now = self.clock.now()
        X = self.tracker.rows([n.state for n in batch], now)
        p = self.model.predict(X)
        self.inference_calls += 1
        self.rows_scored += len(batch)
        nxt = (np.expm1(np.maximum(p.priority.astype(np.float64), 0.0)) + now).tolist()
        p_cache = p.should_cache.tolist()
        p_inval = p.invalidation.tolist()
        ttl = p.ttl.tolist()
        reject = self.admission == "should_cache"
        stale = self.stale_action != "none"
        for i, node in enumerate(batch):
            key = node.key
            node.pending = False
            node.hits = 0
            pc = p_cache[i]
            node.p_cache = pc
            node.p_inval = p_inval[i]
            node.pred_next = nxt[i]
            node.scored_at = now
            node.scored_seq = node.seq
            self._last_ttl[key] = ttl[i]
            self._last_p_cache[key] = pc
            if self._nodes.get(key) is not node:
                continue
            if reject and pc < self.admit_threshold:
                self._reject.append((node, node.seq))
            elif stale and node.p_inval >= self.invalidation_threshold:
                if self.stale_action == "evict":
                    self._reject.append((node, node.seq))
                    self._stale_evict.append(node)
                else:
                    self._revalidate.append(key)
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
            node = self._nodes.get(info.key)
            if node is not None:
                node.seq += 1

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
        nodes_by_key = self._nodes
        if k < n:
            rand = self._rng.random
            # with replacement, duplicates merged (dict, not set: a deterministic order for a seed)
            sample = dict.fromkeys([keys[int(rand() * n)] for _ in range(k)])
            nodes = [nodes_by_key[key] for key in sample]
        else:
            nodes = [nodes_by_key[key] for key in keys]
        now = self.clock.now()
        frac = self.max_staleness
        stale = [nd for nd in nodes
                 if nd.scored_seq != nd.seq or now - nd.scored_at > frac * (nd.pred_next - nd.scored_at)]
        if stale:
            X = self.tracker.rows([nd.state for nd in stale], now)
            pr = self.model.predict_priority(X)
            self.inference_calls += 1
            self.rows_scored += len(stale)
            nxt = (np.expm1(np.maximum(pr.astype(np.float64), 0.0)) + now).tolist()
            for nd, t in zip(stale, nxt, strict=True):
                nd.pred_next = t
                nd.scored_at = now
                nd.scored_seq = nd.seq
        self.rows_reused += len(nodes) - len(stale)
        m = min(self.evict_batch, max(1, len(nodes) // self.queue_divisor))
        if m == 1:
            best = max(nodes, key=_pred_next)
            self._victims.append((best, best.seq))
            return
        for nd in sorted(nodes, key=_pred_next, reverse=True)[:m]:
            self._victims.append((nd, nd.seq))

    def _forget(self, node: _Node) -> str:
        del self._nodes[node.key]
        self._drop_index(node)
        return node.key

    def _drop_index(self, node: _Node) -> None:
        self._bytes -= node.size
        if node.prob:  # its probation entry is skipped when popped
            node.prob = False
            self._prob_bytes -= node.size
            return
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


def _pred_next(node: _Node) -> float:
    return node.pred_next
