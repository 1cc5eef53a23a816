"""``/api/ml/experiments``: create, list, read out and stop A/B experiments over HTTP (training key).

Why the training key for reading too: a readout names what is being tested and how it is going; like a
model's gate decisions, that is for the people who run the system, not for every API client. The routes
are thin: definitions live in Redis (:class:`~precache.experiments.store.RedisExperimentStore`, immutable
once created), readouts sum every replica's recorded statistics, and this replica's
:class:`~precache.experiments.hub.ExperimentHub` (the state's ``experiments``, started by the app's one
lifespan) refreshes its arms and the compact readouts the JSON metrics summary and the dashboard show.
The prediction core reads a session's arm from the hub (:meth:`ServiceState.session_arm`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from precache.defaults import PAGE_PREDICTOR
from precache.experiments.model import (
    KINDS,
    Arm,
    Experiment,
    ExperimentConflict,
    ExperimentError,
    ExperimentNotFound,
)
from precache.registry.pinned import version_problem
from precache.serve.deps import State, training_caller
from precache.serve.errors import ApiError, error_responses

if TYPE_CHECKING:
    from precache.serve.state import ServiceState

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ExperimentId = Annotated[str, PathParam(pattern=NAME, description="the experiment's id")]


class ArmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    weight: float = Field(1.0, gt=0, le=1_000_000)
    params: dict[str, Any] = Field(default_factory=dict, max_length=8,
                                   description='what the arm changes, e.g. {"warming": false}, {"threshold": 0.5}, '
                                               '{"version": "v3"}, {"policy": "s3fifo"}, {"mode": "adaptive"}')


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=NAME)
    kind: Literal["warming", "threshold", "model_version", "cache_policy", "ttl_mode"]
    arms: list[ArmIn] = Field(min_length=2, max_length=16, description="the first arm is the control")
    holdout: float = Field(0.0, ge=0, lt=1, description="share of traffic kept out of every arm")
    mde: float = Field(0.01, gt=0, lt=1, description="minimum detectable effect on the hit ratio (absolute)")
    alpha: float = Field(0.05, gt=0, lt=0.5)
    power: float = Field(0.8, ge=0.5, lt=1)
    description: str = Field("", max_length=500)


def _experiment(body: ExperimentIn, state: ServiceState) -> Experiment:
    """The checked definition: the kind's parameter schema, and pinned versions that are served now or exist in
    the registry and pass verification (422 naming the field otherwise)."""
    arms = tuple(Arm(a.name, a.weight, dict(a.params)) for a in body.arms)
    current = state.models.current
    served = current.version if current is not None else None
    return Experiment(body.id, body.kind, arms, holdout=body.holdout, mde=body.mde, alpha=body.alpha,
                      power=body.power, description=body.description).validate_new(
        lambda version: None if version == served else version_problem(state.registry, PAGE_PREDICTOR, version))


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    """Map the experiments' errors to HTTP: 404 unknown, 409 clash with stored state, 422 bad definition,
    503 Redis unusable."""
    try:
        yield
    except ExperimentNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except ExperimentConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    except ExperimentError as exc:
        raise ApiError(422, "validation_error", str(exc)) from exc
    except (RedisError, OSError, TimeoutError) as exc:
        raise ApiError(503, "unavailable", f"Redis is not usable: {type(exc).__name__}") from exc


router = APIRouter(prefix="/api/ml/experiments", tags=["experiments"], dependencies=[Depends(training_caller)])
_errors = error_responses(401, 403, 422, 503)


@router.post("", status_code=201, summary="Create and start an experiment (definitions are immutable)",
             responses={**_errors, **error_responses(409)})
async def create(body: ExperimentIn, state: State) -> JSONResponse:
    hub = state.experiments
    with _answers():
        experiment = await asyncio.to_thread(_experiment, body, state)  # reads model files
        created = await hub.store.create(experiment)
        await hub.refresh()
    return JSONResponse(created.as_dict(), status_code=201)


@router.get("", summary="Every experiment with its definition and status", responses=_errors)
async def list_all(state: State) -> dict[str, Any]:
    with _answers():
        return {"experiments": [e.as_dict() for e in await state.experiments.store.list()], "kinds": list(KINDS)}


@router.get("/{experiment_id}", responses={**_errors, **error_responses(404)},
            summary="The readout: per arm and metric, fixed-horizon and always-valid results, the sample-ratio "
                    "check and the minimum sample size")
async def read(experiment_id: ExperimentId, state: State) -> dict[str, Any]:
    with _answers():
        return await state.experiments.readout(experiment_id)


@router.post("/{experiment_id}/stop", summary="Stop an experiment (its readout stays readable)",
             responses={**_errors, **error_responses(404)})
async def stop(experiment_id: ExperimentId, state: State) -> dict[str, Any]:
    hub = state.experiments
    with _answers():
        stopped = await hub.store.stop(experiment_id)
        await hub.refresh()
    return stopped.as_dict()
