"""What the edge serves for a model: the model itself, or -- for ``auto`` -- its best edge-servable component.

Why a component and not auto itself. A Worker runs one of two things exactly: top-k tables of an n-gram
predictor (markov, markov-count, ppm, popularity; the table Worker, exact) or the attention network (the
ORT Worker, within 1e-5). Auto's answer is neither when it combines components:

- a learned gate weighs its components per query by features of the query (history length, each
  component's top-1 probability, head mass and entropy), so its answer is not a function of an n-gram
  context and no per-context table reproduces it;
- its fixed blends all pair the attention network with a baseline (``attention+ppm@0.5``): no table
  reproduces them and the ORT Worker does not blend.

So the edge serves one of auto's shipped components, chosen on auto's own evidence -- the validation HR@5
it recorded for every candidate when it chose (``metrics.validation[kind]``: fitted on the training slice,
scored on the same validation slice, with the number of transitions) -- among those the configured Worker
can run (n-gram components on the table Worker; those and the attention component on the ORT Worker), by
the one-standard-error rule: the *simplest* component (popularity < markov-count < markov < ppm <
attention) whose HR@5 is within one standard error, ``sqrt(p (1 - p) / n)``, of the best one's. Why
simplest: validation differences smaller than that are noise (NASA 1 Aug: PPM 0.441 vs markov-count 0.440 on
621 transitions, then 0.446 vs 0.455 on test), the attention score is optimistic (it early-stops on that
slice), and a simpler component is a smaller table (first-order: one row per page) or no ORT runtime at
all. A single-component auto is that component. Components auto did not score on their own (a custom
candidate list) are considered only when none was scored.
Auto with no servable component (a gate of attention + session-kNN and the table Worker) publishes
nothing: the Workers keep the model they have, and the reason says why.

What is served is said plainly: the edge manifest carries ``served`` (the component's kind) and ``of``
("auto"), the component's validation HR@5 next to auto's, and the reason. The served predictions are the
component's own, probabilities included: auto's calibration map was fit on auto's combined lists, not on a
component's (for a single-component auto the ranking is auto's exactly; only the probabilities differ).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ONNX_KINDS = ("attention",)
# Simplest first: the edge cost (table size, runtime) and the capacity to fit validation noise both grow.
COMPLEXITY = {"popularity": 0, "markov-count": 1, "markov": 2, "ppm": 3, "attention": 4}


class NothingServable(ValueError):
    """No Worker of the requested kind can serve any part of the model (the message says why)."""


@dataclass(frozen=True, slots=True)
class Served:
    """The predictor to export and for which Worker, and -- for a component of auto -- where it came from."""

    predictor: Any
    worker: str  # "table" | "ort"
    kind: str  # the exported predictor's kind
    of: str | None = None  # "auto" when a component of an auto model is served
    component: int | None = None  # its index in auto's component list (its directory component-<i>)
    validation_hr5: float | None = None  # the served component's validation HR@5, as auto recorded it
    of_choice: str | None = None  # auto's choice, e.g. "gate(attention+markov-count+ppm+sknn)"
    of_validation_hr5: float | None = None  # auto's own validation HR@5 (its choice's)
    reason: str = ""

    def manifest_fields(self) -> dict[str, Any]:
        """The edge manifest's additions for a derived export (none for a model served as it is)."""
        if self.of is None:
            return {}
        return {"served": self.kind, "of": self.of}


def _number(validation: Any, name: str | None, key: str) -> float | None:
    entry = validation.get(name) if isinstance(validation, Mapping) and name else None
    value = entry.get(key) if isinstance(entry, Mapping) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _hr5(validation: Any, name: str | None) -> float | None:
    return _number(validation, name, "hr5")


def one_standard_error(hr5: float, transitions: float | None) -> float:
    """The standard error of a hit rate measured on ``transitions`` queries (0 when the count is unknown)."""
    return math.sqrt(hr5 * (1.0 - hr5) / transitions) if transitions else 0.0


def worker_for_component(component: Any, worker: str) -> str | None:
    """Which Worker runs ``component`` when ``worker`` is deployed: tables run on both, attention only on ORT."""
    from precache.models.ppm import NgramPredictor

    if isinstance(component, NgramPredictor):
        return "table"
    if worker == "ort" and getattr(component, "kind", None) in ONNX_KINDS:
        return "ort"
    return None


def served_form(predictor: Any, worker: str) -> Served:
    """What a ``worker`` ("table" or "ort") Worker serves for ``predictor``: itself, unless it is auto."""
    kind = str(getattr(predictor, "kind", type(predictor).__name__))
    if kind != "auto":
        return Served(predictor, worker, kind)
    components: Sequence[Any] = getattr(predictor, "components", ())
    metrics = getattr(predictor, "metrics", None) or {}
    validation = metrics.get("validation") if isinstance(metrics, Mapping) else None
    choice = str(getattr(predictor, "choice", "") or metrics.get("choice", "") or "?")
    own = _hr5(validation, choice)
    kinds = [str(getattr(c, "kind", "?")) for c in components]
    options = [(i, c, w) for i, c in enumerate(components) if (w := worker_for_component(c, worker)) is not None]
    if not options:
        hint = (" (the attention component needs the ORT Worker: --worker ort, MODEL_EDGE_WORKER=ort)"
                if worker == "table" and any(k in ONNX_KINDS for k in kinds) else "")
        raise NothingServable(f"auto ({choice}) has no component the {worker} Worker can serve: its components are "
                              f"{', '.join(kinds)}; only n-gram components (markov, markov-count, ppm, popularity) "
                              f"become tables{hint}")

    scored = [(i, c, w, h) for i, c, w in options if (h := _hr5(validation, c.kind)) is not None]
    eligible, se = [(i, c, w, 0.0) for i, c, w in options], 0.0
    if scored:
        _, leader, _, best = max(scored, key=lambda o: o[3])
        se = one_standard_error(best, _number(validation, leader.kind, "transitions"))
        eligible = [o for o in scored if o[3] >= best - se - 1e-12]
    simplest = min(eligible, key=lambda o: (COMPLEXITY.get(o[1].kind, COMPLEXITY["ppm"]), -o[3], o[0]))
    index, component, runs_on, _ = simplest
    hr5 = _hr5(validation, component.kind)
    if len(components) == 1:
        why = f"auto ships the single component {component.kind}"
    else:
        listed = ", ".join(f"{c.kind} {'n/a' if (h := _hr5(validation, c.kind)) is None else f'{h:.4f}'}"
                           for _, c, _ in options)
        why = (f"auto's {choice} cannot run at the edge; serving the simplest component within one standard "
               f"error ({se:.4f}) of the best validation HR@5 the {worker} Worker can run ({listed}; auto "
               f"{'n/a' if own is None else f'{own:.4f}'})")
    return Served(component, runs_on, str(component.kind), of="auto", component=index, validation_hr5=hr5,
                  of_choice=choice, of_validation_hr5=own, reason=why)
