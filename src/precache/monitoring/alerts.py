"""Alert rules with a ``for`` duration and hysteresis, evaluated on the JSON summary's values.

Why both: a value that hovers around a threshold must not fire and resolve on every evaluation. A rule
fires only after the condition has held for ``for_seconds`` and resolves only once the value is back
beyond the threshold by the ``hysteresis`` margin (relative) -- the same shape as Prometheus' ``for:``
plus a clear band. A window without data (``None``) changes nothing. The same rules ship as a
Prometheus alerting-rules file (``deploy/prometheus/precache-alerts.yml``) for teams that alert there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from precache.monitoring.background import STOP_SECONDS, cancel_task

Op = Literal["<", ">"]
State = Literal["inactive", "pending", "firing"]


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    metric: str  # a key of the JSON summary: accuracy, p95Latency (ms), cacheHitRate, memoryBytes
    op: Op
    threshold: float
    for_seconds: float = 300.0
    hysteresis: float = 0.02
    severity: str = "warning"
    summary: str = ""
    unit: str = ""  # of value and threshold: "ratio", "ms" or "bytes" (the dashboard formats by it)

    def breached(self, value: float) -> bool:
        return value < self.threshold if self.op == "<" else value > self.threshold

    def cleared(self, value: float) -> bool:
        margin = abs(self.threshold) * self.hysteresis
        return value >= self.threshold + margin if self.op == "<" else value <= self.threshold - margin


def default_rules(
    accuracy: float = 0.75, latency_ms: float = 10.0, hit_rate: float = 0.95, memory_mb: float = 90.0,
    for_seconds: float = 300.0,
) -> list[AlertRule]:
    """The seed system's four alerts. Memory is L1 bytes plus loaded model bytes, in MiB (not RSS)."""
    return [
        AlertRule("PrecachePredictionAccuracyLow", "accuracy", "<", accuracy, for_seconds,
                  summary=f"online HR@5 below {accuracy}", unit="ratio"),
        AlertRule("PrecachePredictionLatencyHigh", "p95Latency", ">", latency_ms, for_seconds,
                  summary=f"p95 prediction latency above {latency_ms} ms", unit="ms"),
        AlertRule("PrecacheCacheHitRateLow", "cacheHitRate", "<", hit_rate, for_seconds,
                  summary=f"cache hit rate below {hit_rate}", unit="ratio"),
        # value and threshold both in bytes (the summary says MiB for people; the event carries the unit)
        AlertRule("PrecacheMemoryHigh", "memoryBytes", ">", memory_mb * 1024 * 1024, for_seconds,
                  summary=f"L1 + model memory above {memory_mb:g} MiB", unit="bytes"),
    ]


def rules_from_settings(settings: Any, for_seconds: float | None = None) -> list[AlertRule]:
    """:func:`default_rules` with the thresholds (and ``for_seconds``) of ``settings.alerts``."""
    alerts = settings.alerts
    return default_rules(
        accuracy=float(alerts.accuracy_threshold), latency_ms=float(alerts.latency_threshold_ms),
        hit_rate=float(alerts.hit_rate_threshold), memory_mb=float(alerts.memory_threshold_mb),
        for_seconds=float(alerts.for_seconds) if for_seconds is None else for_seconds,
    )


@dataclass(slots=True)
class _RuleState:
    state: State = "inactive"
    since: float = 0.0
    value: float | None = None


class AlertEvaluator:
    """Tracks each rule's state; :meth:`evaluate` returns the firing / resolved transitions."""

    def __init__(self, rules: list[AlertRule]) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ValueError("alert rule names must be unique")
        self.rules = rules
        self._states = {r.name: _RuleState() for r in rules}

    def evaluate(self, values: Mapping[str, float | None], now: float) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for rule in self.rules:
            value = values.get(rule.metric)
            st = self._states[rule.name]
            if value is None:
                continue
            st.value = value
            if st.state == "firing":
                if rule.cleared(value):
                    events.append(self._event(rule, st, "resolved", now))
                    st.state, st.since = "inactive", now
            elif rule.breached(value):
                if st.state == "inactive":
                    st.state, st.since = "pending", now
                if now - st.since >= rule.for_seconds:
                    st.state = "firing"
                    events.append(self._event(rule, st, "firing", now))
            else:
                st.state, st.since = "inactive", now
        return events

    def state_dict(self) -> dict[str, Any]:
        """Every rule's state as JSON (the alert leader shares it through Redis)."""
        return {name: {"state": st.state, "since": st.since, "value": st.value} for name, st in self._states.items()}

    def load_state(self, data: Mapping[str, Any]) -> None:
        """Take the states another process shared (unknown rules and malformed entries are ignored): a new
        alert leader continues where the last one stopped instead of announcing firing alerts again."""
        for name, entry in data.items():
            st = self._states.get(name)
            if st is None or not isinstance(entry, dict) or entry.get("state") not in ("inactive", "pending", "firing"):
                continue
            value = entry.get("value")
            st.state, st.since = entry["state"], float(entry.get("since") or 0.0)
            st.value = float(value) if isinstance(value, int | float) else None

    def active(self) -> list[dict[str, Any]]:
        """Alerts firing now (for the JSON summary and the dashboard)."""
        return [self._event(r, self._states[r.name], "firing", None) for r in self.rules
                if self._states[r.name].state == "firing"]

    @staticmethod
    def _event(rule: AlertRule, st: _RuleState, status: str, now: float | None) -> dict[str, Any]:
        return {
            "alert": rule.name, "status": status, "severity": rule.severity, "metric": rule.metric,
            "value": st.value, "threshold": rule.threshold, "op": rule.op, "summary": rule.summary,
            "startsAt": st.since, "at": now, "unit": rule.unit,
        }


class Notifier(Protocol):
    """What the alert loop needs of a notifier (the webhook, or a test's recorder)."""

    def notify(self, event: dict[str, Any]) -> None: ...


class AlertLoop:
    """Evaluates the rules every ``interval`` seconds on ``values()`` and hands transitions to notifiers."""

    def __init__(
        self, evaluator: AlertEvaluator, values: Callable[[], Mapping[str, float | None]],
        notifiers: list[Notifier], interval: float = 15.0, clock: Callable[[], float] = time.time,
    ) -> None:
        self.evaluator, self.values, self.notifiers = evaluator, values, notifiers
        self.interval, self.clock = interval, clock
        self._task: asyncio.Task[None] | None = None

    def tick(self) -> list[dict[str, Any]]:
        events = self.evaluator.evaluate(self.values(), self.clock())
        for event in events:
            for notifier in self.notifiers:
                notifier.notify(event)
        return events

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.interval)

    async def stop(self, within: float = STOP_SECONDS) -> None:
        await cancel_task(self._task, within)
        self._task = None
