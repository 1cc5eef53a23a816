"""``/healthz``, ``/readyz`` (no auth: load balancers and orchestrators ask), ``/api/ml/metrics`` and
``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from precache.defaults import PAGE_PREDICTOR
from precache.serve.deps import ApiCaller, State
from precache.serve.errors import error_responses
from precache.serve.redact import hide_paths
from precache.serve.schemas import Health, Readiness
from precache.serve.scrape import CONTENT_TYPE, check_scrape_caller
from precache.serve.state import ServiceState

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health, summary="Liveness (no auth)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, summary="Readiness (no auth)",
            responses={503: {"model": Readiness, "description": "not ready: the detail says why"}})
async def readyz(state: State) -> Response:
    redis = await redis_status(state)
    model = state.models.describe()
    advisor = state.advisors.current()
    model["cacheOptimizer"] = ({"loaded": True, "version": advisor.version, "directory": str(advisor.directory)}
                               if advisor is not None else {"loaded": False, "error": state.advisors.problem()})
    ready = state.settings.ml_enabled and bool(model["loaded"])
    detail = ("ready" if ready else
              "ML_ENABLED is false" if not state.settings.ml_enabled else f"no model: {model.get('error')}")
    body = Readiness(ready=ready, model=hide_paths(model), redis=redis, sessions=state.histories.where,
                     detail=hide_paths(detail), error=None if ready else "not_ready")  # no auth: no paths
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/api/ml/metrics", summary="Service counters (JSON or Prometheus text)",
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}},
                                         "text/plain": {"schema": {"type": "string"}}},
                             "description": "the counters"}, **error_responses(401, 422)})
async def metrics(state: State, _: ApiCaller,
                  format: Annotated[Literal["json", "prometheus"], Query()] = "json",
                  duration: Annotated[int | None, Query(ge=1, le=7 * 86400 * 1000,
                                                        description="latency window, ms")] = None) -> Response:
    monitoring = state.monitoring
    note_model(state)
    if format == "prometheus":  # the same exposition as GET /metrics: this replica
        return Response(await monitoring.prometheus(), media_type=CONTENT_TYPE)
    figures = await monitoring.metrics_json(duration or 60_000)
    return JSONResponse({**figures, **state.metrics.snapshot()})


@router.get("/metrics", summary="This replica's metrics, Prometheus text format (docs/operations.md)",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "the exposition"}, **error_responses(401)})
async def scrape(request: Request, state: State) -> Response:
    """For Prometheus: ``PRECACHE_METRICS_TOKEN`` (a token of its own) or the API token; or no token at all on
    ``precache serve --metrics-port``. This replica's workers summed, never other replicas."""
    check_scrape_caller(request, state.auth, state.serve.metrics_token)
    note_model(state)
    return Response(await state.monitoring.prometheus(), media_type=CONTENT_TYPE)


def note_model(state: ServiceState) -> None:
    if state.models.current is not None:
        state.monitoring.set_model(PAGE_PREDICTOR, state.models.current.version)


async def redis_status(state: ServiceState) -> str:
    try:
        await state.redis.ping()
    except Exception as exc:
        return f"degraded ({type(exc).__name__}: {exc})"[:200]
    return "ok"
