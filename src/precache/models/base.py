"""The one interface every page predictor shares, and its on-disk form.

Why a base class: the evaluation protocol, the CLI, the training pipeline and the serving side all treat
predictors alike (``fit`` / ``predict`` / ``save`` / ``load``). The base class owns what must be identical
everywhere: argument checks (k <= 0 is an error, a huge k is capped), and loading -- every kind reads
its files through :mod:`precache.models.files` (manifest, sha256 of each file, format version, kind),
its settings must be its own (a relabelled directory is refused), and one probe prediction runs before
a model is handed out, so a tampered, truncated, half-copied or inconsistent directory is refused with a
clear :class:`ModelFileError` instead of silently serving garbage or failing at its first request.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from precache.models.files import (
    FORMAT_VERSION,
    MANIFEST,
    ModelFileError,
    ModelFiles,
    file_digests,
    open_model_dir,
    read_manifest,
    sha256_file,
    write_json,
    write_manifest,
    write_npz,
)
from precache.traces.model import Session
from precache.types import Prediction

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "BatchPredictor",
    "ModelFileError",
    "ModelFiles",
    "PagePredictorBase",
    "Prediction",
    "check_k",
    "probe",
    "read_manifest",
    "sha256_file",
    "top_k_pages",
    "write_json",
    "write_npz",
]

P = TypeVar("P", bound="PagePredictorBase")


def check_k(k: int) -> int:
    """k must be a positive int; callers cap it at the vocabulary size themselves."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def top_k_pages(scores: npt.NDArray[Any], k: int, pages: Sequence[str]) -> Prediction:
    """The ``k`` best ``(page, score)`` pairs, best first (ties by vocabulary id, so results are stable).

    ``scores[i]`` belongs to vocabulary id ``i + 1``: id 0 is the out-of-vocabulary page, never predicted.
    """
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[np.lexsort((top, -scores[top]))]
    return [(pages[i + 1], p) for i, p in zip(top.tolist(), scores[top].tolist(), strict=True)]


@cache
def _parameter_names(cls: type) -> tuple[str, ...]:
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in list(signature.parameters.values())[1:] if p.kind in named and p.name != "name")


