"""The registry's one way in to a model directory's manifest and checksums: :mod:`precache.models.files`.

Why a small module of its own: the registry checks a version before it registers, activates, backs up or
loads it, and must do so exactly as the models' own loaders do, for every kind. Page predictors go
through :func:`precache.models.files.open_model_dir`; the cache optimizer, whose manifest keeps its
checksums under ``sha256``, is checked with the same :func:`precache.models.files.verify_files`. No
checksum code lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from precache.models.files import MANIFEST, ModelFileError, open_model_dir, verify_files
from precache.registry.atomic import read_json_file

OPTIMIZER_KIND = "precache-cache-optimizer"


def _verify_optimizer(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    from precache.models.optimizer.model import FORMAT_VERSION

    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(f"{root}: cache optimizer format version {version!r} is not supported "
                             f"(this precache reads 1..{FORMAT_VERSION})")
    digests = manifest.get("sha256")
    if not isinstance(digests, dict) or manifest.get("combined") not in digests:
        raise ModelFileError(f"{root / MANIFEST}: 'sha256' must list every optimizer file, the combined graph too")
    verify_files(root, digests)
    return manifest


def verify_model_dir(directory: str | Path) -> dict[str, Any]:
    """Check a model directory against its manifest (format version, every file's sha256, component
    directories too); return the manifest. Raises :class:`ModelFileError` naming the first bad file."""
    root = Path(directory)
    if not (root / MANIFEST).is_file():
        raise ModelFileError(f"{root} is not a model directory: {MANIFEST} is missing")
    raw = read_json_file(root / MANIFEST)
    if isinstance(raw, dict) and raw.get("kind") == OPTIMIZER_KIND:
        return _verify_optimizer(root, raw)
    manifest = dict(open_model_dir(root).manifest)
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if (sub / MANIFEST).is_file():
            verify_model_dir(sub)
    return manifest


def load_model_dir(directory: str | Path) -> Any:
    """Verify, then load: a page predictor, or the cache optimizer's ``OptimizerModel``."""
    manifest = verify_model_dir(directory)
    if manifest.get("kind") == OPTIMIZER_KIND:
        from precache.models.optimizer.model import ModelIntegrityError, OptimizerModel

        try:
            return OptimizerModel.load(directory)
        except (ModelIntegrityError, OSError, KeyError) as exc:
            raise ModelFileError(f"{directory}: {exc}") from exc
    from precache.models.kinds import load_predictor

    return load_predictor(directory)


__all__ = ["OPTIMIZER_KIND", "ModelFileError", "load_model_dir", "verify_model_dir"]
