"""A learned eviction policy trained online on a sliding window of recent requests, as LRB does.

Why: a model trained once on yesterday's trace drifts; LRB (Song et al., NSDI'20; its simulator's
``LRBCache``: ``sample``, ``forget``, ``train``, ``rank``) keeps learning from the requests it serves.
What is taken from it, and what differs:

- **Samples and labels from the window's own future.** At each request, with probability
  ``sample_rate``, one object is sampled (half the time a random resident, half the time the key of a
  random request of the memory window, so objects outside the cache are learned too) and its feature row
  is kept with the request count. When that object is requested again the row is labelled with
  ``log1p(requests since the sample)``; if it is not requested within ``window`` requests the label is
  ``log1p(2 * window)`` (LRB's censoring). No label ever looks past the request being served.
- **Retraining.** Every ``batch`` new labelled rows a LightGBM regressor (LRB's settings: 32 trees of
  32 leaves) is refit on the latest ``max_rows`` rows. Before the first model: LRU, as LRB.
- **Eviction.** ``sample_size`` residents are scored in one batch; the farthest predicted next request
  goes first (the next farthest are queued, ``evict_batch`` at most). A resident not requested within
  the window is evicted first without scoring (LRB's ``rank`` rule).
- **Objective in bytes as well as objects** (``objective``): ``"bytes"`` ranks by predicted distance
  alone (every byte of a resident earns the same on a hit, so size drops out of the byte miss ratio);
  ``"objects"`` ranks by distance times size (a large object frees room for many small ones: the
  object miss ratio).
- **The page predictor's probability** of a request for the key (``hint``; set by whoever runs the
  predictor on the sessions) is a feature (``predictor_prob``) no peer has; ``use_predictor=False``
  masks it (the ablation).
- **Admission** (``admission``): ``"model"`` refuses a miss whose predicted distance is beyond the
  running eviction boundary (the mean predicted distance of recent victims); ``"seen"`` admits only keys
  requested before (a doorkeeper, as a Bloom-filter admissioner but exact). Off by default, as LRB.

Features come from :class:`~precache.models.optimizer.features.FeatureTracker`, the same code as the
offline-trained policy. Requires ``lightgbm`` (the training extra).
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from precache.cache.clock import Clock
from precache.cache.policy import EntryInfo
from precache.models.optimizer.features import FEATURE_NAMES, N_FEATURES, FeatureTracker

_PRED_COL = FEATURE_NAMES.index("predictor_prob")


@dataclass(frozen=True, slots=True)
class OnlineConfig:
    window: int = 100_000
    sample_rate: float = 0.25
    batch: int = 8192
    max_rows: int = 65_536
    sample_size: int = 64
    evict_batch: int = 8
    objective: Literal["bytes", "objects"] = "bytes"
    use_predictor: bool = True
    admission: Literal["none", "seen", "model"] = "none"
    num_iterations: int = 32
    num_leaves: int = 32
    learning_rate: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window < 10 or self.batch < 64 or self.max_rows < self.batch or self.sample_size < 1:
            raise ValueError("need window >= 10, batch >= 64, max_rows >= batch, sample_size >= 1")
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")
        if self.objective not in ("bytes", "objects") or self.admission not in ("none", "seen", "model"):
            raise ValueError("objective is 'bytes' or 'objects'; admission is 'none', 'seen' or 'model'")


class _Training:
    """The sliding training set: a ring of the latest ``max_rows`` labelled rows."""

    __slots__ = ("X", "filled", "new", "pos", "y")

    def __init__(self, max_rows: int) -> None:
        self.X = np.zeros((max_rows, N_FEATURES), dtype=np.float32)
        self.y = np.zeros(max_rows, dtype=np.float32)
        self.pos = self.filled = self.new = 0

    def add(self, row: npt.NDArray[np.float32], label: float) -> None:
        self.X[self.pos] = row
        self.y[self.pos] = label
        self.pos = (self.pos + 1) % len(self.y)
        self.filled = min(self.filled + 1, len(self.y))
        self.new += 1


class OnlineLearnedPolicy:
    """:class:`~precache.cache.policy.EvictionPolicy` trained online (see the module docstring)."""

    name = "learned-online"

    def __init__(self, clock: Clock, config: OnlineConfig | None = None) -> None:
        self.config = cfg = config or OnlineConfig()
        self.clock = clock
        self.tracker = FeatureTracker()
        self._rng = random.Random(cfg.seed)
        self._lru: OrderedDict[str, EntryInfo] = OrderedDict()
        self._keys: list[str] = []
        self._pos: dict[str, int] = {}
        self._last_seq: dict[str, int] = {}
        self._recent: list[str] = []
        self._pending: dict[str, list[tuple[int, npt.NDArray[np.float32]]]] = {}
        self._queue: deque[tuple[int, str]] = deque()
        self._train = _Training(cfg.max_rows)
        self._booster: Any = None
        self._victims: deque[str] = deque()
        self._boundary: float | None = None
        self.seq = 0
        self.retrains = 0
        self.rows_scored = 0
        self.inference_calls = 0

    # -- what the cache sees ------------------------------------------------------------------------
    def hint(self, key: str, prob: float) -> None:
        """The page predictor gives ``prob`` to ``key`` being requested next (by a live session)."""
        self.tracker.set_predictor_prob(key, prob)

    def _observe(self, key: str, size: int) -> None:
        cfg = self.config
        self.seq += 1
        seq, now = self.seq, self.clock.now()
        self.tracker.observe(key, now, size)
        self._last_seq[key] = seq
        done = self._pending.pop(key, None)
        if done:
            for s, row in done:
                self._train.add(row, math.log1p(seq - s))
        self._censor(seq)
        if len(self._recent) < cfg.window:
            self._recent.append(key)
        else:
            self._recent[seq % cfg.window] = key
        if self._rng.random() < cfg.sample_rate:
            self._sample(seq, now)
        if self._train.new >= cfg.batch:
            self._fit()

    def _censor(self, seq: int) -> None:
        """Samples not requested again within the window get LRB's label: twice the window."""
        q, w = self._queue, self.config.window
        while q and seq - q[0][0] >= w:
            s, key = q.popleft()
            rows = self._pending.get(key)
            if rows and rows[0][0] == s:
                self._train.add(rows.pop(0)[1], math.log1p(2 * w))
                if not rows:
                    del self._pending[key]

    def _sample(self, seq: int, now: float) -> None:
        keys = self._keys
        if keys and self._rng.random() < 0.5:
            key = keys[self._rng.randrange(len(keys))]
        else:
            key = self._recent[self._rng.randrange(len(self._recent))]
        st = self.tracker.get(key)
        if st is None:
            return
        row = np.asarray(self.tracker.row_list(st, now), dtype=np.float32)
        self._pending.setdefault(key, []).append((seq, row))
        self._queue.append((seq, key))

    def _fit(self) -> None:
        import lightgbm as lgb

        cfg, tr = self.config, self._train
        tr.new = 0
        X, y = tr.X[: tr.filled], tr.y[: tr.filled]
        if not cfg.use_predictor:
            X = X.copy()
            X[:, _PRED_COL] = -1.0
        params = {"objective": "regression", "num_leaves": cfg.num_leaves, "learning_rate": cfg.learning_rate,
                  "num_threads": 1, "verbose": -1, "seed": cfg.seed, "min_data_in_leaf": 20}
        self._booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=cfg.num_iterations)
        self.retrains += 1

    def _predict(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        if not self.config.use_predictor:
            X[:, _PRED_COL] = -1.0
        self.rows_scored += len(X)
        self.inference_calls += 1
        return np.asarray(self._booster.predict(X, num_threads=1), dtype=np.float64)

    # -- EvictionPolicy ---------------------------------------------------------------------------
    def admit(self, info: EntryInfo) -> bool:
        self._observe(info.key, info.size)
        admission = self.config.admission
        st = self.tracker.get(info.key)
        assert st is not None
        if admission == "seen":  # a doorkeeper: only keys already requested before (exact, not a Bloom filter)
            return st.count >= 2
        if admission == "none" or self._booster is None or self._boundary is None:
            return True
        pred = self._predict(self.tracker.rows([st], self.clock.now()))[0]
        return bool(pred <= self._boundary)

    def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
        return default_ttl

    def on_insert(self, info: EntryInfo) -> None:
        key = info.key
        if key in self._pos:
            self.on_remove(key)
        self._lru[key] = info
        self._pos[key] = len(self._keys)
        self._keys.append(key)

    def on_hit(self, info: EntryInfo) -> None:
        self._observe(info.key, info.size)
        if info.key in self._lru:
            self._lru.move_to_end(info.key)

    def on_remove(self, key: str) -> None:
        if self._lru.pop(key, None) is None:
            return
        i = self._pos.pop(key)
        last = self._keys.pop()
        if last != key:
            self._keys[i] = last
            self._pos[last] = i

    def victim(self) -> str | None:
        while self._victims:
            key = self._victims.popleft()
            if key in self._lru:
                self.on_remove(key)
                return key
        if not self._lru:
            return None
        oldest = next(iter(self._lru))
        if self._booster is None or self.seq - self._last_seq.get(oldest, 0) >= self.config.window:
            self.on_remove(oldest)  # no model yet, or beyond the memory window: LRU (as LRB)
            return oldest
        return self._rank()

    def _rank(self) -> str:
        cfg = self.config
        keys = self._keys
        m = min(cfg.sample_size, len(keys))
        picked = self._rng.sample(keys, m) if m < len(keys) else list(keys)
        objects = self.tracker.objects
        rows = self.tracker.rows([objects[k] for k in picked], self.clock.now())
        score = self._predict(rows)
        sizes = np.fromiter((self._lru[k].size for k in picked), dtype=np.float64, count=m)
        if cfg.objective == "objects":
            score = score + np.log1p(sizes)
        order = np.argsort(-score)
        take = max(1, min(cfg.evict_batch, m // 8))
        chosen = [picked[int(i)] for i in order[:take]]
        top = float(score[order[0]]) - (math.log1p(sizes[order[0]]) if cfg.objective == "objects" else 0.0)
        self._boundary = top if self._boundary is None else 0.9 * self._boundary + 0.1 * top
        self._victims.extend(chosen[1:])
        self.on_remove(chosen[0])
        return chosen[0]
