"""The FastAPI application behind ``precache serve``: :func:`create_app` includes the routers over one state.

The layout (see ``docs/architecture-serve.md``):

- :mod:`precache.serve.state` builds what a process holds (:class:`~precache.serve.state.ServiceState`);
- :mod:`precache.serve.predictions` is the prediction core (no FastAPI): ``/predict``'s and ``/events``'
  decisions, and the seam where an online-learning layer plugs in;
- routers, one module each, reach the state and the caller through ``Depends`` (:mod:`precache.serve.deps`):
  :mod:`~precache.serve.ops_routes` (health, readiness, metrics), :mod:`~precache.serve.ml_routes`
  (predict, events), :mod:`~precache.serve.registry_routes` (models, training),
  :mod:`~precache.serve.experiments_routes`, and the dashboard;
- one lifespan (here) starts and stops everything that runs in the background.

uvicorn ``--factory`` calls :func:`create_app` in each worker; settings come from the env.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from precache.config import ConfigError, Settings, get_settings
from precache.monitoring.background import cancel_task
from precache.monitoring.dashboard import dashboard_router
from precache.registry import CHANNEL as REGISTRY_CHANNEL
from precache.serve import experiments_routes, ml_routes, ops_routes, registry_routes, schedule_routes
from precache.serve.deps import AUTH_DESCRIPTION
from precache.serve.errors import install_error_handlers
from precache.serve.heap import settle_after_startup
from precache.serve.jobs import JobStore
from precache.serve.limits import BodySizeLimit
from precache.serve.metrics import RequestCounter
from precache.serve.model_history import ModelHistory
from precache.serve.settings import ServeSettings, get_serve_settings
from precache.serve.state import ServiceState, build_state
from precache.serve.watch import RegistryFollower

log = logging.getLogger("precache.serve")


def check_startable(settings: Settings, serve: ServeSettings) -> None:
    """Refuse to run without an API token unless ``--insecure-local`` was given."""
    if not settings.api_token and not serve.insecure_local:
        raise ConfigError("PRECACHE_API_TOKEN is not set: set it, or pass --insecure-local to serve on loopback "
                          "without authentication")


def create_app(settings: Settings | None = None, serve: ServeSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    serve = serve or get_serve_settings()
    check_startable(settings, serve)
    if serve.insecure_local and not settings.api_token:
        log.warning("precache serve runs WITHOUT authentication (--insecure-local): loopback only")
    state = build_state(settings, serve)
    if state.online is not None:
        from precache.online.settings import load_online_settings
        from precache.serve import drift

        drift.install(state, load_online_settings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watcher = await _start(state)
        try:
            yield
        finally:
            await _stop(state, watcher)

    app = FastAPI(
        title="precache service", version="1", lifespan=lifespan,
        description="Next-page predictions, cache decisions and warming lists over HTTP.\n\n" + AUTH_DESCRIPTION,
    )
    app.state.service = state
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=serve.max_body_bytes)
    app.add_middleware(RequestCounter, metrics=state.metrics)
    for module in (ml_routes, ops_routes, registry_routes, schedule_routes, experiments_routes):  # hot first
        include_flat(app, module.router)
    if settings.api_token:
        models = state.models
        history = ModelHistory(state.registry, lambda: models.current.version if models.current else None)
        app.include_router(dashboard_router(settings.api_token, state.monitoring.summary, history))
    return app


def include_flat(app: FastAPI, router: APIRouter) -> None:
    """``app.include_router(router)`` without the nesting: FastAPI (0.165) keeps an included router as one
    route that is matched, then matched again inside, on every request (~30 us of CPU per ``/predict``
    here, ~8%). Our routers' routes are complete (prefix, tags and dependencies are applied when a route is
    declared), so they join the app's own route list, as ``@app.post`` routes would."""
    if router.on_startup or router.on_shutdown:
        raise ValueError("a flat-included router must not carry its own startup/shutdown handlers")
    app.router.routes.extend(router.routes)


async def _start(state: ServiceState) -> asyncio.Task[None] | None:
    """Load the models (or follow the registry), start monitoring and experiments; returns the registry
    watcher task, if any."""
    settings, serve = state.settings, state.serve
    watcher: asyncio.Task[None] | None = None
    if settings.ml_enabled:
        if serve.optimizer_dir is not None:
            state.advisors.load_pinned()
        if serve.model_dir is not None:
            try:
                state.models.load(serve.model_dir)
            except Exception as exc:  # start anyway: /readyz and 503s say why
                log.error("model not loaded: %s", state.models.last_error or exc)
        if serve.model_dir is None or serve.optimizer_dir is None:
            follower = RegistryFollower(state.registry, state.models, poll_seconds=serve.registry_poll_seconds,
                                        pages=serve.model_dir is None, optimizer=serve.optimizer_dir is None)
            state.follow(follower)
            await follower.sync()
            watcher = asyncio.get_running_loop().create_task(follower.run(settings.redis_url, REGISTRY_CHANNEL))
    state.monitoring.start()
    state.spawn(_check_training_lock(state))
    if serve.gc_freeze:
        settle_after_startup()
    state.experiments.start()
    if state.online is not None:
        state.online.start()
        from precache.serve import edge_refresh

        edge_refresh.start(state)
    return watcher


async def _stop(state: ServiceState, watcher: asyncio.Task[None] | None) -> None:
    """Stop every background loop within its share of ``PRECACHE_SHUTDOWN_SECONDS`` (in-flight requests had
    half, uvicorn's graceful timeout): a loop that does not stop is abandoned, never awaited for ever."""
    budget = state.settings.shutdown_seconds / 4
    await asyncio.gather(state.experiments.stop(budget), state.monitoring.stop(budget), cancel_task(watcher, budget))
    for task in list(state.background):
        task.cancel()
    await state.models.aclose()
    await state.pinned.aclose()
    if state.edge is not None:
        await state.edge.aclose()
    if state.edge_refresher is not None:
        await state.edge_refresher.release()  # another replica takes the edge refresh over at once
    if state.online is not None:
        await state.online.close()  # sends what is still pending
    with contextlib.suppress(Exception):
        await state.redis.aclose()


async def _check_training_lock(state: ServiceState) -> None:
    """A training job left "running" by a process that died while no replica watched it is marked failed."""
    jobs = JobStore(state.redis, state.serve.redis_prefix, state.serve.training_job_retention_seconds)
    try:
        await jobs.check_holder()
    except Exception as exc:
        log.warning("could not check the training lock: %s", exc)
