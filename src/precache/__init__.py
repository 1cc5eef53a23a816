"""precache: a predictive multi-layer cache (L1 memory + L2 Redis) with learned prediction and warming.

The names below are the public API. Training-only code (torch, LightGBM) is never imported from here: the
attention model and the optimizer's trainer load lazily, so ``import precache`` stays light.
"""

from precache.cache import (
    AccessEvent,
    CacheError,
    CacheStats,
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

_LAZY = {"InferenceEngine": "precache.inference"}


def __getattr__(name: str) -> object:
    """Load heavier parts (onnxruntime) only when asked for: ``precache.InferenceEngine``."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'precache' has no attribute {name!r}")

__all__ = [
    "AccessEvent",
    "CacheError",
    "CacheStats",
    "Clock",
    "ConfigError",
    "EntryInfo",
    "EvictionPolicy",
    "HttpOriginResolver",
    "InferenceEngine",
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
    "SyncCache",
    "SystemClock",
    "TraceFormatError",
    "UnserializableValueError",
    "Warmer",
    "WarmerConfig",
    "__version__",
    "build_predictor",
    "cached",
    "evaluate",
    "get_settings",
    "load_predictor",
    "load_settings",
    "read_requests",
    "read_sessions",
    "time_split",
]
