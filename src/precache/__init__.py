"""precache: a predictive multi-layer cache (L1 memory + L2 Redis) with learned prediction and warming."""

from precache.config import ConfigError, Settings, get_settings, load_settings

__version__ = "0.1.0"

__all__ = ["ConfigError", "Settings", "__version__", "get_settings", "load_settings"]