class PagePredictorBase(ABC):
    """Learn from sessions, then rank the next pages of a session with probabilities.

    Subclasses implement ``fit``, ``_predict`` (k already checked), ``_save_files`` and ``_load_files``.
    ``predict`` returns at most k ``(page, probability)`` pairs sorted by probability, descending; the
    probabilities over all pages sum to at most 1. An empty history or unknown pages are not errors: the
    model falls back to what it knows (ultimately popularity).
    """

    kind: ClassVar[str] = "base"
    complexity: ClassVar[int] = 3
    """Simplest first (:mod:`precache.models.simplest`): popularity 0, markov-count 1, Markov 2, PPM 3,
    attention 4. The edge cost (table size, runtime) and the capacity to fit validation noise both grow
    with it; a kind that does not say counts as PPM."""
    edge_worker: ClassVar[str | None] = None
    """The edge Worker that serves this kind: "table" (n-gram tables), "ort" (ONNX), or None (none can)."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.kind
        self.metrics: dict[str, Any] = {}
        self.fitted = False

    # -- learning and prediction ------------------------------------------------------------------
    @abstractmethod
    def fit(self, train: Sequence[Session], validation: Sequence[Session] | None = None) -> None:
        """Learn from ``train``; ``validation`` (later sessions of the training period) may tune."""

    @abstractmethod
    def _predict(self, history: Sequence[str], k: int) -> Prediction: ...

    @property
    @abstractmethod
    def vocabulary_size(self) -> int:
        """How many distinct pages the model can predict (caps k)."""

    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        """The hyper-parameters: the constructor's named parameters but ``name`` (scikit-learn's
        ``_get_param_names``), so a parameter is written once, in the signature."""
        return _parameter_names(cls)

    def config(self) -> dict[str, Any]:
        """Hyper-parameters, stored in the manifest and passed back to ``__init__`` on load: each of
        :meth:`parameters` with its current value (:meth:`_parameter`), as scikit-learn's ``get_params``."""
        return {name: self._parameter(name) for name in self.parameters()}

    def _parameter(self, name: str) -> Any:
        """The current value of constructor parameter ``name``: the attribute of that name (scikit-learn's
        rule: ``__init__`` stores each parameter as given). A model that keeps them elsewhere overrides."""
        return getattr(self, name)

    def predict(self, history: Sequence[str], k: int) -> Prediction:
        k = check_k(k)
        if not self.fitted:
            raise RuntimeError(f"{self.name}: predict() before fit() or load()")
        return self._predict(history, min(k, max(1, self.vocabulary_size)))

    def clear_cache(self) -> None:  # noqa: B027 - optional hook, deliberately a no-op by default
        """Forget memoised predictions (models that memoise override this)."""

    def predict_batch(self, histories: Sequence[Sequence[str]], k: int) -> list[Prediction]:
        """Default: one call per history. Vectorised models override it."""
        check_k(k)
        return [self.predict(history, k) for history in histories]

    # -- files --------------------------------------------------------------------------------------
    @abstractmethod
    def _save_files(self, directory: Path) -> list[str]:
        """Write the model's files into ``directory``; return their names."""

    @abstractmethod
    def _load_files(self, files: ModelFiles) -> None:
        """Restore state through ``files`` (its readers verify each file's sha256 and refuse unlisted
        names), and check that the pieces agree with each other (raise :class:`ModelFileError`)."""

    def use_threads(self, threads: int) -> None:  # noqa: B027 - optional hook, deliberately a no-op
        """Intra-op threads of a native runtime (a serving choice, not a model setting). Models that run
        one override this; it is called before ``_load_files`` so the runtime starts once."""

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the model files and then the manifest (last, so a crash leaves no valid manifest)."""
        if not self.fitted:
            raise RuntimeError(f"{self.name}: save() before fit()")
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        names = self._save_files(root)
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "name": self.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": self.config(),
            "metrics": self.metrics,
            "files": file_digests(root, names),
        }
        write_manifest(root, manifest)
        return root

    @classmethod
    def load(cls: type[P], directory: str | os.PathLike[str], *, threads: int | None = None) -> P:
        """Load a directory saved by this kind (use ``load_predictor`` for any kind)."""
        return cls.from_files(open_model_dir(directory, kind=cls.kind), threads=threads)

    @classmethod
    def from_files(cls: type[P], files: ModelFiles, *, threads: int | None = None) -> P:
        """Build the model from a checked directory, then run one probe prediction: a model that loads
        but cannot predict is refused here, not at its first request."""
        if files.kind != cls.kind:
            raise ModelFileError(f"{files.root} holds a {files.kind!r} model, not {cls.kind!r}")
        config = files.config
        try:
            model = cls(**config)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{files.root}: manifest config does not fit {cls.__name__}: {exc}") from exc
        foreign = sorted(set(config) - set(model.config()))
        if foreign:
            raise ModelFileError(f"{files.root}: {foreign} are not settings of a {cls.kind} model (relabelled?)")
        metrics = files.manifest.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise ModelFileError(f"{files.root}: manifest metrics must be an object")
        model.name = str(files.manifest.get("name") or cls.kind)
        model.metrics = dict(metrics)
        if threads is not None:
            model.use_threads(threads)
        try:
            model._load_files(files)
        except ModelFileError:
            raise
        except Exception as exc:  # numpy / onnxruntime / json raise many types on inconsistent content
            raise ModelFileError(
                f"{files.root}: cannot load this {cls.kind} model: {type(exc).__name__}: {exc}"
            ) from exc
        model.fitted = True
        probe(model, files.root)
        return model

    def size_bytes(self, directory: str | os.PathLike[str]) -> int:
        """Bytes on disk of a saved model directory (manifest and component sub-directories included)."""
        return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


PROBE_K = 5


class BatchPredictor(Protocol):
    """What serving needs of a loaded model (every ``PagePredictorBase`` fits)."""

    name: str

    def predict_batch(self, histories: Sequence[Sequence[str]], k: int) -> list[Prediction]: ...


def probe(model: BatchPredictor, where: object) -> None:
    """Predict for an empty history and for the page the model ranks first, and check the answers are
    ranked ``(page, probability)`` lists; any failure is a :class:`ModelFileError`. Loading and
    ``InferenceEngine.reload`` run this before a model may serve."""
    try:
        first = model.predict_batch([[]], PROBE_K)
        history = [first[0][0][0]] if first and first[0] else []
        second = model.predict_batch([history, [*history, "/precache-probe-unknown-page"]], PROBE_K)
        if len(first) != 1 or len(second) != 2:
            raise ValueError("predict_batch returned the wrong number of lists")
        for ranked in (*first, *second):
            _check_ranked(ranked)
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{where}: the model loads but cannot predict: {type(exc).__name__}: {exc}") from exc
    finally:
        clear = getattr(model, "clear_cache", None)
        if callable(clear):
            clear()


def _check_ranked(ranked: Prediction) -> None:
    if not isinstance(ranked, list) or len(ranked) > PROBE_K:
        raise ValueError(f"not a list of at most {PROBE_K} predictions: {ranked!r:.80}")
    previous, total = math.inf, 0.0
    for item in ranked:
        page, probability = item
        if not isinstance(page, str) or not math.isfinite(probability) or not 0.0 <= probability <= 1.0 + 1e-6:
            raise ValueError(f"bad prediction {item!r}")
        if probability > previous + 1e-9:
            raise ValueError("predictions are not sorted by probability")
        previous = probability
        total += probability
    if total > 1.0 + 1e-3 or len({page for page, _ in ranked}) != len(ranked):
        raise ValueError(f"predictions are not a distribution's head (sum {total:.4f}, pages repeated?)")
