"""Registry versions that experiment arms pin, loaded once on first use and kept.

Why one class for the service and the warmer: an arm that pins ``model_version`` must be answered by that
version or not at all (another model would mix the arms), in ``/api/ml/predict`` and in the warmer alike.
Both need the same rules: load through the caller's verified path (every file's sha256 against the
manifest) on first use; keep a version that is missing or fails verification refused (``None``) rather than
retrying it on every request; hold at most ``limit`` versions (an experiment compares a few). What a
"loaded version" is differs (a served model with its engine, a bare predictor), so the loader is a parameter.

Thread-safe: loads run in worker threads; concurrent first requests for one version share one load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from precache.registry.store import ModelRegistry

log = logging.getLogger(__name__)

T = TypeVar("T")


class PinnedVersions(Generic[T]):
    """``get(version)``: the loaded version, or None when it cannot be served (missing, unverifiable,
    over the limit)."""

    def __init__(self, registry: ModelRegistry, name: str, load: Callable[[Path, str], T], limit: int = 4) -> None:
        self.registry, self.name, self.limit = registry, name, limit
        self._load = load
        self._held: dict[str, T | None] = {}
        self._lock = threading.Lock()

    def __contains__(self, version: object) -> bool:
        """Whether ``version`` was settled (loaded or refused): ``get`` then returns at once."""
        return version in self._held

    def get(self, version: str) -> T | None:
        if version in self._held:  # the common case, without the lock (a dict read is atomic)
            return self._held[version]
        with self._lock:  # one load at a time: a second caller for the same version waits, then reads
            if version not in self._held:
                if len(self._held) >= self.limit:
                    log.warning("not loading pinned %s %s: %d pinned versions already held",
                                self.name, version, self.limit)
                    return None
                self._held[version] = self._load_or_none(version)
            return self._held[version]

    def loaded(self) -> list[T]:
        """The versions loaded successfully so far (to release their resources)."""
        with self._lock:
            return [value for value in self._held.values() if value is not None]

    def _load_or_none(self, version: str) -> T | None:
        try:
            return self._load(self.registry.get(self.name, version).path, version)
        except Exception as exc:  # any fault: refused, not retried
            log.warning("pinned %s %s refused: %s: %s", self.name, version, type(exc).__name__, exc)
            return None


def version_problem(registry: ModelRegistry, name: str, version: str) -> str | None:
    """Why ``version`` of ``name`` could not be pinned by an experiment arm (None: it can).

    Checked when an experiment is created (issue 28): a version that does not exist, or whose files do not
    match its manifest, would be refused by :class:`PinnedVersions` on every request of that arm."""
    from precache.models.files import ModelFileError
    from precache.registry.files import verify_model_dir
    from precache.registry.store import RegistryError

    try:
        info = registry.get(name, version)
        verify_model_dir(info.path)
    except RegistryError as exc:
        return str(exc)
    except (ModelFileError, OSError) as exc:
        return f"{name} {version} cannot be served: {exc}"
    return None
