"""``precache edge build``: pick the model, export it for a worker, say what the trade is.

Sources, in order of preference: a model directory (``--model``), a predictor trained for the edge on a
trace (``--trace`` with ``--kind markov|ppm``; fitted on the training slice, scored on the validation
slice of the evaluation protocol), or the registry's active ``page-predictor``. The result is written to
``--out`` (for ``wrangler deploy`` to bundle) and/or published next to the registry's active version
(``--publish``: the edge files the service serves to syncing Workers). Only n-gram predictors (markov,
markov-count, ppm, popularity) can be tables; attention needs the ORT worker; an ``auto`` model is served
as its best edge-servable component (:mod:`precache.edge.served`); anything else is refused with a clear
error (exit 2). :func:`export_model` is the one path of both ``precache edge build`` and activation.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from precache.defaults import PAGE_PREDICTOR
from precache.edge.manifest import EdgeExport, source_metric
from precache.edge.served import ONNX_KINDS, Served, served_form
from precache.edge.tables import DEFAULT_K

WORKERS = ("table", "ort")
TABLE_KINDS = ("markov", "ppm")  # --kind choices; any n-gram predictor (popularity too) exports
REGISTRY_NAME = PAGE_PREDICTOR


class EdgeBuildError(ValueError):
    """The model cannot be exported for the requested worker (the CLI prints it and exits 2)."""


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One line of the build's report: which model and its HR@5 (None when unknown) on ``slice``:
    "validation" (the protocol's validation slice) or "held-out" (the registry pipeline's test slice)."""

    kind: str
    version: str
    hr5: float | None
    where: str
    slice: str = "validation"


def model_hr5(metrics: Mapping[str, Any]) -> tuple[float | None, str]:
    """The HR@5 a model manifest or registry record carries, and on which slice."""
    value = source_metric(metrics, ("validation_hr5",), ("validation", "hr5"), ("validation", "hr@5"))
    if value is not None:
        return value, "validation"
    held_out = source_metric(metrics, ("test_hr5",), ("hr5",), ("hr@5",))
    return held_out, "validation" if held_out is None else "held-out"


def check_worker(worker: str) -> None:
    """Refuse a Worker kind that does not exist (before anything is chosen for it)."""
    if worker not in WORKERS:
        raise EdgeBuildError(f"--worker must be table or ort, not {worker!r}")


def export_predictor(predictor: Any, version: str, worker: str = "table", k: int = DEFAULT_K) -> EdgeExport:
    """Export a loaded/fitted predictor for ``worker`` ("table" or "ort")."""
    from precache.models.ppm import NgramPredictor

    kind = str(getattr(predictor, "kind", type(predictor).__name__))
    check_worker(worker)
    if k < 1 or k > 100:
        raise EdgeBuildError(f"--k must be in 1..100, got {k}")
    if worker == "table":
        if not isinstance(predictor, NgramPredictor):
            hint = (" Use --worker ort to serve the attention model through onnxruntime-web (edge/wrangler.ort.toml,"
                    " Workers Paid plan)." if kind in ONNX_KINDS else
                    " Train one for the edge with --trace FILE --kind ppm (or markov), or export an attention model"
                    " with --worker ort.")
            raise EdgeBuildError(f"a {kind!r} model cannot be exported as tables: only n-gram predictors "
                                 f"(markov, ppm, popularity) can.{hint}")
        from precache.edge.tables import export_table

        return export_table(predictor, version, k)
    if kind not in ONNX_KINDS:
        raise EdgeBuildError(f"the ORT worker serves the attention model, not {kind!r}; use --worker table for "
                             f"{'/'.join(TABLE_KINDS)}")
    from precache.edge.onnx import export_onnx

    return export_onnx(predictor, version, k)


def label_export(export: EdgeExport, *, name: str, version: str, manifest: Mapping[str, Any] | None,
                 hr5: float | None, slice_name: str, source: dict[str, Any]) -> EdgeExport:
    """Give an export its identity (version label, model name, the source model's created time, its HR@5
    and where it came from). Deterministic: the same model exported twice gives the same manifest bytes."""
    export.version = version
    export.name = name
    export.created = (manifest or {}).get("created")
    export.metrics = {f"{slice_name.replace('-', '_')}_hr5": hr5}
    export.source = source
    return export


