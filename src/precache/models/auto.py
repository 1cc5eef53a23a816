"""``AutoPredictor``: pick, on the validation slice only, the predictor to ship.

Why: no single model wins on every trace (the attention network needs data; Markov/kNN are hard to
beat on small or strongly first-order traces). Auto fits the candidates on the training slice, scores
each -- and blends ``w * attention + (1 - w) * baseline`` of the attention model with each baseline --
on the validation slice (the end of the training period; never the test part), and ships the winner by
HR@5 (MRR@5 breaks ties). Besides fixed weights it tries learned gates (:class:`Gate`): mixing weights
``softmax(x @ theta)`` over 2-4 components (attention, markov, ppm, sknn) as a function of cheap per-query
features (history length; each component's top-1 probability, top-5 mass and head entropy), fitted by
maximising the validation log-likelihood. A gate's validation score is cross-fitted (a gate fit on one
half ranks the other half), so it competes honestly with the fixed weights; the shipped gate is refit on
the whole slice. The manifest records every candidate's validation numbers and the choice.
Two budgets bound what may ship: the files (``size_budget``, 1 MB: what a service or edge worker loads) and
the batch-1 serving cost (``latency_budget_us``: each component's thread-CPU cost is measured once after
fitting, and a candidate whose estimated cost passes the budget is refused; see ``AutoPredictor._latency``).
During the choice the baselines count the training slice only; once chosen, they are refit on training +
validation (their own default: the most recent sessions matter). The attention model uses the validation
slice for early stopping, which makes its validation score slightly optimistic; the test table shows it.
Edge fallback: a Worker runs n-gram tables (or, on the ORT Worker, the attention network), never a blend, a
gate or session-kNN, so an edge serves one of auto's shipped parts (:mod:`precache.edge.served`). When the
choice has no n-gram component (``attention+sknn@0.5`` on NASA Jul, ``sknn`` on DIGINETICA), auto also
ships the best n-gram baseline it fitted (candidate or blend partner), picked by the edge's own
one-standard-error rule (:mod:`precache.models.simplest`) on its validation HR@5 and refit on train +
validation like the components, so the default table Worker always has something to serve. It is never
used by auto's own predictions; its bytes count toward ``size_budget`` (no room: no fallback, and the
manifest's ``metrics.edge_fallback`` says why); ``edge_fallback=False`` switches it off.
The shipped lists' probabilities go through a monotone map of the top-1 (Platt by default, isotonic or none
when clearly better on held-out periods), so auto is calibrated even when it ships an uncalibrated baseline
or a blend. The map is fit on the validation lists when the slice has >= ``min_calibration_transitions``;
on smaller slices (small traces) on out-of-fold lists of the shipped configuration over the whole training
period (:mod:`precache.models.crossfit`), because a map fit on a few hundred transitions does not transfer.

Files: ``auto.json`` (choice, weight, gate parameters, component list with the sha256 of each component's manifest,
and the edge fallback's entry when there is one) and one sub-directory per shipped component (``component-<i>``)
and for the edge fallback (``edge-fallback``), each a normal model directory with its own manifest. The chain
of checksums (manifest -> auto.json -> component manifest -> component files) covers everything. Directories
saved before the fallback existed have no ``edge_fallback`` entry and load as they did.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from precache.evaluation import transitions
from precache.models.base import (
    ModelFileError,
    ModelFiles,
    PagePredictorBase,
    Prediction,
    check_k,
    sha256_file,
    write_json,
)
from precache.models.calibration import MAP_FITTERS, apply_isotonic, apply_platt, choose_map, ece
from precache.models.candidates import Candidates, fit_models, predict_all, refit, score_blends, score_gates
from precache.models.combine import Gate, blend, combined, gate_features, target_probabilities
from precache.models.crossfit import out_of_fold
from precache.models.kinds import build_predictor, load_predictor, register_predictor
from precache.models.latency import COST_HISTORIES, COST_REPEATS, predictor_cost_us, query_cost_us
from precache.models.ppm import NgramPredictor
from precache.models.simplest import Scored, simplest_within_one_se
from precache.scoring import ranking_scores
from precache.traces.model import Session

AUTO_FILE = "auto.json"
# 2: optional learned gate over 2+ components; 3: Platt or isotonic calibration map (and, additively, an
# optional ``edge_fallback`` entry: older readers ignore it, and it changes none of auto's predictions)
AUTO_FORMAT = 3
EDGE_FALLBACK_DIR = "edge-fallback"
FloatArray = npt.NDArray[np.float64]



BASELINES = ("markov-count", "markov", "ppm", "sknn", "popularity")
AUTO_FILE_ALLOWANCE = 16_384  # auto.json (gate parameters, calibration knots) and the manifests
# The served batch-1 p99 goal (InferenceEngine), and how far the typical (median) query must stay below it.
# Refusal line: an estimate of 667 µs. The largest shipped gates (four components on BMS-WebView-1 and
# NASA 1 Aug) estimated 263-367 µs in seven fits on the shared 2-core machine (the estimate moves by ~30%
# with load), so load would have to inflate it ~1.8x beyond the worst of those to flip a choice. A
# candidate refused at this line serves a median of ~950 µs or more (the estimate is ~0.7 of the served
# median: components timed alone run with warmer caches), i.e. a p99 far over the goal.
LATENCY_BUDGET_US = 1000.0
LATENCY_HEADROOM = 1.5


def components_of(candidate: str) -> list[str]:
    """The component kinds a candidate ships: ``gate(a+b)`` -> [a, b]; ``attention+ppm@0.5`` -> both."""
    name = candidate[len("gate(") : -1] if candidate.startswith("gate(") else candidate.partition("@")[0]
    return name.split("+")


def saved_size(model: PagePredictorBase) -> int:
    """Bytes on disk of the model's directory (what a service or an edge worker loads)."""
    with tempfile.TemporaryDirectory(prefix="precache-size-") as tmp:
        model.save(tmp)
        return model.size_bytes(tmp)


