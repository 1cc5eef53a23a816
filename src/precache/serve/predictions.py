"""The service's prediction core: what ``/api/ml/predict`` and ``/api/ml/events`` decide, free of FastAPI.

The routes (:mod:`precache.serve.ml_routes`) validate the body and call :meth:`PredictionCore.predict` or
:meth:`PredictionCore.record_events`; tests call them directly. Per ``/predict`` request, in order:

- ``type=cache``: the cache optimizer's admit / priority / TTL for ``context.key``, from the key's recorded
  accesses (:mod:`precache.serve.decisions`).
- ``type=page`` and ``warming``: the session's experiment arm (no I/O) picks the model -- the version it
  pins, never another (that would mix the arms); the page view is appended to the session history (one
  write) and shown to the monitor and the hooks; then
  - ``warming``: the threshold is the arm's, else the caller's, else the warming threshold; the control arm
    of a warming experiment preloads nothing; otherwise the model's top pages at or above it, each with its
    likely assets;
  - ``page``: the edge Worker answers when configured and the caller allows it (down, slow, refused or
    breaker open: the local model answers); the caller's threshold filters.

Latency is measured once per request (from the start of :meth:`predict` to the answer) and the monitor is
told once per answered prediction; errors (``ApiError``: 422, 503) answer nothing and are not timed.

**The online-learning seam**: a :class:`PredictionHook` added with :meth:`PredictionCore.add_hook`
(a) observes every page view once it is in the history store -- ``observe(session_id, pages, history,
context)``, from ``/predict`` (one page) and from ``/events`` (a session's pages of the batch), with the
:class:`~precache.types.RequestContext` of the visitor (address, user agent: from the body's
``context.client`` / ``context.userAgent`` or the event's ``client`` / ``userAgent``, else what a trusted
proxy forwarded, else unknown; :mod:`precache.serve.visitor`) so the hook can screen bots and cap a client
across sessions -- and (b) adjusts the
model's ranking before thresholds and response: ``rerank(session_id, history, ranked, k)`` gets the local
model's top-``k`` (possibly from the prediction cache: return a new list, never mutate it) and returns the
ranking to use, best first. Hooks run in the order added. Edge answers are not reranked (the edge serves
its own published tables). The history store itself (:mod:`precache.history`) is the state's
``histories``, shared by replicas through Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from precache.history import HistoryStore
from precache.serve.events import StreamUnavailable
from precache.serve.problems import ApiError
from precache.serve.schemas import (
    AccessEventIn,
    CacheDecision,
    EventsResponse,
    PagePrediction,
    PageResponse,
    PredictRequest,
    WarmingItem,
    WarmingResponse,
)
from precache.types import Prediction, RequestContext, SessionArm

log = logging.getLogger("precache.serve")

if TYPE_CHECKING:
    from precache.config import Settings
    from precache.edge.client import EdgeInference
    from precache.serve.decisions import CacheAdvisor
    from precache.serve.events import EventRecorder
    from precache.serve.metrics import ServiceMetrics
    from precache.serve.model import ModelHolder, ServedModel
    from precache.serve.monitoring import ServiceMonitoring
    from precache.serve.ratelimit import SharedRateLimiter

Answer = PageResponse | WarmingResponse | CacheDecision
Kind = Literal["page", "warming", "cache"]
ArmSource = Callable[[str], SessionArm | None]
"""A session id -> its experiment arm on this replica (None: no experiment). No I/O."""


class PredictionHook(Protocol):
    """The online-learning layer's seam (see the module docstring)."""

    async def observe(self, session_id: str, pages: Sequence[str], history: Sequence[str],
                      context: RequestContext) -> None:
        """``pages`` were just viewed by ``session_id`` and are in the history store; ``history`` is the
        session's history after them (oldest first, capped: it ends with ``pages``); ``context`` says who the
        visitor is, as far as the service knows (fields ``None`` when unknown)."""
        ...

    depth: int
    """How many of the model's pages :meth:`rerank` is handed (at least ``k``): the online merge draws on the
    model's top 50, as the prequential benchmark scores it, not only on the ``k`` it answers with."""

    async def rerank(self, session_id: str, history: Sequence[str], ranked: Prediction, k: int) -> Prediction:
        """The top-``k`` to answer with instead of the model's ``ranked`` top-``depth`` (a new list, best
        first)."""
        ...


class AdvisorSource(Protocol):
    """The cache optimizer in use (:class:`precache.serve.decisions.Advisors`)."""

    def current(self) -> CacheAdvisor | None: ...

    def problem(self) -> str | None: ...


