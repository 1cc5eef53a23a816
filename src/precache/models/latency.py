"""Batch-1 serving cost of a predictor, measured so that a choice made on it does not follow machine load.

Why: ``auto`` may ship a gate over several components, and each component runs on every served query
(``InferenceEngine``'s batch-1 p99 goal is 1 ms). Auto refuses candidates whose cost passes a latency
budget, and that refusal must not make the shipped model (and so the accuracy table) depend on how busy
the machine was while it was fitted. Hence the statistic:

- thread CPU time (``time.thread_time``), not wall time: a descheduled query waits for the scheduler,
  which is not the model's cost;
- each history is run ``repeats`` times with the model's memo cleared and the *minimum* is kept:
  interference (cache pollution by other processes, interrupts) only ever adds time, so the minimum is
  the least load-sensitive estimate of what the query itself costs;
- the median (``quantile`` 0.5) over a fixed set of histories: the statistic load moves least. The served
  p99 sits above it (long histories cost more: session-kNN and attention scale with them; p99/p50 was
  1.7-2.3 in the engine on an idle machine), which the budget's headroom covers.

The result is an estimate in microseconds; it moves by tens of percent between an idle and a busy
machine, so a budget must sit well above the estimates of the candidates it should accept (auto's
docstring says how far).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from precache.models.base import PagePredictorBase

COST_HISTORIES = 200  # validation histories timed per component (first ones, fixed: same set every fit)
COST_REPEATS = 3
COST_QUANTILE = 0.5


def query_cost_us(run: Callable[[int], object], queries: int, repeats: int = COST_REPEATS,
                  quantile: float = COST_QUANTILE, before: Callable[[], None] | None = None) -> float:
    """``quantile`` over queries ``0..queries-1`` of the minimum thread-CPU µs of ``run(i)`` over
    ``repeats`` runs (``before`` runs untimed before each, e.g. to clear a memo); 0 for no queries."""
    if queries <= 0:
        return 0.0
    best = np.full(queries, np.inf)
    for _ in range(max(1, repeats)):
        for i in range(queries):
            if before is not None:
                before()
            started = time.thread_time()
            run(i)
            best[i] = min(best[i], time.thread_time() - started)
    return float(np.quantile(best, quantile) * 1e6)


def predictor_cost_us(model: PagePredictorBase, histories: Sequence[Sequence[str]], depth: int,
                      repeats: int = COST_REPEATS, quantile: float = COST_QUANTILE) -> float:
    """Batch-1 ``predict_batch([history], depth)`` cost of ``model``, memo cleared before every query (a
    served query often misses the memo: the cold cost is the one to budget)."""
    cost = query_cost_us(lambda i: model.predict_batch([histories[i]], depth), len(histories), repeats,
                         quantile, before=model.clear_cache)
    model.clear_cache()
    return cost
