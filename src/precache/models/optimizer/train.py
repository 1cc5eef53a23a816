"""Training of the cache optimizer: four LightGBM models exported to ONNX (training-only imports).

Outputs: ``should_cache`` (classifier: reused within the horizon), ``priority`` (regressor:
log1p seconds to the next access, as in Learning Relaxed Belady), ``ttl`` (regressor: log1p seconds to
the next content change) and ``invalidation`` (classifier: changed since the previous access, given
its age). Each is exported with onnxmltools (``target_opset=15``); the four are also merged into one
graph, ``optimizer.onnx``, so the runtime pays one onnxruntime call per batch. A ``manifest.json``
records versions, feature names, metrics and the sha256 of every file. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from precache.models.optimizer.features import FEATURE_NAMES, N_FEATURES
from precache.models.optimizer.labels import Dataset
from precache.models.optimizer.model import FORMAT_VERSION, OptimizerModel, decision_metrics

OUTPUTS = ("should_cache", "priority", "ttl", "invalidation")
MANIFEST = "manifest.json"
COMBINED = "optimizer.onnx"


@dataclass(slots=True)
class TrainConfig:
    n_estimators: int = 80
    num_leaves: int = 31
    learning_rate: float = 0.1
    min_child_samples: int = 20
    max_rows: int = 200_000
    seed: int = 0
    n_jobs: int = 1


@dataclass(slots=True)
class TrainResult:
    directory: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _subsample(parts: Sequence[npt.NDArray[np.float32]], y: npt.NDArray[Any], max_rows: int,
               rng: np.random.Generator) -> tuple[npt.NDArray[np.float32], npt.NDArray[Any]]:
    """At most ``max_rows`` random rows of the rows ``parts`` hold one after another (labels ``y``), in
    the order the concatenation would give, without building the concatenation (at 1M requests it
    would be the largest array of the run)."""
    if len(y) <= max_rows:
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)), y
    idx = rng.choice(len(y), size=max_rows, replace=False)
    out = np.empty((len(idx), parts[0].shape[1]), dtype=np.float32)
    start = 0
    for part in parts:
        mine = (idx >= start) & (idx < start + len(part))
        out[mine] = part[idx[mine] - start]
        start += len(part)
    return out, y[idx]


def _fit(kind: str, X: npt.NDArray[np.float32], y: npt.NDArray[Any], cfg: TrainConfig) -> Any:
    import lightgbm as lgb

    params: dict[str, Any] = dict(n_estimators=cfg.n_estimators, num_leaves=cfg.num_leaves,
                                  learning_rate=cfg.learning_rate, min_child_samples=cfg.min_child_samples,
                                  random_state=cfg.seed, n_jobs=cfg.n_jobs, verbose=-1)
    if kind == "classifier":
        if len(np.unique(y)) < 2:
            return ("constant", float(y[0]) if len(y) else 0.0)
        return lgb.LGBMClassifier(**params).fit(X, y)
    if len(y) == 0:
        return ("constant", 0.0)
    return lgb.LGBMRegressor(**params).fit(X, y)


def _to_onnx(model: Any, kind: str) -> Any:
    """ONNX graph with one input ``input`` [N, F] and one float output ``y`` [N] (a probability
    for classifiers, the regression value otherwise)."""
    import onnx
    from onnx import TensorProto, helper

    if isinstance(model, tuple):  # a constant model (a label with one class, or no rows)
        value = model[1]
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N_FEATURES])
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
        nodes = [
            helper.make_node("Shape", ["input"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
            helper.make_node("ConstantOfShape", ["n1"], ["y"],
                             value=helper.make_tensor("v", TensorProto.FLOAT, [1], [value])),
        ]
        inits = [helper.make_tensor("zero", TensorProto.INT64, [], [0]),
                 helper.make_tensor("axes", TensorProto.INT64, [1], [0])]
        graph = helper.make_graph(nodes, "constant", [inp], [out], inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
        onnx.checker.check_model(m)
        return m
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, N_FEATURES]))]
    if kind == "classifier":
        m = onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=15, zipmap=False)
        # keep only P(class 1) as ``y``
        probs = next(o.name for o in m.graph.output if o.name == "probabilities")
        m.graph.node.extend([helper.make_node("Gather", [probs, "_one"], ["y"], axis=1)])
        m.graph.initializer.extend([helper.make_tensor("_one", TensorProto.INT64, [], [1])])
    else:
        m = onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=15)
        out_name = m.graph.output[0].name
        m.graph.node.extend([helper.make_node("Reshape", [out_name, "_flat"], ["y"])])
        m.graph.initializer.extend([helper.make_tensor("_flat", TensorProto.INT64, [1], [-1])])
    del m.graph.output[:]
    m.graph.output.extend([helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    return m


def _combine(models: dict[str, Any]) -> Any:
    """One graph computing all outputs from one shared ``input``."""
    import onnx
    from onnx import TensorProto, helper

    nodes = []
    inits = []
    outputs = []
    opsets: dict[str, int] = {}
    for name, m in models.items():
        pm = onnx.compose.add_prefix(m, prefix=f"{name}__")
        nodes.append(helper.make_node("Identity", ["input"], [f"{name}__input"]))
        nodes.extend(pm.graph.node)
        inits.extend(pm.graph.initializer)
        nodes.append(helper.make_node("Identity", [f"{name}__y"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None]))
        for op in m.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, N_FEATURES])
    graph = helper.make_graph(nodes, "precache_optimizer", [inp], outputs, inits)
    combined = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    combined.ir_version = max(m.ir_version for m in models.values())
    onnx.checker.check_model(combined)
    return combined


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def train(train_set: Dataset, out_dir: str | Path, config: TrainConfig | None = None,
          validation: Dataset | None = None, version: str | None = None) -> TrainResult:
    """Fit the four models on ``train_set``, export them to ONNX in ``out_dir`` with a manifest.

    ``validation`` (a later slice of the training part, never the test part) only adds metrics."""
    cfg = config or TrainConfig()
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    # the priority rows are the access rows followed by the delayed rows (never concatenated: see _subsample)
    data: dict[str, tuple[str, list[npt.NDArray[np.float32]], npt.NDArray[Any]]] = {
        "should_cache": ("classifier", [train_set.X_access], train_set.should_cache),
        "priority": ("regressor", [train_set.X_access, train_set.X_delayed], train_set.priority),
        "ttl": ("regressor", [train_set.X_access], train_set.ttl),
        "invalidation": ("classifier", [train_set.X_inval], train_set.invalidated),
    }
    onnx_models: dict[str, Any] = {}
    files: dict[str, str] = {}
    rows: dict[str, int] = {}
    for name, (kind, parts, y) in data.items():
        Xs, ys = _subsample(parts, y, cfg.max_rows, rng)
        rows[name] = len(ys)
        model = _fit(kind, Xs, ys, cfg)
        om = _to_onnx(model, kind)
        path = out / f"{name}.onnx"
        path.write_bytes(om.SerializeToString())
        files[name] = path.name
        onnx_models[name] = om
    combined = _combine(onnx_models)
    (out / COMBINED).write_bytes(combined.SerializeToString())
    metrics: dict[str, Any] = {"train_rows": rows}
    if validation is not None:
        metrics["validation"] = decision_metrics(OptimizerModel.from_files(out, files, COMBINED), validation)
    manifest = {
        "kind": "precache-cache-optimizer",
        "format_version": FORMAT_VERSION,
        "version": version or time.strftime("%Y%m%d-%H%M%S"),
        "features": list(FEATURE_NAMES),
        "outputs": list(OUTPUTS),
        "files": files,
        "combined": COMBINED,
        "horizon": train_set.horizon,
        "cap": train_set.cap,
        "change_signal": train_set.change_signal,
        "stream_counts": train_set.stream_counts,
        "config": {k: getattr(cfg, k) for k in cfg.__slots__},  # type: ignore[attr-defined]
        "metrics": metrics,
        "sha256": {f: sha256_file(out / f) for f in [*files.values(), COMBINED]},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return TrainResult(directory=out, metrics=metrics, seconds=time.perf_counter() - t0)
