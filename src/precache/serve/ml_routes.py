"""``POST /api/ml/predict`` and ``POST /api/ml/events``: thin routes over the prediction core.

Everything they decide is in :mod:`precache.serve.predictions`; here only the HTTP contract (paths,
response models, documented errors, the caller's token).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from precache.serve.deps import ApiCaller, Core, visitor_of
from precache.serve.errors import error_responses
from precache.serve.predictions import Answer
from precache.serve.schemas import (
    CacheDecision,
    EventsRequest,
    EventsResponse,
    PageResponse,
    PredictRequest,
    WarmingResponse,
)

router = APIRouter(tags=["ml"])


@router.post("/api/ml/predict", response_model=PageResponse | WarmingResponse | CacheDecision,
             summary="Next pages (page), preload list (warming) or cache decision (cache) for a session",
             responses=error_responses(401, 413, 422, 503))
async def predict(body: PredictRequest, core: Core, _: ApiCaller, request: Request) -> Answer:
    return await core.predict(body, visitor_of(request))


@router.post("/api/ml/events", response_model=EventsResponse,
             summary="Report a batch of accesses (page views and cache-key accesses)",
             responses=error_responses(401, 413, 422, 429, 503))
async def events(body: EventsRequest, core: Core, caller: ApiCaller, request: Request) -> EventsResponse:
    return await core.record_events(body.events, caller.key, visitor_of(request))
