"""The model kinds: name -> predictor class, the one way to pick a predictor class, for ``build_predictor`` and
``load_predictor`` (and so for the CLI, evaluation, auto's components, the inference engine and the
model registry).

Not :mod:`precache.registry` (the versioned model store): this module names the kinds of model.

Why a table of *lazy* entries: loading a baseline must never import torch, and the attention / auto
models live in modules that may import it (or onnxruntime). Built-in kinds are registered as
``"module:Class"`` strings and imported only when asked for. Other modules add their kinds with
:func:`register_predictor` (a class or a lazy ``"module:Class"`` string); the modules listed in
``_PLUGIN_MODULES`` are imported on demand the first time an unknown kind is requested (or the list of
kinds is asked for), so ``register_predictor`` calls at their top level take effect without anyone
importing them eagerly.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from precache.models.base import ModelFileError, PagePredictorBase
from precache.models.files import open_model_dir

_KINDS: dict[str, type[PagePredictorBase] | str] = {
    "popularity": "precache.models.popularity:PopularityPredictor",
    "markov": "precache.models.markov:MarkovPredictor",
    "markov-count": "precache.models.markov_count:CountMarkovPredictor",
    "ppm": "precache.models.ppm:PPMPredictor",
    "sknn": "precache.models.sknn:SessionKNNPredictor",
    "attention": "precache.models.attention.predictor:AttentionPredictor",
    "auto": "precache.models.auto:AutoPredictor",
}
# Modules that register more kinds when imported (owned by the attention area). Missing ones are skipped.
_PLUGIN_MODULES = ("precache.models.attention", "precache.models.auto")
_plugins_loaded = False
_plugin_errors: dict[str, str] = {}


def register_predictor(kind: str, cls: type[PagePredictorBase] | str) -> None:
    """Make ``kind`` buildable and loadable. ``cls`` may be a lazy ``"package.module:ClassName"``."""
    if not kind or not kind.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"predictor kind must be a simple name, got {kind!r}")
    if isinstance(cls, str) and ":" not in cls:
        raise ValueError(f"lazy predictor reference must look like 'module:Class', got {cls!r}")
    _KINDS[kind] = cls


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in _PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                _plugin_errors[module] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a broken plugin must not take the baselines down with it
            _plugin_errors[module] = f"{type(exc).__name__}: {exc}"


def kind_names() -> tuple[str, ...]:
    """The kinds known without importing any model module (the built-in ones and those registered so far):
    what a request schema lists and validates against (``available_predictors`` imports the plugins)."""
    return tuple(_KINDS)


def available_predictors() -> list[str]:
    """Every registered kind (imports the plugin modules, which may import torch)."""
    _load_plugins()
    return sorted(_KINDS)


def predictor_class(kind: str) -> type[PagePredictorBase]:
    if kind not in _KINDS:
        _load_plugins()
    entry = _KINDS.get(kind)
    if entry is None:
        broken = "".join(f"; {m} failed to import ({e})" for m, e in _plugin_errors.items())
        raise ValueError(f"unknown predictor {kind!r}; known: {', '.join(sorted(_KINDS))}{broken}")
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"predictor {kind!r} is not available: {exc}") from exc
        entry = getattr(module, attr)
        if not (isinstance(entry, type) and issubclass(entry, PagePredictorBase)):
            raise TypeError(f"{module_name}:{attr} is not a PagePredictorBase subclass")
        _KINDS[kind] = entry
    return entry


def build_predictor(name: str, **options: Any) -> PagePredictorBase:
    """A fresh, unfitted predictor. Unknown names or options raise ``ValueError``."""
    cls = predictor_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"bad options for predictor {name!r}: {exc}") from exc


def load_predictor(directory: str | os.PathLike[str], *, threads: int | None = None) -> PagePredictorBase:
    """Load any saved predictor: the one model-loading path (the inference engine, auto's components and
    the model registry use it). Checks the manifest and every sha256, dispatches on the manifest's
    ``kind``, and probes one prediction; every failure is a :class:`ModelFileError`. ``threads`` sets a
    native runtime's intra-op threads (attention), a serving choice that is not stored."""
    files = open_model_dir(directory)
    try:
        cls = predictor_class(files.kind)
    except ValueError as exc:
        raise ModelFileError(f"{directory}: {exc}") from exc
    return cls.from_files(files, threads=threads)
