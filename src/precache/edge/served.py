"""What the edge serves for a model: the model itself, or -- for ``auto`` -- its best edge-servable part.

Why a component and not auto itself. A Worker runs one of two things exactly: top-k tables of an n-gram
predictor (markov, markov-count, ppm, popularity; the table Worker, exact) or the attention network (the
ORT Worker, within 1e-5). Auto's answer is neither when it combines components:

- a learned gate weighs its components per query by features of the query (history length, each
  component's top-1 probability, head mass and entropy), so its answer is not a function of an n-gram
  context and no per-context table reproduces it;
- its fixed blends all pair the attention network with a baseline (``attention+ppm@0.5``): no table
  reproduces them and the ORT Worker does not blend.

So the edge serves one of auto's shipped parts, chosen on auto's own evidence -- the validation HR@5 it
recorded for every candidate when it chose (``metrics.validation[kind]``: fitted on the training slice,
scored on the same validation slice, with the number of transitions) -- among those the configured Worker
can run (n-gram components on the table Worker; those and the attention component on the ORT Worker), by
the one-standard-error rule (:mod:`precache.models.simplest`, the one auto uses too): the *simplest*
(popularity < markov-count < markov < ppm < attention) whose HR@5 is within one standard error,
``sqrt(p (1 - p) / n)``, of the best one's. A single-component auto is that component. Components auto
did not score on their own (a custom candidate list) are considered only when none was scored.

An auto whose choice has no n-gram component (``attention+sknn@0.5``, ``sknn``) ships an **edge
fallback** (``AutoPredictor.edge_fallback``, directory ``edge-fallback``): the n-gram baseline auto picked
for the edge by the same rule, refit like the components and never used by auto's own predictions. It is
considered like a component (its validation HR@5 is in ``metrics.edge_fallback``), so the table Worker
serves it and the ORT Worker serves it unless attention is more than one standard error better. Auto
without any servable part (a directory saved before the fallback existed, or one whose fallback did not
fit the size budget, with the table Worker) publishes nothing: the Workers keep the model they have, and
the reason says why.

What is served is said plainly: the edge manifest carries ``served`` (the part's kind) and ``of``
("auto"), the part's validation HR@5 next to auto's, its directory and the reason. The served predictions
are the part's own, probabilities included: auto's calibration map was fit on auto's combined lists, not
on a component's (for a single-component auto the ranking is auto's exactly; only the probabilities
differ).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ONNX_KINDS = ("attention",)
FALLBACK_REASON = "edge fallback: auto's choice has no n-gram component"


class NothingServable(ValueError):
    """No Worker of the requested kind can serve any part of the model (the message says why)."""


@dataclass(frozen=True, slots=True)
class Served:
    """The predictor to export and for which Worker, and -- for a part of auto -- where it came from."""

    predictor: Any
    worker: str  # "table" | "ort"
    kind: str  # the exported predictor's kind
    of: str | None = None  # "auto" when a part of an auto model is served
    component: int | None = None  # its index in auto's component list (None: auto's edge fallback)
    validation_hr5: float | None = None  # the served part's validation HR@5, as auto recorded it
    of_choice: str | None = None  # auto's choice, e.g. "gate(attention+markov-count+ppm+sknn)"
    of_validation_hr5: float | None = None  # auto's own validation HR@5 (its choice's)
    reason: str = ""
    part: str | None = None  # its directory inside auto's: "component-<i>" or "edge-fallback"

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


def worker_for_component(component: Any, worker: str) -> str | None:
    """Which Worker runs ``component`` when ``worker`` is deployed: tables run on both, attention only on ORT."""
    from precache.models.ppm import NgramPredictor

    if isinstance(component, NgramPredictor):
        return "table"
    if worker == "ort" and getattr(component, "kind", None) in ONNX_KINDS:
        return "ort"
    return None


@dataclass(frozen=True, slots=True)
class _Part:
    """A servable part of an auto model: a component or the edge fallback, with its recorded score."""

    model: Any
    runs_on: str
    directory: str
    index: int | None
    hr5: float | None
    transitions: float | None


def _parts(predictor: Any, validation: Any, worker: str) -> list[_Part]:
    """Auto's components the ``worker`` Worker can run, then its edge fallback, scored by the record auto
    wrote for it (``metrics.edge_fallback``: a blend partner has no ``metrics.validation`` entry of its own)."""
    from precache.models.auto import EDGE_FALLBACK_DIR

    parts = [_Part(c, w, f"component-{i}", i, _hr5(validation, c.kind), _number(validation, c.kind, "transitions"))
             for i, c in enumerate(getattr(predictor, "components", ()))
             if (w := worker_for_component(c, worker)) is not None]
    fallback = getattr(predictor, "edge_fallback", None)
    if fallback is not None and (w := worker_for_component(fallback, worker)) is not None:
        record = (getattr(predictor, "metrics", None) or {}).get("edge_fallback")
        scores = validation
        if isinstance(record, Mapping) and record.get("kind") == fallback.kind:
            scores = {fallback.kind: {"hr5": record.get("validation_hr5"), "transitions": record.get("transitions")}}
        parts.append(_Part(fallback, w, EDGE_FALLBACK_DIR, None, _hr5(scores, fallback.kind),
                           _number(scores, fallback.kind, "transitions")))
    return parts


def served_form(predictor: Any, worker: str) -> Served:
    """What a ``worker`` ("table" or "ort") Worker serves for ``predictor``: itself, unless it is auto."""
    from precache.models.simplest import Scored, simplest_within_one_se

    kind = str(getattr(predictor, "kind", type(predictor).__name__))
    if kind != "auto":
        return Served(predictor, worker, kind)
    components: Sequence[Any] = getattr(predictor, "components", ())
    metrics = getattr(predictor, "metrics", None) or {}
    validation = metrics.get("validation") if isinstance(metrics, Mapping) else None
    choice = str(getattr(predictor, "choice", "") or metrics.get("choice", "") or "?")
    own = _hr5(validation, choice)
    kinds = [str(getattr(c, "kind", "?")) for c in components]
    parts = _parts(predictor, validation, worker)
    if not parts:
        hint = (" (the attention component needs the ORT Worker: --worker ort, MODEL_EDGE_WORKER=ort)"
                if worker == "table" and any(k in ONNX_KINDS for k in kinds) else "")
        raise NothingServable(f"auto ({choice}) has no component the {worker} Worker can serve: its components are "
                              f"{', '.join(kinds)}, and it ships no edge fallback; only n-gram models (markov, "
                              f"markov-count, ppm, popularity) become tables{hint}")

    pick, se = simplest_within_one_se([Scored(p.model.kind, p.hr5, p.transitions) for p in parts])
    part = parts[pick]
    listed = ", ".join(f"{p.model.kind}{'' if p.index is not None else ' (edge fallback)'} "
                       f"{'n/a' if p.hr5 is None else f'{p.hr5:.4f}'}" for p in parts)
    rule = (f"the simplest the {worker} Worker can run within one standard error ({se:.4f}) of the best "
            f"validation HR@5 ({listed}; auto {'n/a' if own is None else f'{own:.4f}'})")
    if part.index is None:
        why = f"{FALLBACK_REASON} ({choice}); serving the {part.model.kind} auto ships for the edge, {rule}"
    elif len(components) == 1:
        why = f"auto ships the single component {part.model.kind}" + ("" if len(parts) == 1 else f"; {rule}")
    else:
        why = f"auto's {choice} cannot run at the edge; serving {rule}"
    return Served(part.model, part.runs_on, str(part.model.kind), of="auto", component=part.index,
                  validation_hr5=part.hr5, of_choice=choice, of_validation_hr5=own, reason=why, part=part.directory)