def export_model(predictor: Any, *, worker: str = "table", k: int = DEFAULT_K, name: str = REGISTRY_NAME,
                 version: str | None = None, manifest: Mapping[str, Any] | None = None, hr5: float | None = None,
                 slice_name: str = "validation", source: Mapping[str, Any] | None = None
                 ) -> tuple[EdgeExport, Served]:
    """Export what a ``worker`` Worker serves for ``predictor`` (itself, or auto's best servable component),
    labelled: ``version`` (None: kind + content hash), the source model's ``manifest`` and ``hr5`` on
    ``slice_name``. For a component of auto the manifest says so (``served``, ``of``), its metrics are the
    component's validation HR@5 with auto's beside it, and ``source`` carries the component and the reason.
    Raises :class:`EdgeBuildError` (or :class:`NothingServable`, also a ``ValueError``)."""
    check_worker(worker)
    served = served_form(predictor, worker)
    export = export_predictor(served.predictor, version or "pending", served.worker, k)
    if version is None:
        digest = hashlib.sha256(b"".join(export.files[n] for n in sorted(export.files))).digest()
        label = export.model_kind if served.of is None else f"{served.of}-{export.model_kind}"
        version = default_version(label, manifest, digest, k)
    label_export(export, name=name, version=version, manifest=manifest, hr5=hr5, slice_name=slice_name,
                 source=dict(source or {}))
    if served.of is not None:
        export.extra = served.manifest_fields()
        export.metrics = {f"{served.of}_{slice_name.replace('-', '_')}_hr5": hr5,
                          f"{served.of}_validation_hr5": served.of_validation_hr5,
                          "validation_hr5": served.validation_hr5}
        export.source = {**export.source, "component": served.part,
                         "of_choice": served.of_choice, "reason": served.reason}
    return export, served


def edge_worker_for(kind: str) -> str | None:
    """The Worker that can serve a model kind: "table" (n-gram predictors), "ort" (attention), or None: the
    kind's class's ``edge_worker``."""
    from precache.models.kinds import predictor_class

    try:
        return predictor_class(kind).edge_worker
    except ValueError:
        return None


def load_model_dir(directory: Path) -> tuple[Any, dict[str, Any]]:
    """A saved predictor and its manifest, through the one verified loader (every sha256 checked, a probe
    prediction run); any fault is a ``ModelFileError`` (a ``ValueError``: exit 2)."""
    from precache.models import load_predictor
    from precache.models.files import open_model_dir

    manifest = dict(open_model_dir(directory).manifest)
    return load_predictor(directory), manifest


def train_for_edge(trace: Path, kind: str, fmt: str = "auto") -> tuple[Any, float]:
    """Fit ``kind`` on the protocol's training slice of ``trace``; return it with its validation HR@5."""
    from precache.evaluation import evaluate, time_split
    from precache.models import build_predictor
    from precache.traces import read_sessions

    if kind not in TABLE_KINDS:
        raise EdgeBuildError(f"--kind must be one of {', '.join(TABLE_KINDS)} (tables), not {kind!r}")
    if not trace.exists():
        raise EdgeBuildError(f"trace {trace} does not exist")
    split = time_split(read_sessions(trace, format=fmt))
    if not split.train or not split.validation:
        raise EdgeBuildError(f"{trace}: too few sessions for a training and a validation slice")
    predictor = build_predictor(kind)
    predictor.fit(split.train)
    hr5 = evaluate(predictor, split.validation).hr5
    predictor.metrics = {"validation_hr5": hr5, "trace": str(trace)}
    return predictor, hr5


def default_version(kind: str, manifest: Mapping[str, Any] | None, export_digest: bytes, k: int) -> str:
    """A stable version label for a model outside the registry: kind + short content hash + ``-k<k>``. The
    hash is of the source model's files when known, so the exported ``k`` must be in the label: the same
    model exported with ``--k 5`` and ``--k 10`` gives different tables, and a Worker must see two versions."""
    basis = repr(sorted((manifest or {}).get("files", {}).items())).encode() if manifest else export_digest
    return f"{kind}-{hashlib.sha256(basis).hexdigest()[:12]}-k{k}"


def gzip_size(export: EdgeExport) -> tuple[int, int]:
    """Raw and gzip bytes of the export's files (what it adds to a Worker bundle)."""
    raw = sum(len(b) for b in export.files.values())
    packed = sum(len(gzip.compress(b, 6)) for b in export.files.values())
    return raw, packed
