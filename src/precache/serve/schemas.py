"""Request and response bodies of ``/api/ml/*``: the HTTP contract, and the OpenAPI schema built from it.

Why strict models: a back end in any language talks to this service, so a wrong type must be a ``422``
naming the field, never silently coerced (``"5"`` is not a ``topK``). Unknown top-level fields are refused;
only ``context`` takes extra fields, at most 32 scalar values with bounded strings. Every string a client
sends is bounded, so no request can make the service hold unbounded data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from precache.defaults import MODEL_NAMES, PAGE_PREDICTOR
from precache.models.kinds import kind_names
from precache.traces.detect import FORMATS

MAX_SESSION_ID = 128
MAX_PAGE = 2048
MAX_CONTEXT_EXTRA = 32
MAX_CONTEXT_STRING = 1024
MAX_EVENTS = 1000

SessionId = Annotated[str, Field(min_length=1, max_length=MAX_SESSION_ID)]
Page = Annotated[str, Field(min_length=1, max_length=MAX_PAGE)]
_SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "maxLength": MAX_CONTEXT_STRING}, {"type": "number"}, {"type": "boolean"},
              {"type": "null"}],
}


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ErrorBody(BaseModel):
    """Every error response: a short machine-readable code and a human-readable detail."""

    error: str = Field(description="machine-readable code, e.g. unauthorized, validation_error, not_ready")
    detail: str = Field(description="what went wrong, naming the field or setting; never a stack trace")


class PredictContext(BaseModel):
    """What the caller knows about the request: the current page, plus up to 32 scalar fields of its own."""

    model_config = ConfigDict(strict=True, extra="allow", json_schema_extra={
        "additionalProperties": _SCALAR_SCHEMA, "maxProperties": MAX_CONTEXT_EXTRA + 4})

    currentPath: Page | None = Field(None, description="the page being viewed (required for page/warming)")
    key: Annotated[str, Field(min_length=1, max_length=MAX_PAGE)] | None = Field(
        None, description="the cache key to decide on (required for type=cache)")
    client: Annotated[str, Field(max_length=MAX_CONTEXT_STRING)] | None = Field(
        None, description="the visitor's address, when the caller knows it: the online layer's per-client "
                          "contribution cap keys on it (default: the session)")
    userAgent: Annotated[str, Field(max_length=MAX_CONTEXT_STRING)] | None = Field(
        None, description="the visitor's User-Agent, when the caller knows it: a crawler's page views are not "
                          "learned by the online layer")

    @model_validator(mode="after")
    def _bounded_extras(self) -> PredictContext:
        extra = self.model_extra or {}
        if len(extra) > MAX_CONTEXT_EXTRA:
            raise ValueError(f"at most {MAX_CONTEXT_EXTRA} extra context fields, got {len(extra)}")
        for name, value in extra.items():
            if len(name) > 64:
                raise ValueError(f"context field name longer than 64 characters: {name[:64]!r}...")
            if value is not None and not isinstance(value, str | int | float | bool):
                raise ValueError(f"context.{name} must be a string, number, boolean or null")
            if isinstance(value, str) and len(value) > MAX_CONTEXT_STRING:
                raise ValueError(f"context.{name} is longer than {MAX_CONTEXT_STRING} characters")
        return self


class PredictOptions(_Strict):
    topK: int = Field(5, ge=1, le=50, description="how many pages to return (page type)")
    threshold: float | None = Field(None, ge=0.0, le=1.0,
                                    description="minimum probability (default: the warming threshold for "
                                                "type=warming, 0 for type=page)")
    useEdgeInference: bool | None = Field(None, description="page type: forward to the edge Worker "
                                          "(ML_EDGE_INFERENCE_URL) with a tight timeout, answering locally on "
                                          "error, timeout or an open breaker; default: forward whenever the "
                                          "URL is set; false: always answer locally")


class PredictRequest(_Strict):
    sessionId: SessionId
    type: Literal["page", "cache", "warming"] = "page"
    context: PredictContext
    options: PredictOptions = Field(default_factory=PredictOptions)


class PagePrediction(BaseModel):
    page: str
    probability: float = Field(ge=0.0, le=1.0)


class PageResponse(BaseModel):
    predictions: list[PagePrediction]
    latency: float = Field(description="milliseconds spent answering, inside the service")
    cached: bool = Field(description="the answer came from this replica's prediction cache")
    modelVersion: str
    answeredBy: Literal["service", "edge"] = Field("service", description="which path answered: this "
                                                   "service's model or the edge Worker")


class WarmingItem(BaseModel):
    page: str
    probability: float = Field(ge=0.0, le=1.0)
    assets: list[PagePrediction] = Field(
        default_factory=list, description="the page's likely assets (learned from the keys sessions fetched after "
                                          "viewing it, reported to /api/ml/events), with P(page) * P(asset | page), "
                                          "at or above the threshold")


class WarmingResponse(BaseModel):
    preload: list[WarmingItem]
    threshold: float
    latency: float
    modelVersion: str


class CacheDecision(BaseModel):
    key: str
    shouldCache: bool
    priority: float = Field(description="predicted seconds to the next access (lower = keep longer)")
    ttl: float = Field(description="seconds; predicted time to the next content change, bounded")
    invalidationProbability: float = Field(ge=0.0, le=1.0)
    basedOnEvents: int = Field(ge=0, description="how many access events of this key the features rest on")
    latency: float
    modelVersion: str


class AccessEventIn(_Strict):
    """One access a back end or a log shipper reports."""

    sessionId: SessionId
    page: Page | None = Field(None, description="a page view: appended to the session's history")
    key: Annotated[str, Field(min_length=1, max_length=MAX_PAGE)] | None = Field(
        None, description="the cache key accessed (feeds type=cache decisions)")
    time: float | None = Field(None, ge=0, le=1e11, description="unix seconds; default: when received")
    tier: Literal["l1", "l2", "origin", "stale", "error", "miss"] = "origin"
    latency: float = Field(0.0, ge=0, le=3600, description="seconds the access took")
    size: int = Field(0, ge=0, le=1 << 40, description="bytes")
    client: Annotated[str, Field(max_length=128)] | None = Field(
        None, description="the visitor's address; stored only as a keyed hash")
    userAgent: Annotated[str, Field(max_length=MAX_CONTEXT_STRING)] | None = Field(
        None, description="the visitor's User-Agent (not stored): a crawler's page views are not learned by the "
                          "online layer")

    @model_validator(mode="after")
    def _page_or_key(self) -> AccessEventIn:
        if self.page is None and self.key is None:
            raise ValueError("an event needs a page or a key")
        return self


class EventsRequest(_Strict):
    events: list[AccessEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    accepted: int
    streamed: bool = Field(description="the events reached the access-event stream (Redis)")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    model: dict[str, Any]
    redis: str = Field(description="ok | degraded (...) | not configured")
    sessions: str = Field(description="where session histories live: redis, or memory (bounded, this replica)")
    detail: str
    error: str | None = Field(None, description="not_ready when the answer is 503")


# Names, kinds and formats come from their one registry (a test checks the schema against each):
# ``Literal[tuple]`` is ``Literal[*tuple]``, so validation and the OpenAPI enum are what a hand-written
# Literal gave, without a copy that can drift (``markov-count`` was once refused here and accepted by the CLI).
if TYPE_CHECKING:
    ModelName = str
    ModelType = str
    PredictorKind = str
    TraceFormat = str
else:
    ModelName = Literal[MODEL_NAMES]
    ModelType = Literal[(*MODEL_NAMES, "all")]
    PredictorKind = Literal[kind_names()]
    TraceFormat = Literal[("auto", *FORMATS)]


class TrainConfigIn(_Strict):
    """The seed API's names; ``epochs`` and ``batchSize`` apply to the attention part of the auto predictor."""

    epochs: int | None = Field(None, ge=1, le=1000)
    batchSize: int | None = Field(None, ge=1, le=65536)
    targetAccuracy: float | None = Field(None, ge=0.0, le=1.0,
                                         description="gate: HR@5 (page predictor) / decision accuracy (optimizer)")
    predictor: PredictorKind | None = None
    tolerance: float | None = Field(None, ge=0.0, le=1.0, description="how much worse than the active model")
    timeoutSeconds: float | None = Field(None, gt=0, le=86400)
    onlineSettings: bool | None = Field(None, description="choose the online layer's settings on the validation "
                                        "slice and store them with the model (default true; docs/online.md)")


