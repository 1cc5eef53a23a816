"""The dashboard's model panel: the served page predictor and recent versions with their gate decisions.

Why cached by revision: the dashboard's event stream asks every tick (2 s) for every open dashboard, and the
versions are files on the shared ``MODEL_STORAGE_PATH`` volume. Reading them on the event loop stalled
every request behind it; now the registry's revision counter (one small file) is read in a worker thread
each tick, and the versions are read again, also in a thread, only when that revision moved (any
registration, activation or rollback bumps it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from precache.defaults import MODEL_NAMES, PAGE_PREDICTOR
from precache.registry import ModelRegistry

NAMES = MODEL_NAMES
PER_MODEL = 10


def gate_reason(info: Any) -> str:
    """The gate's decision for a version: the registry keeps it under ``gate.reason`` (``reason`` is only set
    for a rejected version), so the dashboard's gate column read the wrong field and showed nothing."""
    gate = getattr(info, "gate", None) or {}
    return str(gate.get("reason") or getattr(info, "reason", "") or "")


class ModelHistory:
    def __init__(self, registry: ModelRegistry, served_version: Callable[[], str | None]) -> None:
        self.registry, self.served_version = registry, served_version
        self.reads = 0  # how often the versions were read from the volume (tests check the cache holds)
        self._cached: tuple[int, list[dict[str, Any]]] | None = None
        self._lock = asyncio.Lock()

    def _versions(self) -> list[dict[str, Any]]:
        self.reads += 1
        return [{"name": name, "version": info.version, "status": info.status, "reason": gate_reason(info)}
                for name in NAMES for info in self.registry.versions(name)[-PER_MODEL:]]

    async def history(self) -> list[dict[str, Any]]:
        async with self._lock:  # several dashboards ticking at once share one read
            revision = await asyncio.to_thread(self.registry.revision)
            if self._cached is None or self._cached[0] != revision:
                self._cached = (revision, await asyncio.to_thread(self._versions))
            return self._cached[1]

    async def __call__(self) -> dict[str, Any]:
        version = self.served_version()
        active = {"name": PAGE_PREDICTOR, "version": version} if version is not None else None
        return {"active": active, "history": await self.history()}
