"""What a service or worker holds: the active model, swapped only for a new version that verifies.

Why a holder: a reload must never leave the caller without a model. When the registry's revision moves,
:meth:`ActiveModel.refresh` loads the newly active version through the verified loader; a tampered,
truncated or missing file is refused (``last_error`` says why) and the current model keeps serving.
"""

from __future__ import annotations

import logging
from typing import Any

from precache.models.files import ModelFileError
from precache.registry.files import load_model_dir
from precache.registry.store import ModelRegistry, RegistryError

log = logging.getLogger(__name__)


class ActiveModel:
    """The loaded active version of one model name."""

    def __init__(self, registry: ModelRegistry, name: str) -> None:
        self.registry = registry
        self.name = name
        self.model: Any = None
        self.version: str | None = None
        self.revision = -1
        self.last_error: str | None = None

    def refresh(self) -> bool:
        """Load the active version if the registry changed since the last look; True when a new one loaded."""
        revision = self.registry.revision()
        if revision == self.revision:
            return False
        self.revision = revision  # a refused version is not retried until the registry changes again
        try:
            info = self.registry.active(self.name)
            if info is None or info.version == self.version:
                return False
            model = load_model_dir(info.path)
        except (ModelFileError, RegistryError, OSError) as exc:
            self.last_error = str(exc)
            log.error("%s: new active version refused, keeping %s: %s", self.name, self.version, exc)
            return False
        self.model, self.version, self.last_error = model, info.version, None
        return True
