"""Page-predictor versions that experiment arms pin, for ``/api/ml/predict``.

A ``model_version`` arm answers its sessions with that registry version, never with another model (that
would mix the arms). A version is loaded once, on first use, in a worker thread through the same verified
path as the active model (``ModelHolder.prepare``: every file's sha256 against the manifest), and kept for
the app's lifetime; one that is missing or fails verification stays refused (answered 503) rather than
being retried on every request. At most ``limit`` versions are held: an experiment compares a few.
"""

from __future__ import annotations

import asyncio
import logging

from precache.registry import ModelRegistry
from precache.serve.model import ModelHolder, ServedModel

log = logging.getLogger("precache.serve")

PAGE_PREDICTOR = "page-predictor"


class PinnedModels:
    def __init__(self, registry: ModelRegistry, holder: ModelHolder, limit: int = 4) -> None:
        self.registry, self.holder, self.limit = registry, holder, limit
        self._loads: dict[str, asyncio.Future[ServedModel | None]] = {}

    async def get(self, version: str) -> ServedModel | None:
        """The served model of ``version``, or None when it cannot be served (missing, unverifiable, over
        the limit). Concurrent first requests share one load."""
        load = self._loads.get(version)
        if load is None:
            if len(self._loads) >= self.limit:
                log.warning("not loading pinned model %s: %d pinned versions already held", version, self.limit)
                return None
            load = self._loads[version] = asyncio.ensure_future(asyncio.to_thread(self._load, version))
        return await asyncio.shield(load)

    def _load(self, version: str) -> ServedModel | None:
        try:
            return self.holder.prepare(self.registry.get(PAGE_PREDICTOR, version).path, version, record_error=False)
        except Exception as exc:
            log.warning("pinned model %s refused: %s: %s", version, type(exc).__name__, exc)
            return None

    async def aclose(self) -> None:
        for load in self._loads.values():
            if load.done() and not load.cancelled() and (served := load.result()) is not None:
                await served.engine.aclose()
            elif not load.done():
                load.cancel()
        self._loads.clear()