def best_baseline(results: Mapping[str, Mapping[str, float]], allowed: Sequence[str]) -> dict[str, Any] | None:
    """The best single baseline by validation HR@5 among those within the budget (auto's floor)."""
    names = [n for n in allowed if n in BASELINES]
    if not names:
        return None
    name = max(names, key=lambda n: (results[n]["hr5"], results[n]["mrr5"]))
    return {"name": name, "hr5": results[name]["hr5"]}


class AutoPredictor(PagePredictorBase):
    """Ships the validation winner among single models and attention blends."""

    kind = "auto"

    def __init__(
        self,
        name: str | None = None,
        candidates: Sequence[str] = ("markov-count", "markov", "ppm", "sknn", "attention"),
        blend_with: Sequence[str] = ("markov-count", "markov", "ppm", "sknn"),
        weights: Sequence[float] = (0.2, 0.35, 0.5, 0.65, 0.8),
        attention_options: Mapping[str, Any] | None = None,
        max_validation_transitions: int = 20_000,
        blend_depth: int = 50,
        gates: Sequence[str] = ("attention+ppm", "attention+markov", "attention+ppm+sknn",
                                "attention+markov+ppm+sknn", "attention+markov-count+ppm+sknn"),
        size_budget: int | None = 1_000_000,
        latency_budget_us: float | None = LATENCY_BUDGET_US,
        min_calibration_transitions: int = 5_000,
        calibration_folds: int = 5,
        edge_fallback: bool = True,
    ) -> None:
        super().__init__(name)
        self.candidates = list(candidates)
        self.blend_with = list(blend_with)
        self.weights = [float(w) for w in weights]
        self.attention_options = dict(attention_options or {})
        self.max_validation_transitions = int(max_validation_transitions)
        self.blend_depth = int(blend_depth)
        self.gates = [str(g) for g in gates]
        self.size_budget = size_budget
        self.latency_budget_us = None if latency_budget_us is None else float(latency_budget_us)
        self.min_calibration_transitions = int(min_calibration_transitions)
        self.calibration_folds = int(calibration_folds)
        self.ship_edge_fallback = bool(edge_fallback)
        # the n-gram model an edge serves when the choice has no n-gram component (never used by predict)
        self.edge_fallback: NgramPredictor | None = None
        self.gate: Gate | None = None
        self.components: list[PagePredictorBase] = []
        self.weight = 1.0
        self.choice = ""
        self.fitted_candidates: dict[str, PagePredictorBase] = {}  # after fit only (reports); never saved
        self.calibration_map: tuple[str, Any] | None = None  # ("isotonic", knots) | ("platt", (a, b))

    def _parameter(self, name: str) -> Any:
        # ``edge_fallback`` names the shipped model once fitted; the switch is ``ship_edge_fallback``
        return self.ship_edge_fallback if name == "edge_fallback" else getattr(self, name)

    @property
    def vocabulary_size(self) -> int:
        return max((c.vocabulary_size for c in self.components), default=0)

    @property
    def vocabulary(self) -> Any:
        """The first component's vocabulary (the engine uses it for its unknown-page fallback)."""
        return getattr(self.components[0], "vocabulary", None) if len(self.components) == 1 else None

    def fit(self, train: Sequence[Session], validation: Sequence[Session] | None = None) -> None:
        if not validation:
            cut = max(1, len(train) // 10)
            train, validation = list(train)[:-cut], list(train)[-cut:]
        pairs = list(transitions(validation, max_history=50))[: self.max_validation_transitions]
        if not pairs:
            raise ValueError("auto: the validation slice has no transitions to choose with")
        c = Candidates([h for h, _ in pairs], [t for _, t in pairs])
        fit_models(c, list(dict.fromkeys([*self.candidates, *self.blend_with])), self.candidates,
                   self.attention_options, train, validation, self.blend_depth)
        score_blends(c, self.blend_with, self.weights)
        score_gates(c, self.gates)
        if not c.results:
            raise ValueError(f"auto: no candidate could be fitted: {c.errors}")
        refit(c, train, validation)
        self._choose(c, train, validation)

    def _choose(self, c: Candidates, train: Sequence[Session], validation: Sequence[Session]) -> None:
        """The best validation HR@5 within the size and latency budgets; then calibration and the edge
        fallback, and the metrics that say why."""
        fitted, heads, results, histories, targets = c.fitted, c.heads, c.results, c.histories, c.targets
        sizes = {kind: saved_size(model) for kind, model in fitted.items()}
        budget = math.inf if self.size_budget is None else self.size_budget
        totals = {name: sum(sizes[k] for k in components_of(name)) + AUTO_FILE_ALLOWANCE for name in results}
        over = {name: total for name, total in totals.items() if total > budget}
        if len(over) == len(results):
            raise ValueError(f"auto: no candidate fits the size budget of {self.size_budget:,} bytes: {over}")
        latency = self._latency(fitted, heads, histories, [name for name in results if name not in over])
        slow = latency["over_latency_budget"]
        allowed = [name for name in results if name not in over and name not in slow]
        if not allowed:  # nothing is fast enough: ship the fastest of what fits the size budget, and say so
            allowed = [min(latency["estimate_us"], key=lambda name: (latency["estimate_us"][name], name))]
            latency["fallback"] = f"no candidate within the latency budget; shipped the cheapest ({allowed[0]})"
        best = max(allowed, key=lambda name: (results[name]["hr5"], results[name]["mrr5"]))
        self.choice = best
        self.gate = None
        if best.startswith("gate("):
            spec = best[len("gate(") : -1]
            kinds = spec.split("+")
            self.components = [fitted[kind] for kind in kinds]
            self.weight = 1.0
            component_heads = [heads[kind] for kind in kinds]
            self.gate = Gate.fit(gate_features(component_heads, histories),
                                 target_probabilities(component_heads, targets))
            chosen = c.gate_lists[spec]  # the cross-fitted lists: calibration sees honest confidences
        elif "+" in best:
            other, _, weight = best.partition("+")[2].partition("@")
            self.components = [fitted["attention"], fitted[other]]
            self.weight = float(weight)
            chosen = [blend(a, b, self.weight, 10) for a, b in zip(heads["attention"], heads[other], strict=True)]
        else:
            self.components = [fitted[best]]
            self.weight = 1.0
            chosen = heads[best]
        calibration = self._calibrate(train, validation, chosen, targets)
        edge_fallback = self._choose_edge_fallback(fitted, results, heads, targets, sizes, budget - totals[best])
        runner_up = sorted(allowed, key=lambda n: (-results[n]["hr5"], -results[n]["mrr5"]))[:3]
        top = ", ".join(f"{n}={results[n]['hr5']:.4f}" for n in runner_up)
        self.metrics = {
            "choice": best,
            "reason": f"highest validation HR@5 ({results[best]['hr5']:.4f}) of {len(allowed)} candidates within "
            f"the size budget ({len(over)} over it) and the latency budget ({len(slow)} over it); top: {top}",
            "validation": results,
            "skipped": c.errors,
            "calibration": calibration,
            "fit_seconds": c.fit_seconds,
            "component_bytes": sizes,
            "over_budget": over,
            "latency": latency,
            "edge_fallback": edge_fallback,
            "best_single_baseline": best_baseline(results, allowed),
            "components": {c.kind: c.metrics for c in self.components},
        }
        self.fitted_candidates = fitted
        self.fitted = True

    def _choose_edge_fallback(self, fitted: Mapping[str, PagePredictorBase], results: Mapping[str, Mapping[str, float]],
                              heads: Mapping[str, list[Prediction]], targets: list[str], sizes: Mapping[str, int],
                              room: float) -> dict[str, Any]:
        """Set ``self.edge_fallback`` when the choice has no n-gram component: among the n-gram models fitted
        (candidates and blend partners, already refit on train + validation), the one the edge's rule picks
        on their validation HR@5 (fitted on train only, like every candidate's), if its directory fits in
        ``room`` (what the size budget leaves beside the choice). Returns ``metrics["edge_fallback"]``."""
        self.edge_fallback = None
        if not self.ship_edge_fallback:
            return {"kind": None, "reason": "switched off (edge_fallback=False)"}
        shipped = [c.kind for c in self.components if isinstance(c, NgramPredictor)]
        if shipped:
            return {"kind": None, "reason": f"not needed: the choice has an n-gram component ({', '.join(shipped)})"}
        tables = {kind: model for kind, model in fitted.items() if isinstance(model, NgramPredictor)}
        if not tables:
            return {"kind": None, "reason": "the choice has no n-gram component and no n-gram model was fitted"}
        scores = {kind: dict(results[kind]) if kind in results else ranking_scores(heads[kind], targets)
                  for kind in tables}
        kinds = list(tables)
        pick, se = simplest_within_one_se([Scored(k, scores[k]["hr5"], scores[k]["transitions"]) for k in kinds])
        kind = kinds[pick]
        listed = ", ".join(f"{k} {scores[k]['hr5']:.4f}" for k in kinds)
        record: dict[str, Any] = {
            "kind": kind, "validation_hr5": scores[kind]["hr5"], "transitions": scores[kind]["transitions"],
            "standard_error": se, "validation": {k: scores[k]["hr5"] for k in kinds}, "bytes": sizes[kind],
            "reason": f"the choice has no n-gram component; the simplest n-gram model within one standard error "
                      f"({se:.4f}) of the best validation HR@5 ({listed})",
        }
        if sizes[kind] > room:
            return {**record, "kind": None, "candidate": kind,
                    "reason": f"{kind} ({sizes[kind]:,} bytes) does not fit the size budget beside the choice "
                              f"({max(room, 0.0):,.0f} bytes left)"}
        self.edge_fallback = tables[kind]
        return record

    def _latency(self, fitted: Mapping[str, PagePredictorBase], heads: Mapping[str, list[Prediction]],
                 histories: list[list[str]], candidates: Sequence[str]) -> dict[str, Any]:
        """Estimated batch-1 serving cost of each candidate, and those the latency budget refuses.

        The estimate is the sum of each shipped component's cost plus the cost of combining and
        calibrating their lists (:mod:`precache.models.latency`: per query the minimum thread-CPU time
        of ``COST_REPEATS`` runs, the median over ``COST_HISTORIES`` fixed validation histories). A
        candidate is refused when ``LATENCY_HEADROOM`` times its estimate passes ``latency_budget_us``
        (the served p99 goal): a guard against candidates clearly too slow for the goal, not a proof
        that an accepted one meets it (the served p99 is ~2-3x the estimate: p99/p50 was 1.7-2.3 in the
        engine, and the estimate is ~0.7 of the served median).

        Why this rule and not a timed p99 per candidate: the choice, and so the accuracy table, must
        not depend on the load while fitting. Each component is timed once, minima and medians are the
        statistics load moves least, and the refusal line sits far above the candidates it should accept
        (see ``LATENCY_BUDGET_US``), so only a candidate that is clearly too slow is refused. A tighter
        line (headroom 3, which would make the goal hold by construction) would put today's BMS gate
        within load noise of refusal, and the accuracy table would follow the machine's load.
        The estimates are recorded, so a refusal near the budget is visible in the model's metrics.
        """
        step = max(1, len(histories) // COST_HISTORIES)
        picks = list(range(0, len(histories), step))[:COST_HISTORIES]
        sample = [histories[i] for i in picks]
        component = {kind: round(predictor_cost_us(model, sample, self.blend_depth), 1)
                     for kind, model in fitted.items() if any(kind in components_of(n) for n in candidates)}
        combine: dict[str, float] = {}
        for name in candidates:
            shape = combination_of(name)
            if shape not in combine:
                lists = [[heads[kind][i] for i in picks] for kind in components_of(name)]
                combine[shape] = round(combine_cost_us(shape, lists, sample, self.blend_depth), 1)
        estimate = {name: round(sum(component[k] for k in components_of(name)) + combine[combination_of(name)], 1)
                    for name in candidates}
        budget = self.latency_budget_us
        slow = {} if budget is None else {n: e for n, e in estimate.items() if LATENCY_HEADROOM * e > budget}
        return {"budget_us": budget, "headroom": LATENCY_HEADROOM, "component_us": component,
                "combine_us": combine, "estimate_us": estimate, "over_latency_budget": slow,
                "statistic": f"thread-CPU µs, per query the minimum of {COST_REPEATS} runs (memo cleared), "
                f"median over {len(sample)} validation histories; refused when {LATENCY_HEADROOM:g} x "
                "estimate > budget"}

    def _calibrate(self, train: Sequence[Session], validation: Sequence[Session], chosen: list[Prediction],
                   targets: list[str]) -> dict[str, Any]:
        """Fit the calibration map on the validation lists when the slice has at least
        ``min_calibration_transitions``; on a smaller slice (small traces) on out-of-fold lists of the
        shipped configuration over train + validation (:func:`precache.models.crossfit.out_of_fold`),
        which gives every training transition as a calibration example. Falls back to the validation
        lists, and says so, when cross-fitting is impossible (too few sessions, a refit that fails)."""
        source, periods = "validation", None
        if len(targets) < self.min_calibration_transitions:
            try:
                chosen, targets, folds = out_of_fold([*train, *validation], self._refit_shipped,
                                                     self.calibration_folds, self.max_validation_transitions)
                source, periods = f"out-of-fold ({self.calibration_folds} folds over train + validation)", folds
            except (ImportError, ValueError) as exc:
                source = f"validation (cross-fitting impossible: {exc})"
        report = self._fit_calibration(chosen, targets, periods)
        report["source"] = source
        return report

    def _refit_shipped(self, sessions: Sequence[Session]) -> Any:
        """The shipped configuration (components, blend weight or gate) refit on ``sessions``; returns
        a function ranking histories with it, uncalibrated (for out-of-fold calibration lists)."""
        models = []
        for component in self.components:
            model = build_predictor(component.kind, **(self.attention_options if component.kind == "attention" else {}))
            if component.kind == "attention":  # early stopping on the most recent tenth, as in fit()
                cut = max(1, len(sessions) // 10)
                model.fit(sessions[:-cut], sessions[-cut:])
            else:
                model.fit(sessions)
            models.append(model)

        def rank(histories: list[list[str]]) -> list[Prediction]:
            depth = self.blend_depth if len(models) > 1 else 10
            return self._combine([predict_all(m, histories, depth) for m in models], histories, 10)

        return rank

    def _fit_calibration(self, chosen: list[Prediction], targets: list[str],
                         periods: Sequence[int] | None = None) -> dict[str, Any]:
        """A monotone map of the shipped lists' probabilities, fit on their top-1 (the chosen model may be
        an uncalibrated baseline or a blend, which have no logits to temperature-scale); which map is
        chosen by its ECE on held-out periods (:func:`precache.models.calibration.choose_map`;
        ``periods``: each list's cross-fitting fold, or contiguous blocks of the validation slice)."""
        confidence = np.array([r[0][1] if r else 0.0 for r in chosen])
        correct = np.array([bool(r) and r[0][0] == t for r, t in zip(chosen, targets, strict=True)])
        method, params, held = choose_map(confidence, correct, None if periods is None else np.asarray(periods))
        self.calibration_map = (method, params) if method != "none" else None
        return {"validation_ece_before": ece(confidence, correct), "method": method, "held_period_ece": held,
                "validation_ece_after": ece(MAP_FITTERS[method][1](confidence, params), correct),
                "transitions": len(targets)}

    def _calibrated(self, ranked: Prediction) -> Prediction:
        return calibrated(ranked, self.calibration_map)

    def _predict(self, history: Sequence[str], k: int) -> Prediction:
        return self.predict_batch([history], k)[0]

    def predict_batch(self, histories: Sequence[Sequence[str]], k: int) -> list[Prediction]:
        k = check_k(k)
        if not self.fitted:
            raise RuntimeError(f"{self.name}: predict_batch() before fit() or load()")
        depth = k if len(self.components) == 1 else max(k, self.blend_depth)
        heads = [c.predict_batch(histories, depth) for c in self.components]
        return [self._calibrated(r) for r in self._combine(heads, histories, k)]

    def _combine(self, heads: Sequence[Sequence[Prediction]], histories: Sequence[Sequence[str]],
                 k: int) -> list[Prediction]:
        """The shipped combination of the components' lists: the single list, the gate's or the blend's."""
        return combined(heads, histories, self.gate, self.weight, k)

    def _save_files(self, directory: Path) -> list[str]:
        def saved(model: PagePredictorBase, name: str) -> dict[str, str]:
            sub = directory / name
            if sub.exists():
                shutil.rmtree(sub)
            model.save(sub)
            return {"dir": name, "kind": model.kind, "manifest_sha256": sha256_file(sub / "manifest.json")}

        description = {
            "auto_format": AUTO_FORMAT, "choice": self.choice, "weight": self.weight,
            "components": [saved(component, f"component-{i}") for i, component in enumerate(self.components)],
            "calibration": None if self.calibration_map is None else {
                "method": self.calibration_map[0], "params": self.calibration_map[1]},
            "gate": None if self.gate is None else self.gate.as_dict(),
        }
        if (directory / EDGE_FALLBACK_DIR).exists():
            shutil.rmtree(directory / EDGE_FALLBACK_DIR)
        if self.edge_fallback is not None:  # absent otherwise: the layout of directories saved before it existed
            description["edge_fallback"] = saved(self.edge_fallback, EDGE_FALLBACK_DIR)
        write_json(directory / AUTO_FILE, description)
        return [AUTO_FILE]

    def _load_files(self, files: ModelFiles) -> None:
        """Components through the one loading path, each pinned by its manifest's sha256 in auto.json;
        the combination (blend weight, gate shape, isotonic knots) must fit the components."""
        data = files.read_json(AUTO_FILE)
        if not isinstance(data, dict) or not isinstance(data.get("components"), list):
            raise ModelFileError(f"{files.root / AUTO_FILE}: not an auto model description")
        version = data.get("auto_format", 0)
        if not isinstance(version, int) or version > AUTO_FORMAT:
            raise ModelFileError(f"{files.root}: auto format {version!r} is newer than supported")
        components = []
        for entry in data["components"]:
            if not isinstance(entry, dict):
                raise ModelFileError(f"{files.root / AUTO_FILE}: bad component entry {entry!r}")
            sub = files.subdirectory(entry.get("dir"), entry.get("manifest_sha256"))
            components.append(load_predictor(sub))
        if not components:
            raise ModelFileError(f"{files.root}: auto model without components")
        self.components = components
        self.weight = float(data["weight"])
        self.choice = str(data["choice"])
        try:
            self.calibration_map = _calibration_map(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{files.root / AUTO_FILE}: bad calibration map: {exc}") from exc
        gate = data.get("gate")
        self.gate = Gate.from_dict(gate) if isinstance(gate, dict) else None
        self.edge_fallback = _edge_fallback(files, data.get("edge_fallback"))
        self._check_parts(files.root)

    def _check_parts(self, where: Path) -> None:
        n = len(self.components)
        if self.gate is not None:
            rows = 2 + 3 * n
            shapes = (self.gate.theta.shape, self.gate.mean.shape, self.gate.std.shape)
            if n < 2 or shapes != ((rows, n), (rows,), (rows,)) or not np.all(np.isfinite(self.gate.theta)):
                raise ModelFileError(f"{where}: gate {shapes[0]} does not fit {n} components")
        elif n > 2 or not 0.0 <= self.weight <= 1.0:
            raise ModelFileError(f"{where}: {n} components with blend weight {self.weight} (no gate)")
        if self.calibration_map is not None and self.calibration_map[0] == "isotonic":
            xs, ys = np.asarray(self.calibration_map[1][0]), np.asarray(self.calibration_map[1][1])
            if (
                len(xs) != len(ys) or len(xs) < 2 or not np.all(np.isfinite(xs) & np.isfinite(ys))
                or np.any(np.diff(xs) < -1e-9) or np.any((ys < 0) | (ys > 1))
            ):
                raise ModelFileError(f"{where}: the isotonic calibration map is malformed")
        if self.calibration_map is not None and self.calibration_map[0] == "platt" and not all(
                math.isfinite(v) for v in self.calibration_map[1]):
            raise ModelFileError(f"{where}: the Platt calibration map is malformed")


def part_entries(description: Any) -> list[dict[str, Any]]:
    """The sub-directory entries of an ``auto.json`` (``{"dir", "kind", "manifest_sha256"}``): its components,
    then its edge fallback when it ships one. Whoever must reach every file of an auto directory (the
    service's model-file endpoint) reads the layout here, so a new kind of part reaches it too. Malformed
    entries are skipped: loading (``_load_files``) is what refuses them."""
    if not isinstance(description, dict):
        return []
    components = description.get("components")
    entries = [*(components if isinstance(components, list) else []), description.get("edge_fallback")]
    return [entry for entry in entries if isinstance(entry, dict)]


def _edge_fallback(files: ModelFiles, entry: Any) -> NgramPredictor | None:
    """The edge fallback an auto.json names (through the one loading path, pinned by its manifest's sha256),
    or None when it names none (directories saved before the fallback existed)."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ModelFileError(f"{files.root / AUTO_FILE}: bad edge_fallback entry {entry!r}")
    model = load_predictor(files.subdirectory(entry.get("dir"), entry.get("manifest_sha256")))
    if not isinstance(model, NgramPredictor) or model.kind != entry.get("kind"):
        raise ModelFileError(f"{files.root}: the edge fallback must be the n-gram model auto.json names, "
                             f"not a {model.kind!r} model")
    return model


def calibrated(ranked: Prediction, calibration_map: tuple[str, Any] | None) -> Prediction:
    """A shipped list through the calibration map (Platt or isotonic of each probability)."""
    if calibration_map is None or not ranked:
        return ranked
    method, params = calibration_map
    probabilities = np.array([p for _, p in ranked])
    mapped = apply_isotonic(probabilities, params) if method == "isotonic" else apply_platt(probabilities, params)
    total = float(mapped.sum())
    if total > 1.0:  # keep a distribution: the listed pages cannot hold more than all the mass
        mapped = mapped / total
    return [(page, p) for (page, _), p in zip(ranked, mapped.tolist(), strict=True)]


def combination_of(candidate: str) -> str:
    """How a candidate combines its components: ``single``, ``blend`` or ``gate<n>`` (its serving cost)."""
    if candidate.startswith("gate("):
        return f"gate{len(components_of(candidate))}"
    return "blend" if "+" in candidate else "single"


def combine_cost_us(shape: str, lists: Sequence[Sequence[Prediction]], histories: Sequence[Sequence[str]],
                    depth: int, k: int = 10) -> float:
    """Batch-1 cost of combining and calibrating components' lists the way ``shape`` does (a neutral gate
    or blend weight, and a Platt map: the cost does not depend on the parameters' values)."""
    n = len(lists)
    rows = 2 + 3 * n
    gate = Gate(np.zeros((rows, n)), np.zeros(rows), np.ones(rows)) if shape.startswith("gate") else None

    def run(i: int) -> None:
        heads = [[component[i][:depth]] for component in lists]
        calibrated(combined(heads, [histories[i]], gate, 0.5, k)[0], ("platt", (1.0, 0.0)))

    return query_cost_us(run, len(histories))


def _calibration_map(data: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The calibration map of an auto.json: format 3's {"method", "params"}, or format 2's isotonic knots."""
    entry = data.get("calibration")
    if isinstance(entry, dict) and entry.get("method") == "platt":
        a, b = entry["params"]
        return "platt", (float(a), float(b))
    if isinstance(entry, dict) and entry.get("method") == "isotonic":
        xs, ys = entry["params"]
        return "isotonic", (list(map(float, xs)), list(map(float, ys)))
    iso = data.get("isotonic")
    if isinstance(iso, dict):
        return "isotonic", (list(map(float, iso["x"])), list(map(float, iso["y"])))
    return None


register_predictor("auto", AutoPredictor)
