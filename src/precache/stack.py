"""``build_stack()``: the whole precache stack from the environment, in one call.

What the seed system's ``initializeMLSystem({...})`` did, from :mod:`precache.config` settings:

* L2: a :class:`~precache.cache.redis_tier.RedisTier` on ``REDIS_URL`` (``l2=False``: no L2);
* the page predictor and the learned cache policy: from ``model_dir=`` when given; else the model
  registry's active versions (``page-predictor``, ``cache-optimizer`` under ``MODEL_STORAGE_PATH``, see
  :mod:`precache.registry`); else ``MODEL_STORAGE_PATH`` read as a plain model directory. A plain model
  directory holds a predictor's ``manifest.json``, or ``predictor/`` and ``optimizer/`` subdirectories.
  Either model may be absent: no predictor = no warming, no optimizer = S3-FIFO. Every file is verified
  by sha256 before loading;
* the warmer's threshold and budgets from ``PRECACHE_PREDICTIVE__*`` (it needs a ``resolver``, the
  application's way to load a page, or ``PRECACHE_PREDICTIVE__ORIGIN_URL`` for an HTTP origin);
* ``ML_ENABLED=false`` turns the learned layer off everywhere: a plain cache, no model loaded, nothing
  warmed;
* experiments (through the protocols in :mod:`precache.types`, never ``precache.experiments`` itself):
  ``session_params`` gives the warmer each session's arm (warming off, threshold, a pinned registry
  version of the page predictor, loaded and verified on first use); ``replica_arm`` fixes this replica's
  cache policy (learned or S3-FIFO) and TTL mode (fixed or adaptive) for the life of the stack;
  ``preload_observer`` is told each session's preloads (loaded, used), e.g. to count them per arm.

Heavy parts (pydantic for the settings, numpy/onnxruntime for models, redis-py, httpx) load here, on
call, never at ``import precache``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from precache.cache.clock import SystemClock
from precache.cache.config import CacheConfig
from precache.cache.layered import PredictiveCache
from precache.cache.memory import MemoryTier
from precache.defaults import CACHE_OPTIMIZER, MODEL_NAMES, PAGE_PREDICTOR
from precache.types import Clock, ReplicaArm, SessionParameters

if TYPE_CHECKING:
    from precache.cache.policy import EvictionPolicy
    from precache.config import Settings
    from precache.online.layer import OnlineLayer
    from precache.warming.resolver import Resolver
    from precache.warming.warmer import Predictor, PredictorSource, PreloadObserver, Warmer


@dataclass
class Stack:
    """What :func:`build_stack` built. ``async with stack:`` starts and closes it."""

    settings: Settings
    cache: PredictiveCache
    predictor: Any | None = None
    warmer: Warmer | None = None
    model_dir: Path | None = None
    loaded: dict[str, str] = field(default_factory=dict)
    """What was loaded from the model directory (``{"predictor": kind, "optimizer": version, "optimizer policy":
    the shipped policy chosen on the validation slice}``)."""
    online: OnlineLayer | None = None
    """The online layer the warmer learns and ranks with (``ML_ONLINE_*``), shared through Redis with ``l2``."""
    _unsubscribe: Any = field(default=None, repr=False)

    async def __aenter__(self) -> Stack:
        """Start the cache (invalidation listener) and the warmer's background runner; the warmer
        learns from the cache's access events. The application tells it what each session viewed with
        ``stack.warmer.observe(session_id, page)``."""
        await self.cache.start()
        if self.online is not None:
            self.online.start()
        if self.warmer is not None:
            self._unsubscribe = self.cache.subscribe(self.warmer.handle_event)
            self.warmer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.warmer is not None:
            await self.warmer.stop()
        if self.online is not None:
            await self.online.close()
        await self.cache.close()


def build_stack(
    settings: Settings | None = None,
    *,
    model_dir: str | Path | None = None,
    resolver: Resolver | None = None,
    config: CacheConfig | None = None,
    l1: MemoryTier | None = None,
    l2: bool = True,
    clock: Clock | None = None,
    session_params: SessionParameters | None = None,
    replica_arm: ReplicaArm | None = None,
    preload_observer: PreloadObserver | None = None,
) -> Stack:
    """Build cache, predictor, learned policy and warmer from ``settings`` (default: the environment).

    ``config`` overrides cache behaviour (its ``default_ttl`` etc.); ``l1`` replaces the memory tier
    (its policy is then kept as given). Raises :class:`~precache.config.ConfigError` on a bad setting
    and :class:`~precache.models.ModelFileError` on a model directory that fails verification."""
    if settings is None:
        from precache.config import load_settings

        settings = load_settings()
    clock = clock if clock is not None else SystemClock()
    ml = settings.ml_enabled
    loaded: dict[str, str] = {}
    predictor: Any | None = None
    policy: EvictionPolicy | None = None
    predictor_dir: Path | None = None
    optimizer_dir: Path | None = None
    if ml:
        predictor_dir, optimizer_dir = _model_dirs(settings, model_dir, loaded)
    adaptive_ttl = settings.predictive.adaptive_ttl
    if replica_arm is not None:
        loaded["replica arm"] = f"{replica_arm.experiment}:{replica_arm.arm}"
        if replica_arm.ttl_mode is not None:
            adaptive_ttl = replica_arm.ttl_mode == "adaptive"
        if replica_arm.cache_policy == "s3fifo":
            optimizer_dir = None
        elif replica_arm.cache_policy == "learned" and optimizer_dir is None:
            loaded["replica arm"] += " (no cache optimizer to load: S3-FIFO)"
    if optimizer_dir is not None and l1 is None:
        policy = _load_policy(optimizer_dir, clock, adaptive_ttl, loaded)
    if predictor_dir is not None:
        predictor = _load_predictor(predictor_dir, loaded)
    if l1 is None:
        l1 = MemoryTier(policy=policy, clock=clock)
    cache_config = config if config is not None else CacheConfig()
    if not ml:  # no learned staleness hints either
        cache_config = dataclasses.replace(
            cache_config, staleness=dataclasses.replace(cache_config.staleness, enabled=False))
    tier = None
    if l2:
        from precache.cache.redis_tier import RedisTier

        tier = RedisTier(settings.redis_url)
    cache = PredictiveCache(l1, tier, clock, config=cache_config)
    warmer = None
    online = None
    if ml and predictor is not None:
        if resolver is None and settings.predictive.origin_url:
            from precache.warming.resolver import HttpOriginResolver

            resolver = HttpOriginResolver(settings.predictive.origin_url)
        if resolver is not None:
            from precache.warming.warmer import Warmer, WarmerConfig

            versions = _registry_versions(settings) if session_params is not None and model_dir is None else None
            warmer_config = WarmerConfig.from_settings(settings)
            online = _online_layer(settings, l2, clock, predictor_dir)
            ranked, history = _online_parts(online, predictor, warmer_config)
            warmer = Warmer(cache, resolver, clock, predictor=ranked, config=warmer_config, params=session_params,
                            predictors=versions, on_preload=preload_observer, history=history,
                            model_version=loaded.get("page-predictor version"))
    return Stack(settings, cache, predictor, warmer, predictor_dir or optimizer_dir, loaded, online)


def _online_parts(online: OnlineLayer | None, predictor: Any, config: Any) -> tuple[Any, Any]:
    """The warmer's predictor and history with the online layer: every view written to the history teaches
    it, answers are merged with its counts (without it: the frozen predictor and the warmer's own history)."""
    if online is None:
        return predictor, None
    from precache.history import MemoryHistories
    from precache.online.hook import LearningHistory, OnlineRanker

    return OnlineRanker(predictor, online), LearningHistory(MemoryHistories(config.max_sessions, config.max_history),
                                                            online)


def _online_layer(settings: Settings, l2: bool, clock: Clock, model_dir: Path | None = None) -> OnlineLayer | None:
    """The online layer (``ML_ONLINE_*``): in process, its counts shared through ``REDIS_URL`` when the
    stack has an L2 (a Redis of its own connection: the cache's client stays the cache's); on the settings
    stored with the model in ``model_dir``, environment variables overriding (:mod:`precache.online.stored`)."""
    from precache.online.layer import OnlineLayer
    from precache.online.redis_store import RedisCounts
    from precache.online.settings import load_online_settings

    online = load_online_settings()
    if not online.active(settings):
        return None
    store = None
    if l2:
        from redis.asyncio import Redis

        store = RedisCounts(Redis.from_url(settings.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25),
                            online.half_life, prefix=online.redis_prefix, max_contexts=online.max_contexts,
                            max_successors=online.max_successors)
    layer = OnlineLayer(online.merge_params(), store=store, guard=online.guard(), max_contexts=online.max_contexts,
                        max_successors=online.max_successors, flush_seconds=online.flush_ms / 1000,
                        refresh_seconds=online.refresh_ms / 1000, clock=clock.now, calibrator=online.calibrator())
    if model_dir is not None:
        from precache.online.stored import StoredSettingsFollower

        StoredSettingsFollower(layer, online)(model_dir)
    return layer


def _model_dirs(settings: Settings, model_dir: str | Path | None,
                loaded: dict[str, str]) -> tuple[Path | None, Path | None]:
    """(predictor directory, optimizer directory), each None when there is none (see the module doc)."""
    if model_dir is None:
        from precache.registry import open_registry

        registry = open_registry(settings)
        active = {name: registry.active(name) for name in MODEL_NAMES}
        if any(info is not None for info in active.values()):
            for name, info in active.items():
                if info is not None:
                    loaded[f"{name} version"] = info.version
            predictor, optimizer = active[PAGE_PREDICTOR], active[CACHE_OPTIMIZER]
            return (predictor.path if predictor else None), (optimizer.path if optimizer else None)
    root = Path(model_dir) if model_dir is not None else settings.model_storage_path
    predictor_dir = next((d for d in (root, root / "predictor") if (d / "manifest.json").is_file()), None)
    optimizer_dir = root / "optimizer" if (root / "optimizer" / "manifest.json").is_file() else None
    return predictor_dir, optimizer_dir


def _load_predictor(directory: Path, loaded: dict[str, str]) -> Any:
    from precache.models import load_predictor

    predictor = load_predictor(directory)
    loaded["predictor"] = str(getattr(predictor, "name", type(predictor).__name__))
    return predictor


def _load_policy(directory: Path, clock: Clock, adaptive_ttl: bool, loaded: dict[str, str]) -> EvictionPolicy:
    """The policy chosen for this optimizer on its validation slice (``models.optimizer.shipped``)."""
    from precache.models.optimizer.shipped import load_policy

    policy, name, version = load_policy(directory, clock, adaptive_ttl)
    loaded["optimizer"] = version
    loaded["optimizer policy"] = name
    return policy


def _registry_versions(settings: Settings) -> PredictorSource:
    """Pinned ``page-predictor`` versions from the registry, loaded (sha256-verified) on first use and kept;
    one that does not exist or fails verification answers None (the warmer then skips that arm's sessions
    rather than serving them another model). The rules are :class:`PinnedVersions`'s, shared with the service."""
    from precache.models import load_predictor
    from precache.registry import open_registry
    from precache.registry.pinned import PinnedVersions

    versions: PinnedVersions[Predictor] = PinnedVersions(
        open_registry(settings), PAGE_PREDICTOR, lambda path, _version: load_predictor(path))
    return versions.get
