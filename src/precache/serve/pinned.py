"""Page-predictor versions that experiment arms pin, for ``/api/ml/predict``.

The rules (load once, keep a refused version refused, at most ``limit``) are
:class:`precache.registry.pinned.PinnedVersions`'s, shared with the warmer. Here a version is loaded
through the same verified path as the active model (``ModelHolder.prepare``), in a worker thread so the
event loop never blocks on a load.
"""

from __future__ import annotations

import asyncio

from precache.defaults import PAGE_PREDICTOR
from precache.registry import ModelRegistry
from precache.registry.pinned import PinnedVersions
from precache.serve.model import ModelHolder, ServedModel


class PinnedModels:
    def __init__(self, registry: ModelRegistry, holder: ModelHolder, limit: int = 4) -> None:
        self.versions = PinnedVersions(
            registry, PAGE_PREDICTOR, lambda path, version: holder.prepare(path, version, record_error=False), limit)

    async def get(self, version: str) -> ServedModel | None:
        """The served model of ``version``, or None when it cannot be served (missing, unverifiable, over
        the limit)."""
        if version in self.versions:
            return self.versions.get(version)
        return await asyncio.to_thread(self.versions.get, version)

    async def aclose(self) -> None:
        for served in self.versions.loaded():
            await served.engine.aclose()