class PinnedSource(Protocol):
    """Registry versions experiment arms pin (:class:`precache.serve.pinned.PinnedModels`)."""

    async def get(self, version: str) -> ServedModel | None: ...


@dataclass(slots=True)
class _Outcome:
    """What a branch found; the response is built once the latency is known."""

    kind: Kind
    version: str
    build: Callable[[float], Answer]
    session_id: str | None = None
    pages: Sequence[str] = ()
    cached: bool | None = None  # None: no prediction-cache lookup to count


def _prob(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def warming_threshold(body: PredictRequest, arm: SessionArm | None, default: float) -> float:
    """The arm decides (a caller's own threshold would void the experiment), else the caller, else ``default``."""
    if arm is not None and arm.threshold is not None:
        return arm.threshold
    return body.options.threshold if body.options.threshold is not None else default


@dataclass
class PredictionCore:
    settings: Settings
    models: ModelHolder
    histories: HistoryStore
    events: EventRecorder
    limiter: SharedRateLimiter
    metrics: ServiceMetrics
    monitoring: ServiceMonitoring
    advisors: AdvisorSource
    pinned: PinnedSource
    arms: ArmSource
    edge: EdgeInference | None = None
    hooks: list[PredictionHook] = field(default_factory=list)

    def add_hook(self, hook: PredictionHook) -> None:
        self.hooks.append(hook)

    # -- /api/ml/predict ----------------------------------------------------------------------------
    async def predict(self, body: PredictRequest, context: RequestContext = RequestContext()) -> Answer:
        """Answer one ``/predict`` body; ``context``: the visitor as the route found it (the body's own
        ``context.client`` / ``context.userAgent`` win)."""
        start = time.perf_counter()
        outcome = await (self._cache(body) if body.type == "cache" else self._pages(body, context))
        seconds = time.perf_counter() - start
        if outcome.cached is not None:
            self.metrics.cache_lookup(outcome.cached)
        self.monitoring.prediction(seconds, outcome.kind, outcome.session_id, outcome.pages, outcome.version)
        return outcome.build(round(seconds * 1000, 3))

    def model_or_503(self) -> ServedModel:
        if not self.settings.ml_enabled:
            self.metrics.unavailable += 1
            raise ApiError(503, "ml_disabled", "ML_ENABLED is false: predictions are switched off")
        served = self.models.current
        if served is None:
            self.metrics.unavailable += 1
            raise ApiError(503, "no_model", self.models.last_error or "no active model is loaded")
        return served

    async def _pinned_or_active(self, version: str, active: ServedModel) -> ServedModel:
        """The version the session's arm pins; when it cannot be served (deleted, pruned, failing verification,
        over the pinned limit) the arm stops safely: its sessions get the active model, counted
        (``precache_experiment_arm_fallbacks_total``) and logged once per version, never a 503."""
        pinned = await self.pinned.get(version)
        if pinned is None:
            self.metrics.arm_fallbacks += 1
            if version not in self.metrics.fallback_versions:
                self.metrics.fallback_versions.add(version)
                log.warning("experiment arm pins page-predictor %s, which cannot be served: its sessions get the "
                            "active model %s", version, active.version)
            return active
        return pinned

    async def _pages(self, body: PredictRequest, context: RequestContext) -> _Outcome:
        served = self.model_or_503()
        page = body.context.currentPath
        if page is None:
            raise ApiError(422, "validation_error", f"body.context.currentPath: required for type={body.type}")
        arm = self.arms(body.sessionId)
        if arm is not None and arm.model_version is not None and arm.model_version != served.version:
            served = await self._pinned_or_active(arm.model_version, served)
        history = await self.histories.append(body.sessionId, [page])
        self.monitoring.page_view(body.sessionId, page)
        if self.hooks:
            visitor = context.overridden(body.context.client, body.context.userAgent)
            for hook in self.hooks:
                await hook.observe(body.sessionId, [page], history, visitor)
        if body.type == "warming":
            return await self._warming(body, served, arm, history)
        return await self._page(body, served, page, history)

    def _depth(self, k: int) -> int:
        """How many pages to ask the model for: ``k``, or what the deepest hook merges from."""
        return max([k, *(hook.depth for hook in self.hooks)])

    async def _rerank(self, session_id: str, history: list[str], ranked: Prediction, k: int) -> Prediction:
        for hook in self.hooks:
            ranked = await hook.rerank(session_id, history, list(ranked), k)
        return ranked

    async def _warming(self, body: PredictRequest, served: ServedModel, arm: SessionArm | None,
                       history: list[str]) -> _Outcome:
        predictive = self.settings.predictive
        threshold = warming_threshold(body, arm, predictive.warming_threshold)
        version = served.version
        if arm is not None and not arm.warming:  # the control arm of a warming experiment: nothing to preload
            return _Outcome("warming", version, lambda ms: WarmingResponse(
                preload=[], threshold=threshold, latency=ms, modelVersion=version))
        k = max(1, min(50, predictive.max_preload_items))
        ranked, cached = await self.models.predict(served, history, self._depth(k))
        if self.hooks:
            ranked = await self._rerank(body.sessionId, history, ranked, k)
        pages = [(p, _prob(pr)) for p, pr in ranked if pr >= threshold]
        assets = self.events.assets
        listed = await assets.of_pages(pages, threshold) if assets is not None else [[] for _ in pages]
        items = [WarmingItem(page=p, probability=pr, assets=[PagePrediction(page=a, probability=_prob(pa))
                                                             for a, pa in found])
                 for (p, pr), found in zip(pages, listed, strict=True)]
        return _Outcome("warming", version, lambda ms: WarmingResponse(
            preload=items, threshold=threshold, latency=ms, modelVersion=version), cached=cached)

    async def _page(self, body: PredictRequest, served: ServedModel, page: str, history: list[str]) -> _Outcome:
        threshold = body.options.threshold or 0.0
        session_id, k = body.sessionId, body.options.topK
        if self.edge is not None and body.options.useEdgeInference is not False:
            answer = await self.edge.predict(session_id, page, history[:-1], k)
            if answer is not None:  # else: down, slow, refused or breaker open -> answer locally below
                edge_version = answer.model_version
                found = [PagePrediction(page=p, probability=_prob(pr)) for p, pr in answer.predictions
                         if pr >= threshold]
                return _Outcome("page", edge_version, lambda ms: PageResponse(
                    predictions=found, latency=ms, cached=False, modelVersion=edge_version, answeredBy="edge"),
                    session_id, [p for p, _ in answer.predictions], cached=False)
        ranked, cached = await self.models.predict(served, history, self._depth(k))
        if self.hooks:
            ranked = await self._rerank(session_id, history, ranked, k)
        predictions = [PagePrediction(page=p, probability=_prob(pr)) for p, pr in ranked if pr >= threshold]
        version = served.version
        return _Outcome("page", version, lambda ms: PageResponse(
            predictions=predictions, latency=ms, cached=cached, modelVersion=version),
            session_id, [p for p, _ in ranked], cached=cached)

    async def _cache(self, body: PredictRequest) -> _Outcome:
        if not self.settings.ml_enabled:
            self.model_or_503()
        advisor = self.advisors.current()
        if advisor is None:
            self.metrics.unavailable += 1
            raise ApiError(503, "no_model", self.advisors.problem() or "no cache-optimizer model is loaded")
        key = body.context.key
        if key is None:
            raise ApiError(422, "validation_error", "body.context.key: required for type=cache")
        accesses = await self.events.key_history(key)
        decision = advisor.decide(key, accesses, time.time())
        version = advisor.version
        return _Outcome("cache", version, lambda ms: CacheDecision(
            key=key, basedOnEvents=len(accesses), latency=ms, modelVersion=version,
            **decision))  # type: ignore[arg-type]

    # -- /api/ml/events -----------------------------------------------------------------------------
    async def record_events(self, events: list[AccessEventIn], caller_key: str,
                            context: RequestContext = RequestContext()) -> EventsResponse:
        """Rate-limit per token (across replicas), store the batch (histories, key records, asset counts,
        stream), and tell the monitor and the hooks (each session's visitor: its last event's ``client`` /
        ``userAgent`` where given, else ``context``)."""
        allowed, retry_after = await self.limiter.allow(caller_key, len(events))
        if not allowed:
            raise ApiError(429, "rate_limited", f"more than {self.limiter.rate:g} events/s for this token "
                           "(across replicas)", {"Retry-After": str(retry_after)})
        try:
            recorded = await self.events.record(events)
        except StreamUnavailable as exc:  # nothing stored: the client retries (never a silent drop)
            self.metrics.unavailable += 1
            raise ApiError(503, "unavailable", f"events cannot be stored now ({exc}); retry the batch",
                           {"Retry-After": "1"}) from None
        for event in events:
            if event.page is not None:
                self.monitoring.page_view(event.sessionId, event.page)
            if event.key is not None:
                self.monitoring.access(event.tier)
        if self.hooks:
            visitors = {event.sessionId: context.overridden(event.client, event.userAgent) for event in events}
            for session_id, pages, history in recorded.views:
                for hook in self.hooks:
                    await hook.observe(session_id, pages, history, visitors.get(session_id, context))
        return EventsResponse(accepted=len(events), streamed=recorded.streamed)
