"""precache.cache: L1 memory tier, L2 Redis tier and the layered ``PredictiveCache``.

Stable names other areas code against (see docs/contracts.md, "Cache"): ``PredictiveCache``,
``CacheConfig`` (+ ``LeaseConfig``, ``StalenessConfig``, ``EventConfig``), ``MemoryTier``, ``RedisTier``,
``MemoryL2``, ``AccessEvent``, ``Clock``/``SystemClock``/``ManualClock``, ``EvictionPolicy``/``EntryInfo``
and the built-in ``S3FIFOPolicy``/``LRUPolicy``.

Importing this package is light (stdlib, orjson, msgpack): ``RedisTier`` (redis-py), ``StreamSink`` and
``SyncCache`` load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from precache._lazy import lazy_getattr
from precache.cache.clock import Clock, ManualClock, SystemClock
from precache.cache.codec import Codec, Record
from precache.cache.config import CacheConfig, EventConfig, LeaseConfig, StalenessConfig
from precache.cache.decorator import cached
from precache.cache.errors import (
    CacheError,
    CacheUnavailableError,
    L2Error,
    L2KeyError,
    PoisonedValueError,
    UnserializableValueError,
    ValueTooLargeError,
)
from precache.cache.events import AccessEvent, EventBus
from precache.cache.l2 import L2Tier, MemoryL2
from precache.cache.layered import PredictiveCache
from precache.cache.memory import MemoryTier
from precache.cache.policy import (
    BatchEvictPolicy,
    BatchInsertPolicy,
    EntryInfo,
    EvictionPolicy,
    LRUPolicy,
    S3FIFOPolicy,
    StaleAction,
    StalenessSource,
    make_policy,
)
from precache.cache.stats import CacheStats
from precache.resilience import CircuitBreaker

if TYPE_CHECKING:
    from precache.cache.redis_tier import RedisTier
    from precache.cache.stream import StreamSink
    from precache.cache.sync import SyncCache

_LAZY = {
    "RedisTier": "precache.cache.redis_tier",
    "StreamSink": "precache.cache.stream",
    "SyncCache": "precache.cache.sync",
}


__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "AccessEvent",
    "BatchEvictPolicy",
    "BatchInsertPolicy",
    "CacheConfig",
    "CacheError",
    "CacheStats",
    "CacheUnavailableError",
    "CircuitBreaker",
    "Clock",
    "Codec",
    "EntryInfo",
    "EventBus",
    "EventConfig",
    "EvictionPolicy",
    "L2Error",
    "L2KeyError",
    "L2Tier",
    "LRUPolicy",
    "LeaseConfig",
    "ManualClock",
    "MemoryL2",
    "MemoryTier",
    "PoisonedValueError",
    "PredictiveCache",
    "Record",
    "RedisTier",
    "S3FIFOPolicy",
    "StaleAction",
    "StalenessConfig",
    "StalenessSource",
    "StreamSink",
    "SyncCache",
    "SystemClock",
    "UnserializableValueError",
    "ValueTooLargeError",
    "cached",
    "make_policy",
]
