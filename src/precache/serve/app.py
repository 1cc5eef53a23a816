"""The FastAPI application behind ``precache serve``: routes, auth, limits, and what a replica holds.

A replica holds nothing another replica needs: session histories, per-key access records and events live
in Redis (see :mod:`precache.history`, :mod:`precache.serve.events`); the model comes from the model
directory (shared ``MODEL_STORAGE_PATH`` volume). So replicas behind a load balancer answer any session alike.
Build it with :func:`create_app` (uvicorn ``--factory`` calls it in each worker; settings come from the env).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer

from precache.config import ConfigError, Settings, get_settings
from precache.edge.client import EdgeInference
from precache.history import FailoverHistories, MemoryHistories, RedisHistories
from precache.monitoring.dashboard import dashboard_router
from precache.registry import CHANNEL as REGISTRY_CHANNEL
from precache.registry import ModelRegistry, open_registry
from precache.serve.assets import AssetCounts
from precache.serve.auth import Authenticator, Caller, Role
from precache.serve.decisions import CacheAdvisor
from precache.serve.errors import ApiError, error_responses, install_error_handlers
from precache.serve.events import ClientHasher, EventRecorder
from precache.serve.experiments_routes import include_experiments, session_arm
from precache.serve.heap import heap_gauges, settle_after_startup
from precache.serve.jobs import JobStore
from precache.serve.limits import BodySizeLimit
from precache.serve.metrics import RequestCounter, ServiceMetrics
from precache.serve.model import ModelHolder, ServedModel
from precache.serve.model_history import ModelHistory
from precache.serve.monitoring import ServiceMonitoring
from precache.serve.pinned import PinnedModels
from precache.serve.ratelimit import SharedRateLimiter
from precache.serve.registry_routes import register_routes
from precache.serve.schemas import (
    CacheDecision,
    EventsRequest,
    EventsResponse,
    Health,
    PagePrediction,
    PageResponse,
    PredictRequest,
    Readiness,
    WarmingItem,
    WarmingResponse,
)
from precache.serve.settings import ServeSettings, get_serve_settings
from precache.serve.watch import RegistryFollower

log = logging.getLogger("precache.serve")

AUTH_DESCRIPTION = (
    "Bearer tokens. The API token (`PRECACHE_API_TOKEN`) opens predict, events, metrics and reading models; "
    "the training key (`ML_TRAINING_API_KEY`) opens training and model changes and everything the API token "
    "does. 401: no, malformed or unknown token. 403: a valid token without the right, or any token on a "
    "training route while no training key is configured."
)


@dataclass
class ServiceState:
    settings: Settings
    serve: ServeSettings
    auth: Authenticator
    metrics: ServiceMetrics
    histories: FailoverHistories
    events: EventRecorder
    models: ModelHolder
    advisor: CacheAdvisor | None
    advisor_error: str | None
    registry: ModelRegistry
    limiter: SharedRateLimiter
    redis: Any
    edge: EdgeInference | None = None
    follower: RegistryFollower | None = None
    monitoring: ServiceMonitoring | None = None
    pinned: PinnedModels | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background until it ends or the app stops (then it is cancelled)."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def current_advisor(self) -> CacheAdvisor | None:
        """The cache optimizer in use: the pinned directory's, else the registry's active version."""
        if self.advisor is not None or self.follower is None:
            return self.advisor
        return self.follower.advisor

    def advisor_problem(self) -> str | None:
        if self.advisor is None and self.follower is not None and self.serve.optimizer_dir is None:
            return self.follower.advisor_error
        return self.advisor_error


def _redis_client(url: str, cluster: bool, timeout: float) -> Any:
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        return RedisCluster.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    from redis.asyncio import Redis

    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def check_startable(settings: Settings, serve: ServeSettings) -> None:
    """Refuse to run without an API token unless ``--insecure-local`` was given."""
    if not settings.api_token and not serve.insecure_local:
        raise ConfigError("PRECACHE_API_TOKEN is not set: set it, or pass --insecure-local to serve on loopback "
                          "without authentication")


def load_advisor(state: ServiceState) -> None:
    """Load the pinned cache-optimizer directory (``PRECACHE_OPTIMIZER_DIR``)."""
    directory = state.serve.optimizer_dir
    assert directory is not None
    try:
        state.advisor, state.advisor_error = CacheAdvisor.load(directory), None
    except Exception as exc:
        state.advisor_error = f"{directory}: {type(exc).__name__}: {exc}"[:300]
        log.error("cache optimizer not loaded: %s", state.advisor_error)


def create_app(settings: Settings | None = None, serve: ServeSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    serve = serve or get_serve_settings()
    check_startable(settings, serve)
    if serve.insecure_local and not settings.api_token:
        log.warning("precache serve runs WITHOUT authentication (--insecure-local): loopback only")
    metrics = ServiceMetrics()
    redis = _redis_client(settings.redis_url, serve.redis_cluster, serve.redis_timeout_seconds)
    memory = MemoryHistories(serve.fallback_sessions, serve.max_history, settings.session_gap_seconds)
    histories = FailoverHistories(
        RedisHistories(redis, serve.redis_prefix, serve.max_history, settings.session_gap_seconds), memory)
    state = ServiceState(
        settings=settings, serve=serve,
        auth=Authenticator(settings.api_token, settings.ml_training_api_key, serve.insecure_local),
        metrics=metrics, histories=histories,
        events=EventRecorder(redis, histories, prefix=serve.redis_prefix, stream=serve.event_stream,
                             maxlen=serve.event_stream_maxlen, retention=serve.event_retention_seconds,
                             hasher=ClientHasher(serve.client_hash_key or settings.api_token),
                             assets=AssetCounts(redis, serve.redis_prefix, serve.event_retention_seconds)),
        models=ModelHolder(max_history=serve.max_history, cache_size=serve.prediction_cache_size,
                           freeze=serve.gc_freeze),
        limiter=SharedRateLimiter(redis, serve.redis_prefix, serve.events_per_second, serve.events_burst),
        redis=redis,
        advisor=None, advisor_error=None, registry=open_registry(settings))
    monitoring = state.monitoring = ServiceMonitoring(
        settings, redis, lambda: state.models.current.directory if state.models.current else None,
        prefix=serve.redis_prefix)
    if serve.edge_inference_url:
        state.edge = EdgeInference(serve.edge_inference_url, token=serve.edge_inference_token,
                                   timeout=serve.edge_inference_timeout_ms / 1000)
        edge_stats = state.edge.stats
        metrics.gauges.update({
            "edgeForwarded": lambda: float(edge_stats.forwarded),
            "edgeAnswered": lambda: float(edge_stats.answered),
            "edgeTimeouts": lambda: float(edge_stats.timeouts),
            "edgeErrors": lambda: float(edge_stats.errors),
            "edgeSkippedBreakerOpen": lambda: float(edge_stats.skipped_open),
        })
    metrics.gauges.update({
        "sessionsInMemory": lambda: float(len(memory)),
        "historyRedisFailures": lambda: float(histories.failures),
        "eventsReceived": lambda: float(state.events.received),
        "eventsStreamed": lambda: float(state.events.streamed),
        "assetCountFailures": lambda: float(state.events.assets.failures if state.events.assets else 0),
        "eventsRateLimited": lambda: float(state.limiter.refused),
        "rateLimitRedisFailures": lambda: float(state.limiter.redis_failures),
        "modelLoads": lambda: float(state.models.loads),
        "alertLoopErrors": lambda: float(monitoring.alert_errors),
        **heap_gauges(),
    })

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watcher: asyncio.Task[None] | None = None
        if settings.ml_enabled:
            if serve.optimizer_dir is not None:
                load_advisor(state)
            if serve.model_dir is not None:
                try:
                    state.models.load(serve.model_dir)
                except Exception as exc:  # start anyway: /readyz and 503s say why
                    log.error("model not loaded: %s", state.models.last_error or exc)
            if serve.model_dir is None or serve.optimizer_dir is None:
                follower = RegistryFollower(state.registry, state.models, poll_seconds=serve.registry_poll_seconds,
                                            pages=serve.model_dir is None, optimizer=serve.optimizer_dir is None)
                state.follower = follower
                await follower.sync()
                watcher = asyncio.get_running_loop().create_task(follower.run(settings.redis_url, REGISTRY_CHANNEL))
        monitoring.start()
        state.spawn(_check_training_lock(state))
        if serve.gc_freeze:
            settle_after_startup()
        try:
            yield
        finally:
            await monitoring.stop()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher
            for task in list(state.background):
                task.cancel()
            await state.models.aclose()
            if state.pinned is not None:
                await state.pinned.aclose()
            if state.edge is not None:
                await state.edge.aclose()
            try:
                await redis.aclose()
            except Exception:
                pass

    app = FastAPI(
        title="precache service", version="1", lifespan=lifespan,
        description="Next-page predictions, cache decisions and warming lists over HTTP.\n\n" + AUTH_DESCRIPTION,
    )
    app.state.service = state
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=serve.max_body_bytes)
    app.add_middleware(RequestCounter, metrics=metrics)
    _routes(app, state)
    register_routes(app, state, api_caller, training_caller)
    include_experiments(app, state, training_caller)
    if settings.api_token:
        history = ModelHistory(state.registry, lambda: state.models.current.version if state.models.current else None)
        app.include_router(dashboard_router(settings.api_token, monitoring.summary, history))
    return app


async def _check_training_lock(state: ServiceState) -> None:
    """A training job left "running" by a process that died while no replica watched it is marked failed."""
    jobs = JobStore(state.redis, state.serve.redis_prefix, state.serve.training_job_retention_seconds)
    try:
        await jobs.check_holder()
    except Exception as exc:
        log.warning("could not check the training lock: %s", exc)


_bearer = HTTPBearer(auto_error=False, description=AUTH_DESCRIPTION)


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


async def api_caller(request: Request, _: Any = Depends(_bearer)) -> Caller:
    """Dependency of the API routes (the bearer scheme is declared so OpenAPI documents it)."""
    return _state(request).auth.require(request, Role.API)


async def training_caller(request: Request, _: Any = Depends(_bearer)) -> Caller:
    """Dependency of the training routes: the training key only."""
    return _state(request).auth.require(request, Role.TRAINING)


def _routes(app: FastAPI, state: ServiceState) -> None:
    monitoring = state.monitoring
    assert monitoring is not None, "create_app sets state.monitoring before the routes"

    def model_or_503() -> ServedModel:
        if not state.settings.ml_enabled:
            state.metrics.unavailable += 1
            raise ApiError(503, "ml_disabled", "ML_ENABLED is false: predictions are switched off")
        served = state.models.current
        if served is None:
            state.metrics.unavailable += 1
            raise ApiError(503, "no_model", state.models.last_error or "no active model is loaded")
        return served

    @app.get("/healthz", response_model=Health, tags=["ops"], summary="Liveness (no auth)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, tags=["ops"], summary="Readiness (no auth)",
             responses={503: {"model": Readiness, "description": "not ready: the detail says why"}})
    async def readyz() -> Response:
        redis = await _redis_status(state)
        model = state.models.describe()
        advisor = state.current_advisor()
        model["cacheOptimizer"] = ({"loaded": True, "version": advisor.version, "directory": str(advisor.directory)}
                                   if advisor is not None else {"loaded": False, "error": state.advisor_problem()})
        ready = state.settings.ml_enabled and bool(model["loaded"])
        detail = ("ready" if ready else
                  "ML_ENABLED is false" if not state.settings.ml_enabled else f"no model: {model.get('error')}")
        body = Readiness(ready=ready, model=model, redis=redis, sessions=state.histories.where, detail=detail,
                         error=None if ready else "not_ready")
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @app.post("/api/ml/predict", response_model=PageResponse | WarmingResponse | CacheDecision, tags=["ml"],
              summary="Next pages (page), preload list (warming) or cache decision (cache) for a session",
              responses=error_responses(401, 413, 422, 503))
    async def predict(body: PredictRequest, _: Caller = Depends(api_caller)) -> Any:
        start = time.perf_counter()
        if body.type == "cache":
            return await cache_decision(body, start)
        served = model_or_503()
        page = body.context.currentPath
        if page is None:
            raise ApiError(422, "validation_error", f"body.context.currentPath: required for type={body.type}")
        arm = session_arm(app, body.sessionId)  # an experiment's arm for this session, if any (no I/O)
        if arm is not None and arm.model_version is not None and arm.model_version != served.version:
            served = await pinned_or_503(arm.model_version)
        history = await state.histories.append(body.sessionId, [page])
        monitoring.page_view(body.sessionId, page)
        if body.type == "warming":
            predictive = state.settings.predictive
            threshold = body.options.threshold if body.options.threshold is not None else predictive.warming_threshold
            if arm is not None and arm.threshold is not None:
                threshold = arm.threshold  # the arm decides: a caller's own threshold would void the experiment
            if arm is not None and not arm.warming:  # the control arm of a warming experiment: nothing to preload
                latency = (time.perf_counter() - start) * 1000
                monitoring.prediction(latency / 1000, "warming", version=served.version)
                return WarmingResponse(preload=[], threshold=threshold, latency=round(latency, 3),
                                       modelVersion=served.version)
            k = max(1, min(50, predictive.max_preload_items))
            ranked, cached = await state.models.predict(served, history, k)
            pages = [(p, _prob(pr)) for p, pr in ranked if pr >= threshold]
            assets = (await state.events.assets.of_pages(pages, threshold) if state.events.assets is not None
                      else [[] for _ in pages])
            items = [WarmingItem(page=p, probability=pr, assets=[PagePrediction(page=a, probability=_prob(pa))
                                                                 for a, pa in listed])
                     for (p, pr), listed in zip(pages, assets, strict=True)]
            latency = (time.perf_counter() - start) * 1000
            state.metrics.cache_lookup(cached)
            monitoring.prediction(latency / 1000, "warming", version=served.version)
            return WarmingResponse(preload=items, threshold=threshold, latency=round(latency, 3),
                                   modelVersion=served.version)
        threshold = body.options.threshold or 0.0
        if state.edge is not None and body.options.useEdgeInference is not False:
            answer = await state.edge.predict(body.sessionId, page, history[:-1], body.options.topK)
            if answer is not None:  # else: down, slow, refused or breaker open -> answer locally below
                latency = (time.perf_counter() - start) * 1000
                state.metrics.cache_lookup(False)
                monitoring.prediction(latency / 1000, "page", body.sessionId, [p for p, _ in answer.predictions],
                                      answer.model_version)
                return PageResponse(predictions=[PagePrediction(page=p, probability=_prob(pr))
                                                 for p, pr in answer.predictions if pr >= threshold],
                                    latency=round(latency, 3), cached=False, modelVersion=answer.model_version,
                                    answeredBy="edge")
        ranked, cached = await state.models.predict(served, history, body.options.topK)
        predictions = [PagePrediction(page=p, probability=_prob(pr)) for p, pr in ranked if pr >= threshold]
        latency = (time.perf_counter() - start) * 1000
        state.metrics.cache_lookup(cached)
        monitoring.prediction(latency / 1000, "page", body.sessionId, [p for p, _ in ranked], served.version)
        return PageResponse(predictions=predictions, latency=round(latency, 3), cached=cached,
                            modelVersion=served.version)

    async def pinned_or_503(version: str) -> ServedModel:
        """The registry version an experiment arm pins (never another model: that would mix the arms)."""
        if state.pinned is None:
            state.pinned = PinnedModels(state.registry, state.models)
        pinned = await state.pinned.get(version)
        if pinned is None:
            state.metrics.unavailable += 1
            raise ApiError(503, "no_model", f"this session's experiment arm pins page-predictor {version}, "
                           "which cannot be served (missing or failing verification)")
        return pinned

    async def cache_decision(body: PredictRequest, start: float) -> CacheDecision:
        if not state.settings.ml_enabled:
            model_or_503()
        advisor = state.current_advisor()
        if advisor is None:
            state.metrics.unavailable += 1
            raise ApiError(503, "no_model", state.advisor_problem() or "no cache-optimizer model is loaded")
        key = body.context.key
        if key is None:
            raise ApiError(422, "validation_error", "body.context.key: required for type=cache")
        accesses = await state.events.key_history(key)
        decision = advisor.decide(key, accesses, time.time())
        latency = (time.perf_counter() - start) * 1000
        monitoring.prediction(latency / 1000, "cache", version=advisor.version)
        return CacheDecision(key=key, basedOnEvents=len(accesses), latency=round(latency, 3),
                             modelVersion=advisor.version, **decision)  # type: ignore[arg-type]

    @app.post("/api/ml/events", response_model=EventsResponse, tags=["ml"],
              summary="Report a batch of accesses (page views and cache-key accesses)",
              responses=error_responses(401, 413, 422, 429))
    async def events(body: EventsRequest, caller: Caller = Depends(api_caller)) -> EventsResponse:
        allowed, retry_after = await state.limiter.allow(caller.key, len(body.events))
        if not allowed:
            raise ApiError(429, "rate_limited", f"more than {state.serve.events_per_second:g} events/s for this token "
                           "(across replicas)", {"Retry-After": str(retry_after)})
        streamed = await state.events.record(body.events)
        for event in body.events:
            if event.page is not None:
                monitoring.page_view(event.sessionId, event.page)
            if event.key is not None:
                monitoring.access(event.tier)
        return EventsResponse(accepted=len(body.events), streamed=streamed)

    @app.get("/api/ml/metrics", tags=["ops"], summary="Service counters (JSON or Prometheus text)",
             responses={200: {"content": {"application/json": {"schema": {"type": "object"}},
                                          "text/plain": {"schema": {"type": "string"}}},
                              "description": "the counters"}, **error_responses(401, 422)})
    async def metrics(_: Caller = Depends(api_caller),
                      format: Annotated[Literal["json", "prometheus"], Query()] = "json",
                      duration: Annotated[int | None, Query(ge=1, le=7 * 86400 * 1000,
                                                            description="latency window, ms")] = None) -> Response:
        if state.models.current is not None:
            monitoring.set_model("page-predictor", state.models.current.version)
        if format == "prometheus":
            text = await monitoring.prometheus() + state.metrics.prometheus()
            return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
        figures = await monitoring.metrics_json(duration or 60_000)
        return JSONResponse({**figures, **state.metrics.snapshot()})


def _prob(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


async def _redis_status(state: ServiceState) -> str:
    try:
        await state.redis.ping()
    except Exception as exc:
        return f"degraded ({type(exc).__name__}: {exc})"[:200]
    return "ok"
