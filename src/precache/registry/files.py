"""The registry's one way in to a model directory's manifest and checksums.

Why one small function: the registry must not grow a checksum implementation of its own. Today the
predictors' manifests are checked by :func:`precache.models.base.read_manifest` and the cache optimizer's
by its own loader; the models area is folding both into one verified loader (``precache.models.files``).
Everything in the registry goes through :func:`verify_model_dir` / :func:`load_model_dir`, so switching
to that loader is a change here only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from precache.models.base import MANIFEST, ModelFileError, read_manifest
from precache.registry.atomic import read_json_file

OPTIMIZER_KIND = "precache-cache-optimizer"


def _verify_optimizer(root: Path) -> dict[str, Any]:
    """The optimizer writes its checksums under ``sha256``; its loader is the one that checks them."""
    from precache.models.optimizer.model import ModelIntegrityError, OptimizerModel

    try:
        model = OptimizerModel.load(root)
    except (ModelIntegrityError, OSError, KeyError) as exc:
        raise ModelFileError(f"{root}: {exc}") from exc
    manifest = dict(model.manifest)
    listed = manifest.get("sha256") or {}
    extra = sorted(set(listed) - {manifest.get("combined"), manifest.get("files", {}).get("priority")})
    if extra:  # files the loader does not read are still part of the version: check them too
        from precache.models.base import sha256_file

        for name in extra:
            path = root / str(name)
            if Path(str(name)).name != name or not path.is_file() or sha256_file(path) != listed[name]:
                raise ModelFileError(f"model file {path} is missing, corrupt or was modified")
    return manifest


def verify_model_dir(directory: str | Path) -> dict[str, Any]:
    """Check a model directory against its manifest (format version, every file's sha256, component
    directories too); return the manifest. Raises :class:`ModelFileError` naming the first bad file."""
    root = Path(directory)
    path = root / MANIFEST
    if not path.is_file():
        raise ModelFileError(f"{root} is not a model directory: {MANIFEST} is missing")
    raw = read_json_file(path)
    if isinstance(raw, dict) and raw.get("kind") == OPTIMIZER_KIND:
        return _verify_optimizer(root)
    manifest = read_manifest(root)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / MANIFEST).is_file():
            verify_model_dir(sub)
    return manifest


def load_model_dir(directory: str | Path) -> Any:
    """Verify, then load: a page predictor, or the cache optimizer's ``OptimizerModel``."""
    manifest = verify_model_dir(directory)
    if manifest.get("kind") == OPTIMIZER_KIND:
        from precache.models.optimizer.model import OptimizerModel

        return OptimizerModel.load(directory)
    from precache.models.registry import load_predictor

    return load_predictor(directory)


__all__ = ["OPTIMIZER_KIND", "ModelFileError", "load_model_dir", "verify_model_dir"]
