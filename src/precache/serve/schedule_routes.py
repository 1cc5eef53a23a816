"""``/api/ml/schedules``: the training schedules declared through ``POST /api/ml/train {"schedule": ...}`` or
``precache train --schedule`` -- list them, remove one (training key). An identical schedule is one schedule:
its id is derived from what it runs and when (:func:`precache.training.scheduler.schedule_id`)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi import Path as PathParam

from precache.serve.deps import State, TrainingCaller
from precache.serve.errors import ApiError, error_responses

router = APIRouter(prefix="/api/ml/schedules", tags=["training"])
SCHEDULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _row(schedule_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    request, when = spec.get("request") or {}, spec.get("schedule") or {}
    return {"id": schedule_id, "schedule": when.get("kind"), "seconds": when.get("seconds"), "at": when.get("at"),
            "modelType": request.get("modelType"), "installed": bool(spec.get("installed"))}


@router.get("", summary="Every declared training schedule (training key)",
            responses=error_responses(401, 403, 422, 503))
async def list_schedules(state: State, _: TrainingCaller) -> dict[str, Any]:
    from precache.training.scheduler import list_schedules as stored

    try:
        specs = await asyncio.to_thread(stored, state.settings.redis_url)
    except Exception as exc:
        raise ApiError(503, "unavailable", f"schedules need Redis: {type(exc).__name__}") from None
    return {"schedules": [_row(k, v) for k, v in sorted(specs.items())]}


@router.delete("/{schedule_id}", summary="Remove a training schedule (training key)",
               responses=error_responses(401, 403, 404, 422, 503))
async def remove(state: State, _: TrainingCaller,
                 schedule_id: str = PathParam(pattern=SCHEDULE_ID)) -> dict[str, Any]:
    from precache.training.scheduler import remove_schedule

    try:
        removed = await asyncio.to_thread(remove_schedule, state.settings.redis_url, schedule_id)
    except Exception as exc:
        raise ApiError(503, "unavailable", f"schedules need Redis: {type(exc).__name__}") from None
    if not removed:
        raise ApiError(404, "not_found", f"no training schedule {schedule_id}")
    return {"id": schedule_id, "removed": True}
