"""Policies the replay compares: plain LRU, the cache's S3-FIFO heuristic, and the learned optimizer.

The learned policy is trained here on the *training part* of the trace only (the optimizer area's
dataset builder and trainer), then built fresh per replay on the replay's virtual clock.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from precache.cache.clock import Clock
from precache.cache.policy import EvictionPolicy, LRUPolicy, S3FIFOPolicy

if TYPE_CHECKING:
    from precache.models.optimizer.labels import CacheTrace

PolicyFactory = Callable[[Clock], EvictionPolicy]


def lru(clock: Clock) -> EvictionPolicy:
    return LRUPolicy()


def s3fifo(clock: Clock) -> EvictionPolicy:
    return S3FIFOPolicy()


def train_learned_policy(
    trace: CacheTrace,
    directory: str | Path | None = None,
    max_rows: int = 60_000,
) -> tuple[Callable[..., PolicyFactory], dict[str, object]]:
    """Train the optimizer on the training part of a trace (``trace_from_requests`` of the training
    requests and their content updates); returns ``make(**LearnedPolicy options) -> factory`` and the
    training metrics. ``make(adaptive_ttl=False)`` keeps the tier's TTL (the fair comparison: every
    configuration gets the same TTL); the adaptive TTL is its own ablation."""
    from precache.models.optimizer.labels import build_dataset
    from precache.models.optimizer.model import OptimizerModel
    from precache.models.optimizer.policy import LearnedPolicy
    from precache.models.optimizer.train import TrainConfig, train

    n = len(trace)
    split = int(n * 0.2)
    dataset = build_dataset(trace, split, n)
    out = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="precache-opt-"))
    result = train(dataset, out, TrainConfig(max_rows=max_rows, n_estimators=60))
    model = OptimizerModel.load(out)

    def make(**options: object) -> PolicyFactory:
        def factory(clock: Clock) -> EvictionPolicy:
            return LearnedPolicy(model, clock, **options)  # type: ignore[arg-type]

        return factory

    return make, {"directory": str(out), "seconds": result.seconds, **result.metrics}
