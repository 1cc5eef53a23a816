"""The one interface every page predictor shares, and its on-disk form.

Why a base class: the evaluation protocol, the CLI, the training pipeline and the serving side all treat
predictors alike (``fit`` / ``predict`` / ``save`` / ``load``). The base class owns what must be identical
everywhere: argument checks (k <= 0 is an error, a huge k is capped), and the model directory format --
model files (JSON / NPZ / ONNX, never pickle) plus ``manifest.json`` listing each file's sha256, so a
tampered, truncated or half-copied directory is refused with a clear :class:`ModelFileError` instead of
silently serving garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from precache.traces.model import Session

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

Prediction = list[tuple[str, float]]
P = TypeVar("P", bound="PagePredictorBase")


class ModelFileError(ValueError):
    """A model directory cannot be loaded: missing file, checksum mismatch, newer format, wrong kind."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_k(k: int) -> int:
    """k must be a positive int; callers cap it at the vocabulary size themselves."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from exc


def write_npz(path: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    """Plain numeric arrays only: object arrays would need pickle, which we refuse."""
    for name, array in arrays.items():
        if array.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; only numeric arrays are stored")
    with path.open("wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]


def read_npz(path: Path) -> dict[str, npt.NDArray[Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from exc


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``manifest.json`` (format version, file list, sha256 of every file)."""
    root = Path(directory)
    path = root / MANIFEST
    if not root.is_dir():
        raise ModelFileError(f"model directory {root} does not exist")
    if not path.is_file():
        raise ModelFileError(f"{root} is not a model directory: {MANIFEST} is missing")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or "format_version" not in manifest or "kind" not in manifest:
        raise ModelFileError(f"{path} is not a precache model manifest (no format_version/kind)")
    version = manifest["format_version"]
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version} is newer than this precache supports "
            f"({FORMAT_VERSION}); upgrade precache to load it"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ModelFileError(f"{path}: 'files' must map file names to sha256")
    for name, expected in files.items():
        file_path = root / name
        if Path(name).name != name or name == MANIFEST:
            raise ModelFileError(f"{path}: bad file name {name!r} in manifest")
        if not file_path.is_file():
            raise ModelFileError(f"model file {file_path} listed in the manifest is missing")
        actual = sha256_file(file_path)
        if actual != expected:
            raise ModelFileError(
                f"model file {file_path} is corrupt or was modified: sha256 {actual[:12]}... "
                f"!= manifest {str(expected)[:12]}..."
            )
    return manifest


def require_listed(directory: Path, manifest: Mapping[str, Any], *names: str) -> None:
    """Refuse a model directory whose manifest does not list (and so did not checksum) ``names``."""
    listed = manifest.get("files", {})
    for name in names:
        if name not in listed:
            raise ModelFileError(f"{directory}: manifest does not list {name}")


def top_k_pages(scores: npt.NDArray[Any], k: int, pages: Sequence[str]) -> Prediction:
    """The ``k`` best ``(page, score)`` pairs, best first (ties by vocabulary id, so results are stable).

    ``scores[i]`` belongs to vocabulary id ``i + 1``: id 0 is the out-of-vocabulary page, never predicted.
    """
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[np.lexsort((top, -scores[top]))]
    return [(pages[int(i) + 1], float(scores[i])) for i in top]


class PagePredictorBase(ABC):
    """Learn from sessions, then rank the next pages of a session with probabilities.

    Subclasses implement ``fit``, ``_predict`` (k already checked), ``_save_files`` and ``_load_files``.
    ``predict`` returns at most k ``(page, probability)`` pairs sorted by probability, descending; the
    probabilities over all pages sum to at most 1. An empty history or unknown pages are not errors: the
    model falls back to what it knows (ultimately popularity).
    """

    kind: ClassVar[str] = "base"

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

    def config(self) -> dict[str, Any]:
        """Hyper-parameters, stored in the manifest and passed back to ``__init__`` on load."""
        return {}

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
    def _load_files(self, directory: Path, manifest: Mapping[str, Any]) -> None:
        """Restore state from files whose checksums were already verified."""

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
            "files": {name: sha256_file(root / name) for name in names},
        }
        with tempfile.NamedTemporaryFile("w", dir=root, delete=False, suffix=".tmp", encoding="utf-8") as tmp:
            json.dump(manifest, tmp, indent=1, sort_keys=True)
        os.replace(tmp.name, root / MANIFEST)
        return root

    @classmethod
    def load(cls: type[P], directory: str | os.PathLike[str]) -> P:
        manifest = read_manifest(directory)
        if manifest["kind"] != cls.kind:
            raise ModelFileError(
                f"{directory} holds a {manifest['kind']!r} model, not {cls.kind!r}; use load_predictor()"
            )
        config = manifest.get("config") or {}
        if not isinstance(config, dict):
            raise ModelFileError(f"{directory}: manifest config must be an object")
        try:
            model = cls(**config)
        except TypeError as exc:
            raise ModelFileError(f"{directory}: manifest config does not fit {cls.__name__}: {exc}") from exc
        model.name = str(manifest.get("name") or cls.kind)
        model.metrics = dict(manifest.get("metrics") or {})
        model._load_files(Path(directory), manifest)
        model.fitted = True
        return model

    def size_bytes(self, directory: str | os.PathLike[str]) -> int:
        """Bytes on disk of a saved model directory (manifest and component sub-directories included)."""
        return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
