"""``/api/ml/models`` and ``/api/ml/train``: the model registry and the training pipeline over HTTP.

Reading (list, model files for edge workers' sync) needs the API token; changing (train, activate,
rollback) needs the training key. Registry operations touch the shared volume, so they run in worker
threads; training runs in its own process (:mod:`precache.serve.trainjob`), one job at a time across
replicas (:mod:`precache.serve.jobs`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Header, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from precache.defaults import PAGE_PREDICTOR
from precache.registry import ModelRegistry
from precache.serve.auth import Role
from precache.serve.deps import ApiCaller, State, TrainingCaller
from precache.serve.errors import ApiError, error_responses
from precache.serve.jobs import ACTIVE, JobStore, new_job
from precache.serve.redact import hide_paths
from precache.serve.schemas import (
    ActivationResponse,
    ModelEntry,
    ModelName,
    ModelsResponse,
    TrainAccepted,
    TrainJob,
    TrainRequestIn,
    VersionOut,
)
from precache.serve.state import ServiceState

log = logging.getLogger("precache.serve")

VERSION_PATTERN = r"^v[0-9]{1,9}$"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
FILE_PATTERN = rf"^{NAME_PATTERN}(/{NAME_PATTERN})?$"  # a file, or a file of a component sub-directory
JOB_PATTERN = r"^[0-9a-f]{32}$"


def _version_out(info: Any) -> VersionOut:
    return VersionOut(version=info.version, created=info.created, kind=info.kind, status=info.status,
                      reason=info.reason, metrics=info.metrics, dataSpan=info.data_span, gate=info.gate)


router = APIRouter()


def served_version(state: ServiceState, name: str) -> str | None:
    if name == PAGE_PREDICTOR:
        return state.models.current.version if state.models.current else None
    advisor = state.advisors.current()
    return advisor.version if advisor else None


@router.get("/api/ml/models", response_model=ModelsResponse, tags=["models"],
            summary="Registered versions, the active and previous one per model (API token)",
            responses=error_responses(401, 422))
async def list_models(state: State, caller: ApiCaller) -> ModelsResponse:
    registry = state.registry
    operator = caller.role == Role.TRAINING  # the API token's holders see no filesystem path (redact.py)

    def read() -> ModelsResponse:
        from precache.registry import MODEL_NAMES

        models = {}
        for name in MODEL_NAMES:
            pointer = registry.pointer(name)
            versions = [_version_out(v) for v in registry.versions(name)]
            if not operator:
                versions = [VersionOut.model_validate(hide_paths(v.model_dump())) for v in versions]
            models[name] = ModelEntry(active=pointer.get("version"), previous=pointer.get("previous"),
                                      versions=versions, served=served_version(state, name))
        return ModelsResponse(revision=registry.revision(), models=models)

    return await asyncio.to_thread(read)


async def change(state: ServiceState, name: str, operation: Callable[[], Any]) -> ActivationResponse:
    from precache.registry import ModelFileError, RegistryError

    try:
        info = await asyncio.to_thread(operation)
    except RegistryError as exc:
        status = 404 if ("has no version" in str(exc) or "unknown model" in str(exc)) else 409
        raise ApiError(status, "not_found" if status == 404 else "conflict", str(exc)) from None
    except ModelFileError as exc:
        raise ApiError(409, "conflict", f"the version failed verification: {exc}") from None
    if state.follower is not None:
        await state.follower.sync()  # this replica at once; the others on the registry's notification
    return ActivationResponse(name=name, version=info.version, revision=state.registry.revision())


@router.post("/api/ml/models/{name}/activate/{version}", response_model=ActivationResponse, tags=["models"],
             summary="Make a registered version active on every replica (training key)",
             responses=error_responses(401, 403, 404, 409, 422))
async def activate(name: ModelName, state: State, _: TrainingCaller,
                   version: str = PathParam(pattern=VERSION_PATTERN)) -> ActivationResponse:
    return await change(state, name, lambda: state.registry.activate(name, version))


@router.post("/api/ml/models/{name}/rollback", response_model=ActivationResponse, tags=["models"],
             summary="Activate the previous (or the named) version (training key)",
             responses=error_responses(401, 403, 404, 409, 422))
async def rollback(name: ModelName, state: State, _: TrainingCaller,
                   version: str | None = Query(None, pattern=VERSION_PATTERN)) -> ActivationResponse:
    return await change(state, name, lambda: state.registry.rollback(name, version))


@router.get("/api/ml/models/{name}/active/files/{file:path}", tags=["models"],
            summary="A file of the active version (or of its component sub-directories: component-0/...), for "
                    "edge workers' model sync (API token)",
            responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                 "format": "binary"}}},
                             "description": "the file; ETag is its sha256"},
                       304: {"description": "If-None-Match matched: the caller has this file"},
                       **error_responses(401, 404, 409, 422)})
async def model_file(name: ModelName, state: State, _: ApiCaller, file: str = PathParam(pattern=FILE_PATTERN),
                     if_none_match: str | None = Header(None, max_length=256)) -> Response:
    data, digest = await asyncio.to_thread(read_active_file, state.registry, name, file)
    etag = f'"{digest}"'
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(data, media_type="application/octet-stream",
                    headers={"ETag": etag, "Cache-Control": "no-cache"})


def read_active_file(registry: ModelRegistry, name: str, file: str) -> tuple[bytes, str]:
    """The bytes and sha256 of one servable file of ``name``'s active version (404 / 409 as ``ApiError``)."""
    info = registry.active(name)
    if info is None:
        raise ApiError(404, "not_found", f"{name} has no active version")
    try:
        listed = servable_files(info.path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # a corrupt manifest: not a 500
        raise ApiError(409, "conflict", f"{name} {info.version}: a manifest is unreadable or malformed "
                                        f"({type(exc).__name__}); nothing of this version can be served") from None
    if file not in listed:
        raise ApiError(404, "not_found", f"{file} is not a file of {name} {info.version}")
    data = _read_inside(info.path, edge_prefix(info.path, file) + file, f"{name} {info.version}")
    digest = hashlib.sha256(data).hexdigest()
    expected = listed[file]
    if expected is not None and expected != digest:
        raise ApiError(409, "conflict", f"{file} of {name} {info.version} does not match its sha256")
    return data, digest


def _read_inside(root: Path, file: str, what: str) -> bytes:
    """The bytes of ``root/file``, a regular file inside ``root``: a symlink (anywhere on the way) is never
    followed, so a link planted in a version cannot serve what lies outside it (409)."""
    path = root / file
    base = root.resolve()
    current = root
    for part in Path(file).parts:
        current = current / part
        if current.is_symlink():
            raise ApiError(409, "conflict", f"{file} of {what} is a symbolic link; only regular files are served")
    try:
        inside = path.resolve(strict=True).is_relative_to(base)
    except OSError:
        raise ApiError(404, "not_found", f"{file} of {what} is missing") from None
    if not inside or not path.is_file():
        raise ApiError(409, "conflict", f"{file} of {what} is not a regular file inside the version")
    return path.read_bytes()


def job_store(state: ServiceState) -> JobStore:
    return JobStore(state.redis, state.serve.redis_prefix, state.serve.training_job_retention_seconds)


@router.post("/api/ml/train", status_code=202, response_model=TrainAccepted, tags=["training"],
             summary="Start a training run out of process: collect, train, evaluate, gate, register, activate "
                     "(training key; one at a time)", responses=error_responses(401, 403, 409, 413, 422, 503))
async def train(body: TrainRequestIn, state: State, _: TrainingCaller) -> JSONResponse:
    request = training_request(state, body)
    if body.schedule != "once":
        return await declare_schedule(state, request, body.schedule)
    jobs = job_store(state)
    job = new_job(request)
    timeout = float(request["config"].get("timeoutSeconds") or 3600.0)
    try:
        running = await jobs.claim(job, timeout)
    except Exception as exc:
        raise ApiError(503, "unavailable", f"training jobs need Redis: {type(exc).__name__}: {exc}") from None
    if running is not None:
        raise ApiError(409, "conflict", f"training job {running} is running; one job at a time")
    try:
        await spawn_job(state, job["jobId"])
    except Exception as exc:
        await jobs.release(job["jobId"])
        raise ApiError(503, "unavailable", f"could not start the training process: {exc}") from None
    url = f"/api/ml/train/{job['jobId']}"
    return JSONResponse({"jobId": job["jobId"], "status": "queued", "statusUrl": url}, status_code=202,
                        headers={"Location": url})


@router.get("/api/ml/train/{job_id}", response_model=TrainJob, tags=["training"],
            summary="A training job's status, stage, outcomes and gate decisions (training key)",
            responses=error_responses(401, 403, 404, 422, 503))
async def train_status(state: State, _: TrainingCaller,
                       job_id: str = PathParam(pattern=JOB_PATTERN)) -> dict[str, Any]:
    try:
        job = await job_store(state).get(job_id)
    except Exception as exc:
        raise ApiError(503, "unavailable", f"training jobs need Redis: {type(exc).__name__}: {exc}") from None
    if job is None:
        raise ApiError(404, "not_found", f"no training job {job_id} (unknown or expired)")
    return job


async def declare_schedule(state: ServiceState, request: dict[str, Any], schedule: str) -> JSONResponse:
    from precache.training import TrainRequest
    from precache.training.scheduler import add_schedule, parse_schedule

    try:
        schedule_id = await asyncio.to_thread(add_schedule, state.settings.redis_url, TrainRequest.from_json(request),
                                              parse_schedule(schedule))
    except ValueError as exc:
        raise ApiError(422, "validation_error", f"body: {exc}") from None
    except Exception as exc:
        raise ApiError(503, "unavailable", f"schedules need Redis: {type(exc).__name__}: {exc}") from None
    return JSONResponse({"jobId": schedule_id, "status": "scheduled", "statusUrl": None}, status_code=202)


def servable_files(directory: Path) -> dict[str, str | None]:
    """The files of a version directory an edge worker may fetch, with the sha256 each must have: the model's
    manifest and the files it lists; for an ``auto`` model, each component sub-directory's manifest (pinned
    by the sha256 ``auto.json`` records for it) and the files that manifest lists, as ``component-0/<file>``
    (its edge fallback's too, ``edge-fallback/<file>``);
    and, when ``precache edge build --publish`` wrote one, the edge manifest and the files it lists (``files:
    {name: {sha256, bytes}}``). The top manifest is served as it is (its ETag is still the sha256 of the bytes
    sent); nothing else in the directory is reachable."""
    import json

    from precache.models.auto import AUTO_FILE, part_entries

    out = _listed(directory, "")
    if AUTO_FILE in out:  # listed, so its bytes are checked against the manifest when served
        for entry in part_entries(json.loads((directory / AUTO_FILE).read_text(encoding="utf-8"))):
            sub = entry.get("dir")
            if isinstance(sub, str) and re.fullmatch(NAME_PATTERN, sub) and (directory / sub).is_dir():
                out.update(_listed(directory / sub, f"{sub}/"))
                pinned = entry.get("manifest_sha256")
                out[f"{sub}/manifest.json"] = pinned if isinstance(pinned, str) else None
    edge = directory / edge_prefix(directory, "edge-manifest.json") / "edge-manifest.json"
    if edge.is_file():
        out["edge-manifest.json"] = None
        edge_files = json.loads(edge.read_text(encoding="utf-8")).get("files")
        if isinstance(edge_files, dict):
            out.update({str(k): str(v["sha256"]) for k, v in edge_files.items()
                        if isinstance(v, dict) and isinstance(v.get("sha256"), str)})
    return out


REFRESH_DIR = "edge-refresh"


def edge_prefix(directory: Path, file: str) -> str:
    """``edge-refresh/`` when ``file`` is the edge manifest or one of its files and the version has a complete
    refreshed edge version (the online counts applied: :mod:`precache.serve.edge_refresh`), else ``""``: the
    Workers then get the refreshed manifest and files under the usual names, verified like any other."""
    from precache.edge.publish import published_version

    if "/" in file or not (file == "edge-manifest.json" or file.startswith("edge-")):
        return ""
    refreshed = directory / REFRESH_DIR
    if not (refreshed / "edge-manifest.json").is_file() or published_version(refreshed) is None:
        return ""
    return f"{REFRESH_DIR}/"


def _listed(directory: Path, prefix: str) -> dict[str, str | None]:
    """``manifest.json`` and the files its ``files`` (or older ``sha256``) table lists, under ``prefix``."""
    import json

    out: dict[str, str | None] = {f"{prefix}manifest.json": None}
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    for listing in (manifest.get("files"), manifest.get("sha256")):
        if isinstance(listing, dict):
            out.update({f"{prefix}{k}": str(v) for k, v in listing.items()
                        if isinstance(v, str) and re.fullmatch(NAME_PATTERN, str(k))})
    return out


def training_request(state: ServiceState, body: TrainRequestIn) -> dict[str, Any]:
    """The pipeline's JSON request (:meth:`precache.training.TrainRequest.from_json`) for an API body."""
    config = {k: v for k, v in body.config.model_dump().items() if v is not None}
    request: dict[str, Any] = {"modelType": body.modelType, "config": config, "traces": [], "eventsDir": None}
    if body.trace is not None:
        root = state.serve.training_data_dir
        if root is None:
            raise ApiError(422, "validation_error", "body.trace: PRECACHE_TRAINING_DATA_DIR is not set on the service")
        base = root.resolve()
        path = (base / body.trace.path).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise ApiError(422, "validation_error", f"body.trace.path: no file {body.trace.path!r} under the data dir")
        request["traces"] = [{"path": str(path), "format": body.trace.format}]
    elif state.serve.training_events_dir is not None:
        request["eventsDir"] = str(state.serve.training_events_dir)
    else:
        raise ApiError(422, "validation_error", "body.trace: required (PRECACHE_TRAINING_EVENTS_DIR is not set)")
    from precache.training import TrainRequest

    try:
        TrainRequest.from_json(request)  # the pipeline's own checks, before anything starts
    except ValueError as exc:
        raise ApiError(422, "validation_error", f"body.config: {exc}") from None
    return request


async def spawn_job(state: ServiceState, job_id: str) -> None:
    """Start the job process detached from this request; a background task reaps it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "precache.serve.trainjob", job_id, env=dict(os.environ),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        cwd=str(Path.cwd()), start_new_session=True)

    async def reap() -> None:
        code = await proc.wait()
        if code == 0:
            return
        log.warning("training job %s ended with status %d", job_id, code)
        jobs = job_store(state)
        try:
            job = await jobs.get(job_id)
            if job is not None and job["status"] in ACTIVE:  # it died before recording an outcome
                how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                await jobs.mark_lost(job, f"the job process ended ({how}) before recording an outcome")
        except Exception as exc:  # Redis away: the alive key expires and the next reader marks it
            log.warning("training job %s: could not record its end: %s", job_id, exc)

    state.spawn(reap())
