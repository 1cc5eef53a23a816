"""precache: a predictive multi-layer cache (L1 memory + L2 Redis) with learned prediction and warming.

The names below are the public API. Importing ``precache`` loads nothing but this file: each name is
imported from its module on first use, so ``import precache`` (and ``import precache.cache``) pull in
neither numpy, pydantic, onnxruntime, torch, httpx nor redis until something needs them.
"""

from __future__ import annotations

from precache._lazy import lazy_getattr

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: ``import precache`` stays one small file

if TYPE_CHECKING:
    from precache.cache import (
        AccessEvent,
        CacheConfig,
        CacheError,
        CacheStats,
        CacheUnavailableError,
        Clock,
        EntryInfo,
        EvictionPolicy,
        LRUPolicy,
        ManualClock,
        MemoryL2,
        MemoryTier,
        PoisonedValueError,
        PredictiveCache,
        RedisTier,
        S3FIFOPolicy,
        SyncCache,
        SystemClock,
        UnserializableValueError,
        cached,
    )
    from precache.config import ConfigError, Settings, get_settings, load_settings
    from precache.evaluation import Scores, evaluate, time_split
    from precache.inference import InferenceEngine  # noqa: F401 - lazy, kept out of __all__
    from precache.models import (
        MarkovPredictor,
        ModelFileError,
        PagePredictorBase,
        PopularityPredictor,
        PPMPredictor,
        SessionKNNPredictor,
        build_predictor,
        load_predictor,
    )
    from precache.stack import Stack, build_stack
    from precache.traces import (
        Request,
        Session,
        Sessionizer,
        TraceFormatError,
        read_requests,
        read_sessions,
    )
    from precache.warming import HttpOriginResolver, Resolver, Warmer, WarmerConfig

__version__ = "0.1.0"

_MODULES: dict[str, tuple[str, ...]] = {
    "precache.cache": (
        "AccessEvent", "CacheConfig", "CacheError", "CacheStats", "CacheUnavailableError", "Clock", "EntryInfo",
        "EvictionPolicy", "LRUPolicy", "ManualClock", "MemoryL2", "MemoryTier", "PoisonedValueError",
        "PredictiveCache", "RedisTier", "S3FIFOPolicy", "SyncCache", "SystemClock", "UnserializableValueError",
        "cached",
    ),
    "precache.config": ("ConfigError", "Settings", "get_settings", "load_settings"),
    "precache.evaluation": ("Scores", "evaluate", "time_split"),
    "precache.inference": ("InferenceEngine",),
    "precache.models": (
        "MarkovPredictor", "ModelFileError", "PPMPredictor", "PagePredictorBase", "PopularityPredictor",
        "SessionKNNPredictor", "build_predictor", "load_predictor",
    ),
    "precache.stack": ("Stack", "build_stack"),
    "precache.traces": ("Request", "Session", "Sessionizer", "TraceFormatError", "read_requests", "read_sessions"),
    "precache.warming": ("HttpOriginResolver", "Resolver", "Warmer", "WarmerConfig"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# ``from precache import *`` imports these; InferenceEngine (onnxruntime) is left out on purpose:
# ask for ``precache.InferenceEngine`` by name.
__all__ = [
    "AccessEvent",
    "CacheConfig",
    "CacheError",
    "CacheStats",
    "CacheUnavailableError",
    "Clock",
    "ConfigError",
    "EntryInfo",
    "EvictionPolicy",
    "HttpOriginResolver",
    "LRUPolicy",
    "ManualClock",
    "MarkovPredictor",
    "MemoryL2",
    "MemoryTier",
    "ModelFileError",
    "PPMPredictor",
    "PagePredictorBase",
    "PoisonedValueError",
    "PopularityPredictor",
    "PredictiveCache",
    "RedisTier",
    "Request",
    "Resolver",
    "S3FIFOPolicy",
    "Scores",
    "Session",
    "SessionKNNPredictor",
    "Sessionizer",
    "Settings",
    "Stack",
    "SyncCache",
    "SystemClock",
    "TraceFormatError",
    "UnserializableValueError",
    "Warmer",
    "WarmerConfig",
    "__version__",
    "build_predictor",
    "build_stack",
    "cached",
    "evaluate",
    "get_settings",
    "load_predictor",
    "load_settings",
    "read_requests",
    "read_sessions",
    "time_split",
]
