"""Experiment definitions: named arms with weights and parameters, a holdout, and a scope.

Why scopes: warming, threshold and model arms change what one session gets, so they are assigned per
session. Cache-policy and TTL arms cannot be: sessions share cache entries, so a session in arm B would
read entries arm A's policy kept. They are assigned per replica (each replica runs one arm) and the
readout says so (``spillover``: shared keys in L2 still mix the arms).

What an arm does is read from its parameters (or, for the simple kinds, its name), checked when the
experiment is created, and handed to the warmer and the stack as :class:`precache.types.SessionArm` /
:class:`precache.types.ReplicaArm`:

- ``warming``: ``{"warming": false}`` or an arm named off/false/no/disabled/control-off turns warming off;
- ``threshold``: ``{"threshold": 0.5}`` (in (0, 1]); no parameter = the configured threshold;
- ``model_version``: ``{"version": "v3"}`` pins a registry version of the page predictor; none = active;
- ``cache_policy``: ``{"policy": "learned" | "s3fifo"}`` or an arm named so;
- ``ttl_mode``: ``{"mode": "fixed" | "adaptive"}`` or an arm named so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from precache.types import ReplicaArm, SessionArm

Kind = Literal["warming", "threshold", "model_version", "cache_policy", "ttl_mode"]
Scope = Literal["session", "replica"]
KINDS: tuple[str, ...] = ("warming", "threshold", "model_version", "cache_policy", "ttl_mode")
SCOPE_OF: dict[str, Scope] = {
    "warming": "session", "threshold": "session", "model_version": "session",
    "cache_policy": "replica", "ttl_mode": "replica",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OFF_NAMES = frozenset({"off", "false", "no", "disabled", "none"})
POLICIES = ("learned", "s3fifo")
# The parameters each kind's arms may carry (issue 28: others were accepted and silently ignored).
PARAMS_OF: dict[str, tuple[str, ...]] = {
    "warming": ("warming",), "threshold": ("threshold",), "model_version": ("version",),
    "cache_policy": ("policy",), "ttl_mode": ("mode",),
}
TTL_MODES = ("fixed", "adaptive")


class ExperimentError(ValueError):
    """A bad definition or a change that would invalidate a running experiment's readout."""


class ExperimentConflict(ExperimentError):
    """The definition is fine but clashes with what is stored (an id in use, a running experiment of the kind)."""


class ExperimentNotFound(ExperimentError):
    """No experiment with that id."""


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
        for arm in self.arms:  # every arm must mean something the stack can do
            if self.scope == "session":
                session_arm(self, arm)
            else:
                replica_arm(self, arm)
        return self

    def validate_new(self, version_problem: Callable[[str], str | None] | None = None) -> Experiment:
        """:meth:`validate` plus what only a *new* definition must pass (stored ones stay readable): every arm
        parameter belongs to the kind's schema, and each pinned ``version`` is servable, as told by
        ``version_problem(version)`` (None when fine, else why not; e.g. checked against the registry). The
        error names the field: ``arms[1].params.version: ...``."""
        self.validate()
        allowed = PARAMS_OF[self.kind]
        for i, arm in enumerate(self.arms):
            for key in arm.params:
                if key not in allowed:
                    raise ExperimentError(f"arms[{i}].params.{key}: not a parameter of a {self.kind} arm "
                                          f"(allowed: {', '.join(allowed)})")
            version = arm.params.get("version")
            if version_problem is not None and isinstance(version, str):
                problem = version_problem(version)
                if problem is not None:
                    raise ExperimentError(f"arms[{i}].params.version: {problem}")
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


def session_arm(experiment: Experiment, arm: Arm) -> SessionArm:
    """What ``arm`` of a session-scoped experiment changes (see the module docstring)."""
    p, kind = arm.params, experiment.kind
    where = f"arm {arm.name!r} of a {kind} experiment"
    if kind == "warming":
        on = p.get("warming", arm.name.lower() not in OFF_NAMES)
        if not isinstance(on, bool):
            raise ExperimentError(f"{where}: 'warming' must be true or false")
        return SessionArm(warming=on, experiment=experiment.id, arm=arm.name)
    if kind == "threshold":
        threshold = p.get("threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                                      or not 0 < threshold <= 1):
            raise ExperimentError(f"{where}: 'threshold' must be a number in (0, 1]")
        return SessionArm(threshold=None if threshold is None else float(threshold), experiment=experiment.id,
                          arm=arm.name)
    if kind == "model_version":
        version = p.get("version")
        if version is not None and (not isinstance(version, str) or not _NAME.match(version)):
            raise ExperimentError(f"{where}: 'version' must be a registry version such as 'v3'")
        return SessionArm(model_version=version, experiment=experiment.id, arm=arm.name)
    raise ExperimentError(f"{kind} experiments are assigned per replica, not per session")


def replica_arm(experiment: Experiment, arm: Arm) -> ReplicaArm:
    """What ``arm`` of a replica-scoped experiment fixes when a replica builds its stack."""
    p, kind = arm.params, experiment.kind
    field_name, allowed = {"cache_policy": ("policy", POLICIES), "ttl_mode": ("mode", TTL_MODES)}.get(
        kind, ("", ()))
    if not allowed:
        raise ExperimentError(f"{kind} experiments are assigned per session, not per replica")
    value = p.get(field_name, arm.name.lower() if arm.name.lower() in allowed else None)
    if value not in allowed:
        raise ExperimentError(f"arm {arm.name!r} of a {kind} experiment: '{field_name}' must be one of "
                              f"{', '.join(allowed)} (or name the arm so)")
    if kind == "cache_policy":
        return ReplicaArm(cache_policy=value, experiment=experiment.id, arm=arm.name)
    return ReplicaArm(ttl_mode=value, experiment=experiment.id, arm=arm.name)
