"""The quality gate: a candidate goes live only if it is good enough and not worse than what is live.

Both models are scored on the same latest held-out time slice, so the comparison is fair; ``tolerance``
absorbs the noise of a small slice (a candidate 0.005 behind on 300 transitions is not worse).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class GateDecision:
    accepted: bool
    reason: str
    metric: str
    candidate: float
    active: float | None
    active_version: str | None
    target: float | None
    tolerance: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(metric: str, candidate: float, *, target: float | None, tolerance: float,
           active: float | None = None, active_version: str | None = None) -> GateDecision:
    """Accept iff ``candidate >= target`` (when a target is set) and ``candidate >= active - tolerance``."""
    def made(accepted: bool, reason: str) -> GateDecision:
        return GateDecision(accepted, reason, metric, candidate, active, active_version, target, tolerance)

    if candidate != candidate:  # NaN: nothing was scored
        return made(False, f"{metric} could not be measured on the evaluation slice")
    failures = []  # every rule the candidate fails, so the reason is complete
    if target is not None and candidate < target:
        failures.append(f"{metric} {candidate:.4f} is below the target {target:.4f}")
    if active is not None and candidate < active - tolerance:
        failures.append(f"{metric} {candidate:.4f} is worse than the active {active_version} ({active:.4f}) "
                        f"beyond the tolerance {tolerance:.4f}")
    if failures:
        return made(False, "; ".join(failures))
    parts = [f"{metric} {candidate:.4f}"]
    if target is not None:
        parts.append(f"reaches the target {target:.4f}")
    parts.append(f"vs active {active_version} {active:.4f}" if active is not None else "no active model to compare")
    return made(True, ", ".join(parts))
