"""The versioned model store: register, activate, roll back, prune, verify, back up.

Layout under ``MODEL_STORAGE_PATH``::

    revision.json                 {"revision": N}: +1 on every change (register, activate, prune)
    .lock                         flock held for every read-modify-write of registry state
    <name>/active.json            {"version", "previous", "activated", "revision"}
    <name>/v<N>/                  the model's own files + manifest.json (sha256 of every file)
    <name>/v<N>/registry.json     the registry's record: status, metrics on the evaluation slice, data span,
                                  training config, gate decision

Why this shape: a version directory appears by one ``rename`` of a fully written, verified staging
directory, so a crash while registering leaves at most a ``.staging-*`` directory nobody reads. The
active pointer is replaced atomically (see :mod:`precache.registry.atomic`). The model's own manifest is
the one source of checksums; the registry re-checks it (through :mod:`precache.registry.files`) before it
activates, backs up, or loads a version. Versions are never rewritten: a rejected candidate stays
``rejected`` with its reason.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from precache.defaults import MODEL_NAMES
from precache.models.files import ModelFileError
from precache.registry.atomic import file_lock, fsync_dir, read_json_file, write_json_atomic
from precache.registry.files import verify_model_dir

log = logging.getLogger(__name__)

RECORD = "registry.json"
ACTIVE = "active.json"
REVISION = "revision.json"
RECORD_FORMAT = 1
_VERSION_RE = re.compile(r"^v(\d+)$")
Status = Literal["accepted", "rejected"]


class RegistryError(ValueError):
    """A registry operation cannot be done (unknown name or version, a rejected version, no previous one)."""


class ActiveChangedError(RegistryError):
    """``activate(..., if_active=X)`` found another active version than X (someone activated meanwhile)."""


ANY: Any = object()  # ``if_active`` default: activate whatever is active now


@dataclass(slots=True)
class VersionInfo:
    """One registered version, as ``registry.json`` records it (plus where it lives)."""

    name: str
    version: str
    created: str
    kind: str
    status: Status
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    data_span: dict[str, Any] = field(default_factory=dict)
    training_config: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    path: Path = Path()

    @property
    def number(self) -> int:
        return int(self.version[1:])

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def _check_name(name: str) -> str:
    if name not in MODEL_NAMES:
        raise RegistryError(f"unknown model name {name!r}; known: {', '.join(MODEL_NAMES)}")
    return name


def _copy_durably(source: Path, target: Path) -> None:
    """Copy a directory tree and fsync every file and directory, so a rename afterwards publishes it whole."""
    shutil.copytree(source, target)
    for path in sorted(target.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb+") as handle:
                os.fsync(handle.fileno())
        else:
            fsync_dir(path)
    fsync_dir(target)


Notify = Callable[[dict[str, Any]], None]


class ModelRegistry:
    """Versions of ``page-predictor`` and ``cache-optimizer`` under ``root``; backups under ``backup_root``.

    ``keep`` is how many versions per name ``prune`` keeps (never deleting the active or previous one).
    ``notify`` is called with ``{"revision", "name", "event", "version"}`` after each change (for example
    :class:`precache.registry.notify.RedisNotifier`); it must not raise. ``on_activate`` is called with the
    verified version before the pointer moves to it (for example
    :func:`precache.edge.publish.publish_on_activate`, which writes the edge Workers' files beside the
    model's own); it must not raise either.
    """

    def __init__(self, root: str | Path, backup_root: str | Path, keep: int = 5, notify: Notify | None = None,
                 lock_timeout: float = 60.0, on_activate: Callable[[VersionInfo], None] | None = None) -> None:
        self.root = Path(root).resolve()
        self.backup_root = Path(backup_root).resolve()
        if self.backup_root == self.root or self.root in self.backup_root.parents:
            raise ValueError(
                f"MODEL_BACKUP_PATH ({self.backup_root}) must not lie inside MODEL_STORAGE_PATH ({self.root}): "
                "a backup there would look like a model name"
            )
        if keep < 2:
            raise ValueError(f"keep must be >= 2 (the active and the previous version), got {keep}")
        self.keep = keep
        self.notify = notify
        self.lock_timeout = lock_timeout
        self.on_activate = on_activate

    # -- reading ---------------------------------------------------------------------------------------
    def revision(self) -> int:
        """The registry's change counter (0 before the first change): cheap to poll, one tiny file."""
        path = self.root / REVISION
        if not path.is_file():
            return 0
        return int(read_json_file(path).get("revision", 0))

    def versions(self, name: str) -> list[VersionInfo]:
        """Every registered version of ``name``, oldest first."""
        directory = self.root / _check_name(name)
        if not directory.is_dir():
            return []
        found = []
        for sub in directory.iterdir():
            if _VERSION_RE.match(sub.name) and (sub / RECORD).is_file():
                found.append(self._info(name, sub))
        return sorted(found, key=lambda info: info.number)

    def get(self, name: str, version: str) -> VersionInfo:
        path = self.root / _check_name(name) / version
        if not _VERSION_RE.match(version) or not (path / RECORD).is_file():
            known = ", ".join(v.version for v in self.versions(name)) or "none"
            raise RegistryError(f"{name} has no version {version!r} (registered: {known})")
        return self._info(name, path)

    def pointer(self, name: str) -> dict[str, Any]:
        """The active pointer of ``name`` (``{}`` when nothing was activated yet)."""
        path = self.root / _check_name(name) / ACTIVE
        return dict(read_json_file(path)) if path.is_file() else {}

    def active(self, name: str) -> VersionInfo | None:
        version = self.pointer(name).get("version")
        return self.get(name, str(version)) if version else None

    def _info(self, name: str, path: Path) -> VersionInfo:
        record = read_json_file(path / RECORD)
        if not isinstance(record, dict):
            raise ModelFileError(f"{path / RECORD} is not a registry record")
        fields = {k: record[k] for k in VersionInfo.__dataclass_fields__ if k in record and k != "path"}
        return VersionInfo(**{**fields, "name": name, "version": path.name, "path": path})

    # -- changing ----------------------------------------------------------------------------------------
    def register(self, name: str, source: str | Path, *, status: Status = "accepted", reason: str = "",
                 metrics: dict[str, Any] | None = None, data_span: dict[str, Any] | None = None,
                 training_config: dict[str, Any] | None = None, gate: dict[str, Any] | None = None
                 ) -> VersionInfo:
        """Copy a verified model directory in as the next version. A bad directory changes nothing."""
        _check_name(name)
        manifest = verify_model_dir(source)
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        staging = directory / f".staging-{uuid.uuid4().hex}"
        try:
            _copy_durably(Path(source), staging)
            verify_model_dir(staging)  # the copy, not just the source, must be intact
            record = {
                "record_format": RECORD_FORMAT,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "kind": str(manifest.get("kind", "")),
                "status": status,
                "reason": reason,
                "metrics": metrics if metrics is not None else dict(manifest.get("metrics") or {}),
                "data_span": data_span or {},
                "training_config": training_config or dict(manifest.get("config") or {}),
                "gate": gate or {},
                "files": dict(manifest.get("sha256") or manifest.get("files") or {}),
            }
            write_json_atomic(staging / RECORD, record)
            with self._locked():
                numbers = [int(m.group(1)) for p in directory.iterdir() if (m := _VERSION_RE.match(p.name))]
                version = f"v{max(numbers, default=0) + 1}"
                staging.rename(directory / version)
                fsync_dir(directory)
                revision = self._bump()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._notify(revision, name, "rejected" if status == "rejected" else "registered", version)
        return self.get(name, version)

    def activate(self, name: str, version: str, *, force: bool = False, if_active: str | None = ANY) -> VersionInfo:
        """Point ``name`` at ``version`` (verified first, then backed up). A rejected version needs ``force``.

        ``if_active`` makes it a compare-and-swap: only if the active version is still ``if_active`` (None:
        still nothing active), else :class:`ActiveChangedError` -- a candidate gated against one version
        must not replace another that went live meanwhile."""
        info = self.get(name, version)
        if info.status == "rejected" and not force:
            raise RegistryError(f"{name} {version} was rejected ({info.reason}); pass force to activate it anyway")
        verify_model_dir(info.path)
        if self.on_activate is not None:  # before the backup, so that copies what the hook added
            self.on_activate(info)
        self.backup(info)
        with self._locked():
            if not (info.path / RECORD).is_file():  # pruned by another process since we looked
                raise RegistryError(f"{name} {version} was deleted while being activated")
            current = self.pointer(name).get("version")
            if if_active is not ANY and current != if_active:
                raise ActiveChangedError(f"{name}: the active version is {current}, not {if_active}; {version} was "
                                         "not activated")
            previous = current if current and current != version else self.pointer(name).get("previous")
            revision = self._bump()
            write_json_atomic(self.root / name / ACTIVE, {
                "version": version, "previous": previous, "revision": revision,
                "activated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
        self._notify(revision, name, "activated", version)
        return info

    def rollback(self, name: str, version: str | None = None) -> VersionInfo:
        """Activate ``version``, or the previous active version when none is named."""
        target = version or self.pointer(name).get("previous")
        if not target:
            raise RegistryError(f"{name} has no previous version to roll back to")
        return self.activate(name, str(target), force=version is not None)

    def prune(self, name: str, keep: int | None = None) -> list[str]:
        """Delete all but the newest ``keep`` versions, never the active or the previous one."""
        keep = self.keep if keep is None else keep
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        removed = []
        with self._locked():
            pointer = self.pointer(name)
            protected = {pointer.get("version"), pointer.get("previous")}
            for info in self.versions(name)[:-keep]:
                if info.version in protected:
                    continue
                trash = info.path.with_name(f".deleting-{info.version}-{uuid.uuid4().hex}")
                info.path.rename(trash)  # gone from listings at once; deleted below
                shutil.rmtree(trash)
                removed.append(info.version)
            revision = self._bump() if removed else None
        if revision is not None:
            self._notify(revision, name, "pruned", ",".join(removed))
        return removed

    def backup(self, info: VersionInfo) -> Path:
        """Copy a version to ``backup_root/<name>/<version>`` (kept as it is when already there and intact)."""
        target = self.backup_root / info.name / info.version
        if target.is_dir():
            try:
                verify_model_dir(target)
                return target
            except ModelFileError:
                log.warning("backup %s is damaged; copying it again", target)
                shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".staging-{info.version}-{uuid.uuid4().hex}")
        try:
            _copy_durably(info.path, staging)
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
                shutil.rmtree(staging)  # another process backed the same version up meanwhile
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def verify(self, name: str) -> list[tuple[str, str | None]]:
        """Re-check every file of every version of ``name``: ``[(version, error or None)]``."""
        results: list[tuple[str, str | None]] = []
        for info in self.versions(name):
            try:
                verify_model_dir(info.path)
                results.append((info.version, None))
            except ModelFileError as exc:
                results.append((info.version, str(exc)))
        return results

    # -- internals ----------------------------------------------------------------------------------------
    def _locked(self) -> Any:
        return file_lock(self.root / ".lock", self.lock_timeout)

    def _bump(self) -> int:
        """+1 on the revision counter; call with the lock held."""
        revision = self.revision() + 1
        write_json_atomic(self.root / REVISION, {"revision": revision})
        return revision

    def _notify(self, revision: int, name: str, event: str, version: str) -> None:
        if self.notify is None:
            return
        try:
            self.notify({"revision": revision, "name": name, "event": event, "version": version})
        except Exception as exc:  # a notification is best effort: the revision file is the truth
            log.warning("registry change notification failed: %s", exc)
