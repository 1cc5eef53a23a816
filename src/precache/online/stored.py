"""The online settings a trained model carries, and how the service resolves them against ``ML_ONLINE_*``.

Why in the model: the half-life, weight, evidence and calibration map that suit a site are properties of its
traffic and of the frozen model they are merged with, so the training pipeline chooses them on its own
validation slice (:func:`choose_for_training`, the prequential protocol's choice) and writes them beside the
model. They live in ``online.json``, a model file like any other: JSON (never pickle), listed with its sha256
in the model's ``manifest.json``, so the registry verifies it before it registers, activates or loads the
version, and :func:`read_stored` reads it through the same checked reader as the model's own files.

Precedence (:func:`resolve`), field by field: an ``ML_ONLINE_WEIGHT`` / ``ML_ONLINE_EVIDENCE`` /
``ML_ONLINE_HALF_LIFE_SECONDS`` that is set in the environment wins; otherwise the active model's stored
value; otherwise the built-in default (a model trained before the settings were stored has none). The
stored calibration map is used only with the stored merge: it was fit on that merge's answers, so when an
environment variable overrides weight, evidence or half-life, it is not used. It is used only with
``ML_ONLINE_CALIBRATE=stored``: by default (``online``) the layer learns its map from live outcomes instead
(:class:`precache.online.calibration.OnlineCalibrator`), because a map fit on the selection copy's validation
answers carries a train/serve skew (docs/online.md, "Calibration of the online answers").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from precache.models.files import (
    MANIFEST,
    ModelFileError,
    ModelFiles,
    file_digests,
    open_model_dir,
    parse_json,
    write_json,
    write_manifest,
)
from precache.online.merge import MergeParams
from precache.online.settings import OnlineSettings
from precache.traces.model import Session

ONLINE_FILE = "online.json"
ONLINE_FORMAT = 1
MERGE_FIELDS = {"weight": "weight", "evidence": "evidence", "half_life_seconds": "half_life"}


def choose_for_training(build: Callable[[], Any], train: Sequence[Session], validation: Sequence[Session],
                        max_transitions: int | None = None) -> dict[str, Any]:
    """The online settings for a model trained on ``train`` (+ ``validation``), chosen as the prequential
    protocol does: a selection copy (``build()``) fit on ``train`` alone is the frozen model, the counts are
    seeded with ``train`` and walk ``validation`` test-then-learn (guards on). Returns ``online.json``'s
    payload; ``merge`` is None (the service then uses its defaults) when the slice has nothing to walk."""
    from precache.online.prequential import choose, events, frozen_heads
    from precache.online.protocol import default_guard

    started = time.perf_counter()
    seed = events(train)
    walk = events(validation, start=len(seed))
    if not seed or not walk:
        return {"format": ONLINE_FORMAT, "merge": None,
                "reason": "the validation slice has no transitions to choose the online settings on"}
    selection = build()
    selection.fit(train, None)
    choice = choose(frozen_heads(selection, walk, max_transitions), seed, walk, max_transitions,
                    guard_factory=default_guard)
    return {"format": ONLINE_FORMAT, "merge": choice.params.as_dict(),
            "validation_hr5": round(choice.validation_hr5, 4),
            "frozen_validation_hr5": round(choice.frozen_validation_hr5, 4),
            "calibration": choice.calibration, "validation_transitions": min(len(walk), max_transitions or len(walk)),
            "seconds": round(time.perf_counter() - started, 2)}


def write_stored(directory: str | Path, payload: dict[str, Any]) -> None:
    """Add ``online.json`` to a saved model directory and list it, with its sha256, in the manifest."""
    root = Path(directory)
    files = open_model_dir(root)  # the directory as saved, verified
    write_json(root / ONLINE_FILE, payload)
    manifest = dict(files.manifest)
    manifest["files"] = {**files.listed, **file_digests(root, [ONLINE_FILE])}
    write_manifest(root, manifest)


def read_stored(directory: str | Path, *, verified: bool = False) -> MergeParams | None:
    """The merge a model directory stores (``online.json``, its sha256 checked against the manifest), or None
    when it stores none (a model trained before this, or one whose slice could not choose). ``verified``:
    the directory was just loaded through the verified loader, so only ``online.json`` is checked again (not
    every model file). Raises ModelFileError when the file is listed but corrupt or malformed."""
    files = _listed(Path(directory)) if verified else open_model_dir(directory)
    if ONLINE_FILE not in files.listed:
        return None
    payload = files.read_json(ONLINE_FILE)
    if not isinstance(payload, dict) or payload.get("format") != ONLINE_FORMAT:
        raise ModelFileError(f"{files.root / ONLINE_FILE}: not an online settings file of format {ONLINE_FORMAT}")
    if payload.get("merge") is None:
        return None
    try:
        return MergeParams.from_dict(payload["merge"])
    except ValueError as exc:
        raise ModelFileError(f"{files.root / ONLINE_FILE}: {exc}") from exc


def _listed(root: Path) -> ModelFiles:
    manifest = parse_json((root / MANIFEST).read_bytes(), root / MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or "kind" not in manifest:
        raise ModelFileError(f"{root / MANIFEST} is not a precache model manifest")
    return ModelFiles(root, manifest)


def resolve(stored: MergeParams | None, env: OnlineSettings) -> tuple[MergeParams, dict[str, str]]:
    """The merge the online layer uses (see the module doc for the precedence) and where each value came
    from (``env``, ``model`` or ``default``; the calibration: ``online`` -- the layer's online calibrator --,
    ``model`` -- the stored map --, or ``none``)."""
    defaults = env.merge_params()
    online = "online" if env.calibrate == "online" else "none"
    if stored is None:
        source = {field: "env" if name in env.model_fields_set else "default" for name, field in MERGE_FIELDS.items()}
        return defaults, {**source, "calibration": online}
    overridden = {field for name, field in MERGE_FIELDS.items() if name in env.model_fields_set}
    params = MergeParams(
        defaults.weight if "weight" in overridden else stored.weight,
        defaults.evidence if "evidence" in overridden else stored.evidence,
        defaults.half_life if "half_life" in overridden else stored.half_life,
        None if overridden or env.calibrate != "stored" else stored.calibration)
    source = {field: "env" if field in overridden else "model" for field in MERGE_FIELDS.values()}
    source["calibration"] = online if params.calibration is None else "model"
    return params, source


class StoredSettingsFollower:
    """Keeps an online layer on the active model's stored settings (see the module doc): call it with each
    model directory the service starts serving. What it applied, and from where, is in :attr:`applied`."""

    def __init__(self, layer: Any, env: OnlineSettings) -> None:
        self.layer, self.env = layer, env
        self.applied: dict[str, Any] = {"params": layer.params.as_dict(), "source": resolve(None, env)[1]}

    def __call__(self, directory: Path) -> None:
        try:
            stored = read_stored(directory, verified=True)
            error = None
        except (ModelFileError, OSError) as exc:  # the model serves; the online layer keeps the env settings
            stored, error = None, str(exc)
        params, source = resolve(stored, self.env)
        self.layer.configure(params)
        self.applied = {"params": params.as_dict(), "source": source, "directory": str(directory), "error": error}