class TraceIn(_Strict):
    path: Annotated[str, Field(min_length=1, max_length=512)] = Field(
        description="a file under PRECACHE_TRAINING_DATA_DIR (relative path)")
    format: TraceFormat = "auto"


class TrainRequestIn(_Strict):
    modelType: ModelType = PAGE_PREDICTOR
    config: TrainConfigIn = Field(default_factory=TrainConfigIn)
    schedule: Literal["once", "daily", "weekly", "monthly"] = Field(
        "once", description="once: run now (a job); daily/weekly/monthly: declare a schedule that the scheduler "
                            "process runs (03:00 UTC; weekly on Sunday, monthly on the 1st)")
    trace: TraceIn | None = Field(None, description="default: the events collected in PRECACHE_TRAINING_EVENTS_DIR")


class TrainAccepted(BaseModel):
    jobId: str = Field(description="the job id (schedule once) or the schedule id")
    status: Literal["queued", "scheduled"]
    statusUrl: str | None = Field(description="GET it for the job's progress (schedule once)")


class TrainJob(BaseModel):
    jobId: str
    status: Literal["queued", "running", "succeeded", "failed"]
    stage: str
    created: str
    updated: str
    request: dict[str, Any]
    outcomes: list[dict[str, Any]] = Field(default_factory=list,
                                           description="per model: status, version, reason, gate decision")
    error: str | None = None
    pid: int | None = Field(None, description="the job process's id, on host (set when it starts)")
    host: str | None = None


class VersionOut(BaseModel):
    version: str
    created: str
    kind: str
    status: str
    reason: str
    metrics: dict[str, Any]
    dataSpan: dict[str, Any]
    gate: dict[str, Any]


class ModelEntry(BaseModel):
    active: str | None
    previous: str | None
    versions: list[VersionOut]
    served: str | None = Field(description="the version this replica serves now")


class ModelsResponse(BaseModel):
    revision: int
    models: dict[str, ModelEntry]


class ActivationResponse(BaseModel):
    name: str
    version: str
    revision: int
