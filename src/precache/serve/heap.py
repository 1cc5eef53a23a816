"""Keep Python's full garbage collections off the request path.

Why: a full (generation 2) collection walks every object the collector tracks, and a serving process holds
some 75,000 long-lived ones from its imports (FastAPI, pydantic, redis, numpy, onnxruntime bindings) plus the
model's tables. At a steady 1,000 requests/s the allocations of the request path triggered a full collection
every few seconds, and each stopped the event loop for ~100 ms on a quiet machine (up to ~500 ms on a busy
one): the periodic stalls behind the p99 and p99.9 of ``bench/bench_service.py``. :func:`gc.freeze` moves
every object alive at that moment to the permanent generation, which collections skip; objects made later
(per-request garbage, histories, the accuracy tracker) are still collected, quickly, because so few remain.
Frozen objects are still freed by reference counting; only frozen *cycles* outlive their use, and what is
frozen is startup state and models, so that bounds it to one model's cycles per activation.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

_frozen = [0]  # objects frozen, counted once per freeze (see heap_gauges)


def _count_frozen() -> None:
    _frozen[0] = gc.get_freeze_count()


def settle_after_startup() -> None:
    """Collect once and freeze the survivors: called when the app has started, before it serves."""
    gc.collect()
    gc.freeze()
    _count_frozen()


def freeze_model() -> None:
    """Freeze what a newly installed model brought (O(1): the collector's lists are spliced, nothing walked;
    counting them walks the list once, at install time, not on the serving path)."""
    gc.freeze()
    _count_frozen()


def heap_gauges() -> dict[str, Callable[[], float]]:
    """``/api/ml/metrics`` gauges that show the freeze holds: objects frozen, full collections run so far.

    The frozen count is the one taken at the last freeze: ``gc.get_freeze_count()`` walks the whole
    permanent generation (~1.5 ms for 70,000 objects, more with a model's tables), and the metrics snapshot
    every worker publishes every 2 s called it on the event loop -- a stall found profiling issue 25."""
    return {"gcFrozenObjects": lambda: float(_frozen[0]),
            "gcFullCollections": lambda: float(gc.get_stats()[2]["collections"])}
