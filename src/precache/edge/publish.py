"""Activation writes the edge files: the registry's hook that publishes a version for the Workers.

Why at activation, in the version's own directory: the service serves ``.../active/files/edge-manifest.json``
and the files it names from the *active* version's directory (docs/contracts.md, "Edge"), so the files are
written before the registry moves its pointer, and the Workers' next poll sees the new manifest. The
version's model files and ``manifest.json`` are not touched (the registry still verifies the version);
the edge files are derived from them, deterministically. Idempotent: a version whose edge manifest already
names it (an earlier activation, or ``precache edge build --publish``) is left alone, so a rollback costs
nothing. Markov / markov-count / PPM / popularity become tables (the default Worker), attention goes to the
ORT Worker (a table Worker refuses it from the manifest alone and keeps its model). An ``auto`` model is
published as its best part (a component, or the edge fallback auto ships when its choice has no n-gram
component) the deployed Worker can run (``MODEL_EDGE_WORKER``: table, the default, or ort;
:mod:`precache.edge.served`), and its edge manifest says so. Kinds no Worker serves (sknn, or an auto without
a servable part) get no edge files: the Workers keep the model they have, and the reason is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class VersionInfo(Protocol):
    """What publishing reads of a registry version (:class:`precache.registry.store.VersionInfo` has it):
    a protocol, because the registry calls this module, not the other way round."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def metrics(self) -> Mapping[str, Any]: ...


def published_version(directory: Path) -> str | None:
    """The version named by ``directory``'s edge manifest when every file it lists is present, else None."""
    from precache.edge.manifest import EDGE_MANIFEST

    try:
        manifest = json.loads((directory / EDGE_MANIFEST).read_bytes())
        files = manifest["files"]
        if all((directory / str(name)).is_file() for name in files):
            version = manifest.get("version")
            return str(version) if version is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def publish_version(info: VersionInfo, k: int | None = None, worker: str = "table") -> str:
    """Write the edge files of a registry version into its directory unless they are there; return what
    was done, one line. ``worker`` is the deployed Worker ("table" or "ort"): it decides which component of
    an auto model is published. Errors propagate."""
    from precache.edge.build import REGISTRY_NAME, edge_worker_for, export_model, load_model_dir, model_hr5
    from precache.edge.served import NothingServable
    from precache.edge.tables import DEFAULT_K

    where = f"{info.name} {info.version}"
    if info.name != REGISTRY_NAME:
        return f"{where}: not a page predictor, no edge files"
    target = worker if info.kind == "auto" else edge_worker_for(info.kind)
    if target is None:
        return f"{where}: a {info.kind!r} model cannot be served at the edge; the Workers keep their model"
    path = info.path
    if published_version(path) == info.version:
        return f"{where}: edge files already published"
    predictor, manifest = load_model_dir(path)
    hr5, slice_name = model_hr5(info.metrics or {})
    try:
        export, served = export_model(predictor, worker=target, k=k or DEFAULT_K, name=info.name,
                                      version=info.version, manifest=manifest, hr5=hr5, slice_name=slice_name,
                                      source={"registry": where})
    except NothingServable as exc:
        return f"{where}: no edge files published: {exc}; the Workers keep their model"
    export.write(path)
    size = f"{sum(len(b) for b in export.files.values()):,} bytes"
    if served.of is None:
        return f"{where}: published the {export.kind} edge files ({size})"
    return f"{where}: published the {export.kind} edge files of {served.of}'s {served.kind} ({size}): {served.reason}"


def publish_on_activate(info: VersionInfo, worker: str = "table") -> None:
    """The registry's ``on_activate`` hook: publish, and never fail the activation (the service's model
    matters more than the edge's; a Worker without a new manifest keeps serving the model it has)."""
    try:
        log.info("%s", publish_version(info, worker=worker))
    except Exception as exc:  # any fault of the export must not block activating the service's model
        log.warning("%s %s: edge files not published: %s", info.name, info.version, exc)
