"""What the edge serves for a model: the model itself, or -- for ``auto`` -- its best edge-servable component.

Why a component and not auto itself. A Worker runs one of two things exactly: top-k tables of an n-gram
predictor (markov, markov-count, ppm, popularity; the table Worker, exact) or the attention network (the
ORT Worker, within 1e-5). Auto's answer is neither when it combines components:

- a learned gate weighs its components per query by features of the query (history length, each
  component's top-1 probability, head mass and entropy), so its answer is not a function of an n-gram
  context and no per-context table reproduces it;
- its fixed blends all pair the attention network with a baseline (``attention+ppm@0.5``): no table
  reproduces them and the ORT Worker does not blend.

So the edge serves one of auto's shipped components, and the choice is auto's own evidence: the component
with the best validation HR@5 that auto recorded for it when it chose (``metrics.validation[kind].hr5``:
every candidate scored on the same validation slice, fitted on the training slice only), among those the
configured Worker can run -- n-gram components for the table Worker; those and the attention component for
the ORT Worker, where attention must beat the best n-gram component by ``ORT_MARGIN`` (its validation
score is optimistic, a table is exact and cheaper). A single-component auto is that component. A
component auto did not score on its own (a custom candidate list) ranks after the scored ones.
Auto with no servable component (a gate of attention + session-kNN and the table Worker) publishes
nothing: the Workers keep the model they have, and the reason says why.

What is served is said plainly: the edge manifest carries ``served`` (the component's kind) and ``of``
("auto"), the component's validation HR@5 next to auto's, and the reason. The served predictions are the
component's own, probabilities included: auto's calibration map was fit on auto's combined lists, not on a
component's (for a single-component auto the ranking is auto's exactly; only the probabilities differ).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ONNX_KINDS = ("attention",)
# The attention component replaces the best n-gram table on the ORT Worker only when its validation HR@5 is
# at least this much higher: it early-stops on that slice, so its score there is optimistic (BMS-WebView-1:
# validation 0.601 vs PPM 0.600, test 0.549 vs 0.553), and a table is exact and several times faster.
ORT_MARGIN = 0.005


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


def _hr5(validation: Any, name: str | None) -> float | None:
    entry = validation.get(name) if isinstance(validation, Mapping) and name else None
    value = entry.get("hr5") if isinstance(entry, Mapping) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _score(validation: Any, kind: str) -> float:
    """A component's validation HR@5 for ranking; unscored components rank last."""
    hr5 = _hr5(validation, kind)
    return -1.0 if hr5 is None else hr5


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

    def best(kinds: str) -> tuple[int, Any, str] | None:
        chosen = [o for o in options if o[2] == kinds]
        return max(chosen, key=lambda o: (_score(validation, o[1].kind), -o[0]), default=None)

    table, network = best("table"), best("ort")
    pick = table
    if network is not None and (table is None or _score(validation, network[1].kind)
                                >= _score(validation, table[1].kind) + ORT_MARGIN):
        pick = network
    assert pick is not None  # options is not empty
    index, component, runs_on = pick
    hr5 = _hr5(validation, component.kind)
    if len(components) == 1:
        why = f"auto ships the single component {component.kind}"
    else:
        scored = ", ".join(f"{c.kind} {'n/a' if (s := _hr5(validation, c.kind)) is None else f'{s:.4f}'}"
                           for _, c, _ in options)
        margin = (f", attention needing {ORT_MARGIN * 100:g} points more than the best table"
                  if table is not None and network is not None else "")
        why = (f"auto's {choice} cannot run at the edge; serving its component with the best validation HR@5 "
               f"the {worker} Worker can run{margin} ({scored}; auto {'n/a' if own is None else f'{own:.4f}'})")
    return Served(component, runs_on, str(component.kind), of="auto", component=index, validation_hr5=hr5,
                  of_choice=choice, of_validation_hr5=own, reason=why)
