"""What routes receive through ``Depends``: the process's state, its prediction core, and the caller.

Why dependencies and not closures: the routers are plain module-level ``APIRouter``\\ s that any app built
by :func:`precache.serve.app.create_app` includes; each request finds its app's state here
(``app.state.service``), so a route is a function of its inputs and a new endpoint is one function in a
router module. ``ApiCaller`` / ``TrainingCaller`` check the bearer token (and declare the scheme, so
OpenAPI documents it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from precache.serve.auth import Caller, Role
from precache.serve.predictions import PredictionCore
from precache.serve.state import ServiceState
from precache.serve.visitor import request_context
from precache.types import RequestContext

AUTH_DESCRIPTION = (
    "Bearer tokens. The API token (`PRECACHE_API_TOKEN`) opens predict, events, metrics and reading models; "
    "the training key (`ML_TRAINING_API_KEY`) opens training and model changes and everything the API token "
    "does. 401: no, malformed or unknown token. 403: a valid token without the right, or any token on a "
    "training route while no training key is configured."
)

_bearer = HTTPBearer(auto_error=False, description=AUTH_DESCRIPTION)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


async def get_state(request: Request) -> ServiceState:
    """(Dependencies are ``async def``: FastAPI runs a sync one in a thread pool, a hop per request; each
    one reads the request directly, since every dependency level costs microseconds on the hot path.)"""
    return state_of(request)


State = Annotated[ServiceState, Depends(get_state)]


async def get_core(request: Request) -> PredictionCore:
    return state_of(request).predictions


Core = Annotated[PredictionCore, Depends(get_core)]


async def api_caller(request: Request, _: Bearer) -> Caller:
    """The API token, or the training key (which opens everything the API token does)."""
    return state_of(request).auth.require(request, Role.API)


async def training_caller(request: Request, _: Bearer) -> Caller:
    """The training key only."""
    return state_of(request).auth.require(request, Role.TRAINING)


ApiCaller = Annotated[Caller, Depends(api_caller)]
TrainingCaller = Annotated[Caller, Depends(training_caller)]


def visitor_of(request: Request) -> RequestContext:
    """Who is behind the request, as far as a trusted proxy says (:mod:`precache.serve.visitor`). A plain
    call from the route (which takes ``request: Request``, free), not one more dependency level."""
    peer = request.client.host if request.client else None
    return request_context(peer, request.headers, state_of(request).serve.trusted_proxies)
