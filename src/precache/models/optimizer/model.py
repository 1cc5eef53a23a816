"""Runtime side of the cache optimizer: load the exported ONNX models, batched inference.

Imports only numpy and onnxruntime. ``OptimizerModel.load(dir)`` checks every file's sha256 against
``manifest.json`` before loading it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from precache.models.files import ModelFileError, ModelFiles, parse_json
from precache.models.optimizer.features import FEATURE_NAMES, N_FEATURES

if TYPE_CHECKING:
    from precache.models.optimizer.labels import Dataset

FORMAT_VERSION = 1  # of the optimizer's directory (manifest.json + ONNX); a reader accepts 1..FORMAT_VERSION

OUTPUTS = ("should_cache", "priority", "ttl", "invalidation")


class ModelIntegrityError(ModelFileError, RuntimeError):
    """A model file does not match the sha256 in its manifest, or the manifest or a file is unusable
    (a :class:`ModelFileError` like every other model kind's, and still a ``RuntimeError``)."""


@dataclass(slots=True)
class Predictions:
    should_cache: npt.NDArray[np.float32]  # P(reused within the horizon)
    priority: npt.NDArray[np.float32]  # log1p predicted seconds to the next access
    ttl: npt.NDArray[np.float32]  # log1p predicted seconds to the next content change
    invalidation: npt.NDArray[np.float32]  # P(changed since the previous access, given its age)

    def seconds_to_next_access(self) -> npt.NDArray[np.float64]:
        return np.expm1(self.priority.astype(np.float64))

    def seconds_to_change(self) -> npt.NDArray[np.float64]:
        return np.expm1(self.ttl.astype(np.float64))


def _session(data: bytes) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


class OptimizerModel:
    """The four optimizer outputs for a batch of feature rows, in one onnxruntime call."""

    def __init__(self, combined: bytes, manifest: dict[str, Any] | None = None,
                 priority: bytes | None = None) -> None:
        self.manifest: dict[str, Any] = manifest or {}
        self._session = _session(combined)
        # the priority output alone (what eviction needs): a quarter of the trees per row
        self._priority_session = _session(priority) if priority is not None else None
        names = [o.name for o in self._session.get_outputs()]
        missing = [o for o in OUTPUTS if o not in names]
        if missing:
            raise ModelIntegrityError(f"optimizer graph lacks outputs {missing}")
        self.horizon = float(self.manifest.get("horizon", 3600.0))
        self.cap = float(self.manifest.get("cap", 4 * self.horizon))
        self.change_signal = str(self.manifest.get("change_signal", "unknown"))
        # whether the rows carried the distinct-objects count (a model trained before the field was recorded did)
        self.stream_counts = bool(self.manifest.get("stream_counts", True))
        self.version = str(self.manifest.get("version", ""))

    @classmethod
    def load(cls, directory: str | Path) -> OptimizerModel:
        """Read through :class:`precache.models.files.ModelFiles`: only files the manifest's ``sha256`` lists,
        each checked on the bytes loaded; any unusable manifest or graph is a ``ModelIntegrityError``."""
        d = Path(directory)
        try:
            manifest = parse_json((d / "manifest.json").read_bytes(), d / "manifest.json")
        except (OSError, ModelFileError) as exc:
            raise ModelIntegrityError(f"cannot read {d / 'manifest.json'}: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("kind") != "precache-cache-optimizer":
            kind = manifest.get("kind") if isinstance(manifest, dict) else None
            raise ModelIntegrityError(f"{d} does not hold a cache optimizer (kind={kind!r})")
        version = manifest.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ModelIntegrityError(f"{d}: cache optimizer format version {version!r} is not 1..{FORMAT_VERSION}")
        if manifest.get("features") != list(FEATURE_NAMES):
            raise ModelIntegrityError("the model was trained on a different feature list")
        digests, roles = manifest.get("sha256"), manifest.get("files", {})
        if not isinstance(digests, dict) or not isinstance(roles, dict):
            raise ModelIntegrityError(f"{d / 'manifest.json'}: 'sha256' and 'files' must be objects")
        files = ModelFiles(d, manifest, listed=digests)
        try:
            data = files.read_bytes(str(manifest.get("combined", "")))
            pname = roles.get("priority")
            priority = files.read_bytes(str(pname)) if pname else None
            return cls(data, manifest, priority)
        except ModelIntegrityError:
            raise
        except Exception as exc:  # ModelFileError, or onnxruntime's own types for a damaged graph
            raise ModelIntegrityError(f"{d}: {exc}") from exc

    @classmethod
    def from_files(cls, directory: Path, files: dict[str, str], combined: str) -> OptimizerModel:
        """Load freshly written files without a manifest (used while training, for validation)."""
        pname = files.get("priority")
        return cls((directory / combined).read_bytes(), {},
                   (directory / pname).read_bytes() if pname else None)

    def predict_priority(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Only the ``priority`` output (log1p seconds to the next access): the eviction path."""
        X = np.ascontiguousarray(X, dtype=np.float32).reshape(-1, N_FEATURES)
        if len(X) == 0:
            return np.zeros(0, dtype=np.float32)
        if self._priority_session is None:
            return self.predict(X).priority
        return np.asarray(self._priority_session.run(["y"], {"input": X})[0], np.float32).reshape(-1)

    def predict(self, X: npt.NDArray[np.float32]) -> Predictions:
        X = np.ascontiguousarray(X, dtype=np.float32).reshape(-1, N_FEATURES)
        if len(X) == 0:
            e = np.zeros(0, dtype=np.float32)
            return Predictions(e, e, e, e)
        sc, pr, tt, inv = self._session.run(list(OUTPUTS), {"input": X})
        return Predictions(np.asarray(sc, np.float32), np.asarray(pr, np.float32), np.asarray(tt, np.float32),
                           np.asarray(inv, np.float32))


# -- decision quality -------------------------------------------------------------------------------
def roc_auc(y: npt.NDArray[Any], score: npt.NDArray[Any]) -> float:
    """Area under the ROC curve (ties averaged); NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inv, counts = np.unique(np.asarray(score, dtype=np.float64), return_inverse=True, return_counts=True)
    avg = np.cumsum(counts) - (counts - 1) / 2.0  # average 1-based rank of each distinct score
    r = avg[inv.ravel()]
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def decision_metrics(model: OptimizerModel, data: Dataset, threshold: float = 0.5) -> dict[str, Any]:
    """should_cache accuracy/AUC (and the majority-class baseline), time-to-next-access error,
    invalidation AUC; on ``data`` (normally the test slice)."""
    out: dict[str, Any] = {"change_signal": data.change_signal, "horizon_s": data.horizon}
    if len(data.should_cache):
        p = model.predict(data.X_access)
        y = data.should_cache.astype(bool)
        acc = float(((p.should_cache >= threshold) == y).mean())
        out["should_cache"] = {
            "rows": len(y), "positive_rate": float(y.mean()), "accuracy": acc,
            "majority_baseline_accuracy": float(max(y.mean(), 1 - y.mean())), "auc": roc_auc(y, p.should_cache),
        }
        err = np.abs(p.ttl - data.ttl)
        out["ttl"] = {"mae_log1p_s": float(err.mean()), "median_abs_err_log1p_s": float(np.median(err))}
    if len(data.priority):
        pp = model.predict(data.X_priority).priority
        yy = data.priority
        err = np.abs(pp - yy)
        base = np.abs(np.median(yy) - yy)
        reused = yy < math.log1p(data.cap) - 1e-6
        out["priority"] = {
            "rows": len(yy), "mae_log1p_s": float(err.mean()), "median_abs_err_log1p_s": float(np.median(err)),
            "median_factor_error_reused": float(np.exp(np.median(err[reused]))) if reused.any() else math.nan,
            "baseline_mae_log1p_s (predict the median)": float(base.mean()),
            "spearman": _spearman(pp, yy),
        }
    if len(data.invalidated):
        q = model.predict(data.X_inval).invalidation
        yi = data.invalidated
        out["invalidation"] = {"rows": len(yi), "positive_rate": float(yi.mean()), "auc": roc_auc(yi, q)}
    return out


def _spearman(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    if len(a) < 2:
        return math.nan
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    c = np.corrcoef(ra, rb)[0, 1]
    return float(c)
