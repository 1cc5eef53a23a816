"""precache: a predictive multi-layer cache (L1 memory + L2 Redis) with learned prediction and warming.

The names below are the public API. Importing ``precache`` loads nothing but this file: each name is
imported from its module on first use, so ``import precache`` (and ``import precache.cache``) pull in
neither numpy, pydantic, onnxruntime, torch, httpx nor redis until something needs them.
"""

from __future__ import annotations

from precache._lazy import lazy_package

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: ``import precache`` stays one small file

if TYPE_CHECKING:  # the public API, listed once: mypy reads it as written, the lazy loader parses it
    from precache.cache import AccessEvent as AccessEvent
    from precache.cache import CacheConfig as CacheConfig
    from precache.cache import CacheError as CacheError
    from precache.cache import CacheStats as CacheStats
    from precache.cache import CacheUnavailableError as CacheUnavailableError
    from precache.cache import Clock as Clock
    from precache.cache import EntryInfo as EntryInfo
    from precache.cache import EvictionPolicy as EvictionPolicy
    from precache.cache import LRUPolicy as LRUPolicy
    from precache.cache import ManualClock as ManualClock
    from precache.cache import MemoryL2 as MemoryL2
    from precache.cache import MemoryTier as MemoryTier
    from precache.cache import PoisonedValueError as PoisonedValueError
    from precache.cache import PredictiveCache as PredictiveCache
    from precache.cache import RedisTier as RedisTier
    from precache.cache import S3FIFOPolicy as S3FIFOPolicy
    from precache.cache import SyncCache as SyncCache
    from precache.cache import SystemClock as SystemClock
    from precache.cache import UnserializableValueError as UnserializableValueError
    from precache.cache import cached as cached
    from precache.config import ConfigError as ConfigError
    from precache.config import Settings as Settings
    from precache.config import get_settings as get_settings
    from precache.config import load_settings as load_settings
    from precache.evaluation import Scores as Scores
    from precache.evaluation import evaluate as evaluate
    from precache.evaluation import time_split as time_split
    from precache.inference import InferenceEngine as InferenceEngine
    from precache.models import MarkovPredictor as MarkovPredictor
    from precache.models import ModelFileError as ModelFileError
    from precache.models import PagePredictorBase as PagePredictorBase
    from precache.models import PopularityPredictor as PopularityPredictor
    from precache.models import PPMPredictor as PPMPredictor
    from precache.models import SessionKNNPredictor as SessionKNNPredictor
    from precache.models import build_predictor as build_predictor
    from precache.models import load_predictor as load_predictor
    from precache.stack import Stack as Stack
    from precache.stack import build_stack as build_stack
    from precache.traces import Request as Request
    from precache.traces import Session as Session
    from precache.traces import Sessionizer as Sessionizer
    from precache.traces import TraceFormatError as TraceFormatError
    from precache.traces import read_requests as read_requests
    from precache.traces import read_sessions as read_sessions
    from precache.warming import HttpOriginResolver as HttpOriginResolver
    from precache.warming import Resolver as Resolver
    from precache.warming import Warmer as Warmer
    from precache.warming import WarmerConfig as WarmerConfig

__version__ = "0.1.0"

# ``from precache import *`` imports every name above but InferenceEngine (onnxruntime): ask for
# ``precache.InferenceEngine`` by name.
__getattr__, __dir__ = lazy_package(__name__, hidden=("InferenceEngine",))
