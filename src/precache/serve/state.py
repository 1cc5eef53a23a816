"""What one service process holds (:class:`ServiceState`) and how it is built from the settings.

A replica holds nothing another replica needs: session histories (:mod:`precache.history`), per-key access
records and events live in Redis (:mod:`precache.serve.events`); the model comes from the model directory
(shared ``MODEL_STORAGE_PATH`` volume). Routes reach the state through ``Depends``
(:mod:`precache.serve.deps`); the prediction logic is :attr:`ServiceState.predictions`
(:mod:`precache.serve.predictions`), which knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from precache.config import Settings
from precache.edge.client import EdgeInference
from precache.experiments.hub import ExperimentHub
from precache.history import FailoverHistories, MemoryHistories, RedisHistories
from precache.online.hook import OnlineHook
from precache.online.layer import OnlineLayer, online_gauges
from precache.online.redis_store import RedisCounts
from precache.online.settings import load_online_settings
from precache.online.stored import StoredSettingsFollower
from precache.registry import ModelRegistry, open_registry
from precache.serve.assets import AssetCounts
from precache.serve.auth import Authenticator
from precache.serve.decisions import Advisors
from precache.serve.events import ClientHasher, EventRecorder
from precache.serve.heap import heap_gauges
from precache.serve.metrics import ServiceMetrics
from precache.serve.model import ModelHolder
from precache.serve.monitoring import ServiceMonitoring
from precache.serve.pinned import PinnedModels
from precache.serve.predictions import PredictionCore
from precache.serve.ratelimit import SharedRateLimiter
from precache.serve.settings import ServeSettings
from precache.serve.watch import RegistryFollower
from precache.types import SessionArm

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    RedisClient = Redis | RedisCluster


@dataclass
class ServiceState:
    settings: Settings
    serve: ServeSettings
    auth: Authenticator
    metrics: ServiceMetrics
    redis: RedisClient
    histories: FailoverHistories
    events: EventRecorder
    models: ModelHolder
    advisors: Advisors
    registry: ModelRegistry
    limiter: SharedRateLimiter
    monitoring: ServiceMonitoring
    experiments: ExperimentHub
    pinned: PinnedModels
    edge: EdgeInference | None = None
    online: OnlineLayer | None = None
    follower: RegistryFollower | None = None
    edge_refresher: Any = None  # precache.serve.edge_refresh.EdgeRefresher when MODEL_EDGE_REFRESH is on
    background: set[asyncio.Task[None]] = field(default_factory=set)
    predictions: PredictionCore = field(init=False)

    def __post_init__(self) -> None:
        self.predictions = PredictionCore(
            settings=self.settings, models=self.models, histories=self.histories, events=self.events,
            limiter=self.limiter, metrics=self.metrics, monitoring=self.monitoring, advisors=self.advisors,
            pinned=self.pinned, arms=self.session_arm, edge=self.edge)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background until it ends or the app stops (then it is cancelled)."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def session_arm(self, session_id: str) -> SessionArm | None:
        """The experiment arm of ``session_id`` on this replica (None: no experiment). No I/O."""
        return self.experiments.params.for_session(session_id)

    def follow(self, follower: RegistryFollower) -> None:
        """Follow the registry: the page predictor and/or the cache optimizer come from its active versions."""
        self.follower = self.advisors.follower = follower


def redis_client(url: str, cluster: bool, timeout: float) -> RedisClient:
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    from redis.asyncio import Redis

    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def build_state(settings: Settings, serve: ServeSettings) -> ServiceState:
    """Every part of a service process, connected; nothing started (the app's lifespan starts them)."""
    redis = redis_client(settings.redis_url, serve.redis_cluster, serve.redis_timeout_seconds)
    gap = settings.session_gap_seconds
    histories = FailoverHistories(RedisHistories(redis, serve.redis_prefix, serve.max_history, gap),
                                  MemoryHistories(serve.fallback_sessions, serve.max_history, gap))
    events = EventRecorder(redis, histories, prefix=serve.redis_prefix, stream=serve.event_stream,
                           maxlen=serve.event_stream_maxlen, retention=serve.event_retention_seconds,
                           hasher=ClientHasher(serve.client_hash_key or settings.api_token),
                           assets=AssetCounts(redis, serve.redis_prefix, serve.event_retention_seconds))
    models = ModelHolder(max_history=serve.max_history, cache_size=serve.prediction_cache_size,
                         freeze=serve.gc_freeze)
    registry = open_registry(settings)
    monitoring = ServiceMonitoring(settings, redis, lambda: models.current.directory if models.current else None,
                                   prefix=serve.redis_prefix,
                                   model_version=lambda: models.current.version if models.current else None)
    hub = ExperimentHub(redis, prefix="{" + serve.redis_prefix + "experiments}", stream=serve.event_stream,
                        session_gap=float(gap))
    monitoring.monitor.add_section("experiments", hub.section)
    monitoring.monitor.add_scored_listener(hub.scored)  # online HR@5 per arm
    edge = (EdgeInference(serve.edge_inference_url, token=serve.edge_inference_token,
                          timeout=serve.edge_inference_timeout_ms / 1000) if serve.edge_inference_url else None)
    state = ServiceState(
        settings=settings, serve=serve, auth=Authenticator(settings.api_token, settings.ml_training_api_key,
                                                           serve.insecure_local),
        metrics=ServiceMetrics(), redis=redis, histories=histories, events=events, models=models,
        advisors=Advisors(serve.optimizer_dir), registry=registry,
        limiter=SharedRateLimiter(redis, serve.redis_prefix, serve.events_per_second, serve.events_burst),
        monitoring=monitoring, experiments=hub, pinned=PinnedModels(registry, models), edge=edge,
        online=online_layer(settings, redis))
    if state.online is not None:
        state.predictions.add_hook(OnlineHook(state.online))
        follower = StoredSettingsFollower(state.online, load_online_settings())  # the active model's settings
        models.listeners.append(lambda served: follower(served.directory))
    add_gauges(state)
    return state


def online_layer(settings: Settings, redis: RedisClient) -> OnlineLayer | None:
    """The online layer (``ML_ONLINE_*``; off when ``ML_ENABLED`` or ``ML_ONLINE_ENABLED`` is false), its
    counts shared with every replica through the service's Redis."""
    online = load_online_settings()
    if not online.active(settings):
        return None
    store = RedisCounts(redis, online.half_life, prefix=online.redis_prefix, max_contexts=online.max_contexts,
                        max_successors=online.max_successors)
    return OnlineLayer(online.merge_params(), store=store, guard=online.guard(), max_contexts=online.max_contexts,
                       max_successors=online.max_successors, flush_seconds=online.flush_ms / 1000,
                       refresh_seconds=online.refresh_ms / 1000, calibrator=online.calibrator())


def add_gauges(state: ServiceState) -> None:
    """The service's own counters in ``/api/ml/metrics`` (JSON and Prometheus)."""
    gauges = state.metrics.gauges
    edge = state.edge
    if edge is not None:
        stats = edge.stats
        gauges.update({
            "edgeForwarded": lambda: float(stats.forwarded),
            "edgeAnswered": lambda: float(stats.answered),
            "edgeTimeouts": lambda: float(stats.timeouts),
            "edgeErrors": lambda: float(stats.errors),
            "edgeSkippedBreakerOpen": lambda: float(stats.skipped_open),
        })
    if state.online is not None:
        gauges.update(online_gauges(state.online))
    histories, events, limiter = state.histories, state.events, state.limiter
    gauges.update({
        "sessionsInMemory": lambda: float(len(histories.memory)),
        "historyRedisFailures": lambda: float(histories.failures),
        "eventsReceived": lambda: float(events.received),
        "eventsStreamed": lambda: float(events.streamed),
        "assetCountFailures": lambda: float(events.assets.failures if events.assets else 0),
        "eventsRateLimited": lambda: float(limiter.refused),
        "rateLimitRedisFailures": lambda: float(limiter.redis_failures),
        "modelLoads": lambda: float(state.models.loads),
        "alertLoopErrors": lambda: float(state.monitoring.alert_errors),
        **heap_gauges(),
    })
    state.monitoring.monitor.add_values(state.metrics.values)  # exported and summed like every other count
