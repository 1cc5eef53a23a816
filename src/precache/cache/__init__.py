"""precache.cache: L1 memory tier, L2 Redis tier and the layered ``PredictiveCache``.

Stable names other areas code against (see docs/contracts.md, "Cache"): ``PredictiveCache``,
``MemoryTier``, ``RedisTier``, ``MemoryL2``, ``AccessEvent``, ``Clock``/``SystemClock``/``ManualClock``,
``EvictionPolicy``/``EntryInfo`` and the built-in ``S3FIFOPolicy``/``LRUPolicy``.
"""

from precache.cache.breaker import CircuitBreaker
from precache.cache.clock import Clock, ManualClock, SystemClock
from precache.cache.codec import Codec, Record
from precache.cache.decorator import cached
from precache.cache.errors import CacheError, PoisonedValueError, UnserializableValueError
from precache.cache.events import AccessEvent, EventBus
from precache.cache.l2 import L2Tier, MemoryL2
from precache.cache.layered import PredictiveCache
from precache.cache.memory import MemoryTier
from precache.cache.policy import (
    EntryInfo,
    EvictionPolicy,
    LRUPolicy,
    S3FIFOPolicy,
    StaleAction,
    StalenessSource,
    make_policy,
)
from precache.cache.redis_tier import RedisTier
from precache.cache.stats import CacheStats
from precache.cache.stream import StreamSink
from precache.cache.sync import SyncCache

__all__ = [
    "AccessEvent",
    "CacheError",
    "CacheStats",
    "CircuitBreaker",
    "Clock",
    "Codec",
    "EntryInfo",
    "EventBus",
    "EvictionPolicy",
    "L2Tier",
    "LRUPolicy",
    "ManualClock",
    "MemoryL2",
    "MemoryTier",
    "PoisonedValueError",
    "PredictiveCache",
    "Record",
    "RedisTier",
    "S3FIFOPolicy",
    "StaleAction",
    "StalenessSource",
    "StreamSink",
    "SyncCache",
    "SystemClock",
    "UnserializableValueError",
    "cached",
    "make_policy",
]
