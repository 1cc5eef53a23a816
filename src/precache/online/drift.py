"""Drift-triggered retraining: start a retrain when live HR@5 stays a margin below the active model's own.

Why: the online counts follow drift within a context, but a site that changes (new pages, new paths) also
needs a new frozen model. The tracker watches the hit@5 of the predictions the service served (the
monitor's scored listener: a prediction is scored when the session's next page arrives), over the last
``window`` of them. When the window's HR@5 is below the active model's held-out HR@5 (its ``test_hr5``, what
the training pipeline measured before the gate let it in) by more than ``margin``, it calls ``start`` (a
retrain through the existing pipeline and gate), at most once per ``min_interval`` seconds, and starts a new
window (the evidence that triggered it is spent). Everything is counted for the metrics and the dashboard.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class DriftTrigger:
    """``scored(session, hit5)`` per scored prediction; calls ``start()`` on sustained drift (see module)."""

    baseline: Callable[[], float | None]
    start: Callable[[], None]
    margin: float = 0.05
    window: int = 2000
    min_interval: float = 6 * 3600.0
    clock: Callable[[], float] = time.time
    hits: deque[bool] = field(init=False)
    last_start: float | None = None
    triggers: int = 0
    suppressed: int = 0
    busy: int = 0  # triggers that found a training job already running
    failures: int = 0  # triggers whose job could not start
    jobs: list[str] = field(default_factory=list)
    last_hr5: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin < 1.0 or self.window < 1 or self.min_interval < 0:
            raise ValueError("margin in [0, 1), window >= 1 and min_interval >= 0 are required")
        self.hits = deque(maxlen=self.window)

    def scored(self, session_id: str, hit5: bool) -> None:
        self.hits.append(bool(hit5))
        if len(self.hits) < self.window:
            return
        self.last_hr5 = sum(self.hits) / len(self.hits)
        reference = self.baseline()
        if reference is None or self.last_hr5 >= reference - self.margin:
            return
        now = self.clock()
        if self.last_start is not None and now - self.last_start < self.min_interval:
            self.suppressed += 1
            return
        self.last_start = now
        self.triggers += 1
        self.hits.clear()
        self.start()

    def snapshot(self) -> dict[str, float]:
        return {"driftTriggers": float(self.triggers), "driftSuppressed": float(self.suppressed),
                "driftBusy": float(self.busy), "driftStartFailures": float(self.failures),
                "driftWindowHr5": -1.0 if self.last_hr5 is None else self.last_hr5}
