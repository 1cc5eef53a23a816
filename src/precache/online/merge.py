"""Merging the frozen model's ranking with the online counts, and the online predictor that does it.

Why an evidence-weighted mixture: ``P(x | h) = (1 - lam) * P_frozen(x | h) + lam * P_live(x | last)`` with
``lam = weight * n / (n + evidence)``, where ``n`` is the live row's decayed count. A context the live state
has seen a lot (recent traffic) pulls the answer toward what visitors do *now*; a context it has seen once
or never leaves the frozen model in charge (``lam`` ~ 0), so a trace that does not drift keeps the frozen
accuracy. ``weight``, ``evidence`` and the half-life are chosen on the training period
(:func:`precache.online.prequential.choose`), never on test.

``P_live`` is the row's shares (a distribution over the successors kept), so the mixture is a distribution
whose top-k probabilities still sum to at most 1. The mixture is not calibrated as a whole, so the online
answer goes through a monotone map of its own (``calibration``: :mod:`precache.online.calibration`), fit on
the same validation walk that chooses the rest; :meth:`MergeParams.answer` is merge then map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from precache.models.base import BatchPredictor
from precache.models.combine import blend_many
from precache.online.calibration import OnlineMap, apply_map, map_from_json, map_to_json
from precache.online.guards import ContributionGuard
from precache.online.state import OnlineCounts
from precache.types import Prediction

LIVE_DEPTH = 20
FROZEN_DEPTH = 50


@dataclass(frozen=True, slots=True)
class MergeParams:
    """How much the live counts may move an answer, and the map of the merged answer (see the module doc)."""

    weight: float = 0.5
    evidence: float = 5.0
    half_life: float | None = None
    calibration: OnlineMap | None = None  # the merged lists' map (:mod:`precache.online.calibration`); None: none

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {self.weight}")
        if not self.evidence > 0:
            raise ValueError(f"evidence must be > 0, got {self.evidence}")
        if self.half_life is not None and not self.half_life > 0:
            raise ValueError(f"half_life must be > 0 or None, got {self.half_life}")

    def lam(self, n: float) -> float:
        return self.weight * n / (n + self.evidence) if n > 0 else 0.0

    def answer(self, frozen: Prediction, live: Prediction, n: float, k: int) -> Prediction:
        """The online answer: ``frozen`` merged with the live row (evidence ``n``), then the map."""
        out = merged(frozen, live, self.lam(n), k)
        return apply_map(out, self.calibration) if self.calibration is not None else out

    def as_dict(self) -> dict[str, Any]:
        """JSON form (what a model's manifest stores): the map as ``{"method": ..., "params": ...}`` or null."""
        return {"weight": self.weight, "evidence": self.evidence, "half_life": self.half_life,
                "calibration": map_to_json(self.calibration)}

    @classmethod
    def from_dict(cls, data: Any) -> MergeParams:
        """The inverse of :meth:`as_dict`, checked (ValueError naming what is wrong)."""
        if not isinstance(data, dict):
            raise ValueError(f"online settings must be an object, got {type(data).__name__}")
        try:
            half_life = data.get("half_life")
            return cls(float(data["weight"]), float(data["evidence"]),
                       None if half_life is None else float(half_life), map_from_json(data.get("calibration")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"online settings {data!r}: missing or malformed {exc}") from None


def merged(frozen: Prediction, live: Prediction, lam: float, k: int) -> Prediction:
    """``(1 - lam) * frozen + lam * live`` over both lists' pages, best first."""
    if lam <= 0.0 or not live:
        return list(frozen[:k])
    if not frozen:
        return list(live[:k])
    return blend_many((frozen, live), (1.0 - lam, lam), k)


def counts_only(row: Prediction, popularity: Prediction, k: int) -> Prediction:
    """Count Markov from live counts: the row's shares, the rest filled in popularity order with
    probability 0 (as the frozen ``markov-count``); an unseen row answers popularity's shares."""
    if not row:
        return list(popularity[:k])
    listed = {page for page, _ in row}
    return [*row[:k], *((page, 0.0) for page, _ in popularity if page not in listed)][:k]


class OnlinePredictor:
    """A frozen predictor (or none: live counts alone) plus the online counts, learning test-then-learn.

    ``predict`` reads; ``observe`` learns one transition after the caller has scored or served it. The
    guard (per-session and per-client caps, the bot filter) decides what is learned.
    """

    def __init__(self, frozen: BatchPredictor | None, state: OnlineCounts, params: MergeParams,
                 guard: ContributionGuard | None = None) -> None:
        self.frozen = frozen
        self.state = state
        self.params = params
        self.guard = guard
        self.name = f"online({getattr(frozen, 'name', 'counts')})"

    def live(self, history: Sequence[str], now: float) -> tuple[Prediction, float]:
        return self.state.head(history[-1], LIVE_DEPTH, now) if history else ([], 0.0)

    def predict_batch(self, histories: Sequence[Sequence[str]], k: int, now: float) -> list[Prediction]:
        depth = max(k, FROZEN_DEPTH)
        frozen = self.frozen.predict_batch(histories, depth) if self.frozen is not None else None
        out: list[Prediction] = []
        popularity: Prediction | None = None
        for i, history in enumerate(histories):
            row, n = self.live(history, now)
            if frozen is None:
                if popularity is None:
                    popularity = self.state.head(None, max(k, LIVE_DEPTH), now)[0]
                out.append(counts_only(row, popularity, k))
            else:
                out.append(self.params.answer(frozen[i], row, n, k))
        return out

    def predict(self, history: Sequence[str], k: int, now: float) -> Prediction:
        return self.predict_batch([history], k, now)[0]

    def observe(self, previous: str | None, page: str, t: float, *, session: str = "", client: str = "",
                agent: str | None = None) -> bool:
        """Learn ``previous -> page`` seen at ``t`` unless the guard refuses it; True when learned."""
        if previous is None:
            return False
        if self.guard is not None and not self.guard.allow(session, client, previous, page, t, agent):
            return False
        self.state.add(previous, page, t)
        return True

