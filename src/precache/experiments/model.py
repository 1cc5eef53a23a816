"""Experiment definitions: named arms with weights and parameters, a holdout, and a scope.

Why scopes: warming, threshold and model arms change what one session gets, so they are assigned per
session. Cache-policy and TTL arms cannot be: sessions share cache entries, so a session in arm B would
read entries arm A's policy kept. They are assigned per replica (each replica runs one arm) and the
readout says so (``spillover``: shared keys in L2 still mix the arms).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["warming", "threshold", "model_version", "cache_policy", "ttl_mode"]
Scope = Literal["session", "replica"]
KINDS: tuple[str, ...] = ("warming", "threshold", "model_version", "cache_policy", "ttl_mode")
SCOPE_OF: dict[str, Scope] = {
    "warming": "session", "threshold": "session", "model_version": "session",
    "cache_policy": "replica", "ttl_mode": "replica",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ExperimentError(ValueError):
    """A bad definition or a change that would invalidate a running experiment's readout."""


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    weight: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    kind: Kind
    arms: tuple[Arm, ...]
    holdout: float = 0.0
    seed: str = ""
    status: Literal["running", "stopped"] = "running"
    created: float = 0.0
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.01  # minimum detectable effect (absolute, on the primary ratio metric)
    description: str = ""

    @property
    def scope(self) -> Scope:
        return SCOPE_OF[self.kind]

    @property
    def control(self) -> Arm:
        return self.arms[0]

    def validate(self) -> Experiment:
        if not _NAME.match(self.id):
            raise ExperimentError(f"experiment id {self.id!r}: 1-64 letters, digits, '_', '.', '-'")
        if self.kind not in KINDS:
            raise ExperimentError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if len(self.arms) < 2:
            raise ExperimentError("an experiment needs at least two arms (the first is the control)")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or not all(_NAME.match(n) for n in names):
            raise ExperimentError("arm names must be unique, 1-64 letters, digits, '_', '.', '-'")
        if any(not (a.weight > 0) for a in self.arms):
            raise ExperimentError("every arm weight must be > 0")
        if not 0 <= self.holdout < 1:
            raise ExperimentError("holdout must be in [0, 1)")
        if not 0 < self.alpha < 0.5 or not 0.5 <= self.power < 1 or not self.mde > 0:
            raise ExperimentError("need 0 < alpha < 0.5, 0.5 <= power < 1, mde > 0")
        return self

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["arms"] = [asdict(a) for a in self.arms]
        data["scope"] = self.scope
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        try:
            arms = tuple(Arm(str(a["name"]), float(a["weight"]), dict(a.get("params") or {})) for a in data["arms"])
            fields = {k: data[k] for k in ("holdout", "seed", "status", "created", "alpha", "power", "mde",
                                           "description") if k in data}
            return cls(id=str(data["id"]), kind=data["kind"], arms=arms, **fields).validate()
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ExperimentError):
                raise
            raise ExperimentError(f"malformed experiment definition: {exc}") from exc
