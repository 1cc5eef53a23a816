"""Predictive warming: preload what sessions will ask for next, within budgets (see ``warmer``)."""

from precache.resilience import Backoff, TokenBucket
from precache.warming.allow import UNSAFE_WORDS, AllowRule
from precache.warming.assets import AssetModel
from precache.warming.online import OnlineAssets, OnlineConfig
from precache.warming.resolver import (
    HttpOriginResolver,
    Loader,
    MappingResolver,
    NotPreloadable,
    OriginError,
    Resolver,
)
from precache.warming.warmer import WarmableCache, Warmer, WarmerConfig, WarmerStats

__all__ = [
    "UNSAFE_WORDS",
    "AllowRule",
    "AssetModel",
    "Backoff",
    "HttpOriginResolver",
    "Loader",
    "MappingResolver",
    "NotPreloadable",
    "OnlineAssets",
    "OnlineConfig",
    "OriginError",
    "Resolver",
    "TokenBucket",
    "WarmableCache",
    "Warmer",
    "WarmerConfig",
    "WarmerStats",
]
