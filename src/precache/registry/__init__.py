"""The model registry: versioned, checksummed model directories with an atomic active pointer.

``open_registry()`` builds one from the settings; :class:`ModelRegistry` registers, activates, rolls back,
prunes and verifies; :class:`ActiveModel` is the holder a service reloads from.
"""

from precache.defaults import MODEL_NAMES
from precache.registry.active import ActiveModel
from precache.registry.files import ModelFileError, load_model_dir, verify_model_dir
from precache.registry.notify import CHANNEL, RedisNotifier
from precache.registry.settings import RegistrySettings, open_registry
from precache.registry.store import ActiveChangedError, ModelRegistry, RegistryError, VersionInfo

__all__ = [
    "CHANNEL",
    "MODEL_NAMES",
    "ActiveChangedError",
    "ActiveModel",
    "ModelFileError",
    "ModelRegistry",
    "RedisNotifier",
    "RegistryError",
    "RegistrySettings",
    "VersionInfo",
    "load_model_dir",
    "open_registry",
    "verify_model_dir",
]
