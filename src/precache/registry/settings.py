"""The registry's settings, taken from precache's :class:`~precache.config.Settings`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from precache.config import Settings, get_settings
from precache.registry.notify import RedisNotifier
from precache.registry.store import ModelRegistry


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    storage: Path
    backup: Path
    keep: int = 5
    redis_url: str | None = None
    edge_publish: bool = True
    edge_worker: str = "table"  # the deployed edge Worker: decides which component of an auto model is published

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RegistrySettings:
        s = settings or get_settings()
        return cls(storage=s.model_storage_path, backup=s.model_backup_path, keep=s.model_keep_versions,
                   redis_url=s.redis_url, edge_publish=s.model_edge_publish,
                   edge_worker=s.model_edge_worker)

    def open(self) -> ModelRegistry:
        notify = RedisNotifier(self.redis_url) if self.redis_url else None
        on_activate = None
        if self.edge_publish:  # activating a page predictor writes the edge Workers' files (issue 19)
            from precache.edge.publish import publish_on_activate

            on_activate = partial(publish_on_activate, worker=self.edge_worker)
        return ModelRegistry(self.storage, self.backup, keep=self.keep, notify=notify, on_activate=on_activate)


def open_registry(settings: Settings | None = None) -> ModelRegistry:
    """The registry the settings describe (MODEL_STORAGE_PATH, MODEL_BACKUP_PATH, MODEL_KEEP_VERSIONS)."""
    return RegistrySettings.from_settings(settings).open()
