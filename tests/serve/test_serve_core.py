"""The prediction core without HTTP: built from settings like the service, called directly.

What only the core can show: the latency is measured once (the answer's figure is the monitor's), the monitor
hears once per answered prediction, one history write per page view, experiment arms and thresholds, and the
online-learning seam (hooks observe page views and rerank answers).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from serve_harness import train_model

from precache.config import load_settings
from precache.experiments.model import Arm, Experiment
from precache.serve.predictions import warming_threshold
from precache.serve.problems import ApiError
from precache.serve.schemas import AccessEventIn, PageResponse, PredictRequest, WarmingResponse
from precache.serve.settings import load_serve_settings
from precache.serve.state import ServiceState, build_state
from precache.types import Prediction, RequestContext, SessionArm


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("model") / "ppm")


class Spy:
    """Counts the monitor's prediction calls and the history writes the core makes."""

    def __init__(self, state: ServiceState) -> None:
        self.predictions: list[tuple[float, str, str | None, list[str], str | None]] = []
        self.appends: list[tuple[str, list[str]]] = []
        monitoring, histories = state.monitoring, state.histories
        real_prediction, real_append = monitoring.prediction, histories.append

        def prediction(seconds: float, kind: str, session_id: str | None = None, pages: Sequence[str] = (),
                       version: str | None = None) -> None:
            self.predictions.append((seconds, kind, session_id, list(pages), version))
            real_prediction(seconds, kind, session_id, pages, version)

        async def append(session_id: str, pages: list[str]) -> list[str]:
            self.appends.append((session_id, list(pages)))
            return await real_append(session_id, pages)

        monitoring.prediction = prediction  # type: ignore[method-assign]
        histories.append = append  # type: ignore[method-assign]


@pytest.fixture
async def state(model_dir: Path, redis_url: str, tmp_path: Path) -> AsyncIterator[ServiceState]:
    settings = load_settings(redis_url=redis_url, api_token="t" * 24, model_storage_path=str(tmp_path / "store"),
                             ml_enabled=True)
    serve = load_serve_settings(model_dir=model_dir, redis_prefix=f"core{uuid.uuid4().hex[:8]}:",
                                prediction_cache_size=0, gc_freeze=False)
    built = build_state(settings, serve)
    built.models.load(model_dir)
    yield built
    await built.models.aclose()
    await built.redis.aclose()


def request(session: str, page: str | None, kind: str = "page", **options: object) -> PredictRequest:
    context = {"currentPath": page} if page is not None else {"key": "/k"}
    return PredictRequest.model_validate({"sessionId": session, "type": kind, "context": context,
                                         "options": options})


async def test_one_timing_one_monitor_call_one_history_write(state: ServiceState) -> None:
    spy = Spy(state)
    core = state.predictions
    answers = [await core.predict(request("s1", page)) for page in ("/entry0", "/a3", "/hub")]
    assert all(isinstance(a, PageResponse) for a in answers)
    last = answers[-1]
    assert isinstance(last, PageResponse) and last.predictions[0].page == "/b3"  # the history was kept
    assert spy.appends == [("s1", ["/entry0"]), ("s1", ["/a3"]), ("s1", ["/hub"])]
    assert len(spy.predictions) == 3
    for answer, (seconds, kind, session, pages, version) in zip(answers, spy.predictions, strict=True):
        assert isinstance(answer, PageResponse)
        assert answer.latency == round(seconds * 1000, 3) and kind == "page" and session == "s1"
        assert version == answer.modelVersion and pages[: len(answer.predictions)] == [
            p.page for p in answer.predictions]
    warming = await core.predict(request("s2", "/a3", "warming", threshold=0.5))
    assert isinstance(warming, WarmingResponse) and warming.threshold == 0.5
    assert [i.page for i in warming.preload] == ["/hub"] and spy.predictions[-1][1:3] == ("warming", None)
    assert len(spy.predictions) == 4 and len(spy.appends) == 4


async def test_errors_answer_nothing_and_are_not_timed(state: ServiceState) -> None:
    spy = Spy(state)
    core = state.predictions
    with pytest.raises(ApiError) as missing:
        await core.predict(request("s", None, "page"))
    assert missing.value.status == 422 and "currentPath" in missing.value.detail
    with pytest.raises(ApiError) as no_optimizer:
        await core.predict(request("s", None, "cache"))
    assert no_optimizer.value.status == 503
    state.models.current = None
    with pytest.raises(ApiError) as no_model:
        await core.predict(request("s", "/a3"))
    assert (no_model.value.status, no_model.value.code) == (503, "no_model")
    assert spy.predictions == [] and spy.appends == [] and state.metrics.unavailable == 2


async def test_experiment_arms_decide_warming_and_threshold(state: ServiceState) -> None:
    spy = Spy(state)
    state.experiments.use([Experiment("w", "warming", (Arm("off", 1), Arm("on", 1))).validate()])
    arms = {s: state.session_arm(s) for s in (f"s{i}" for i in range(40))}
    off = next(s for s, arm in arms.items() if arm is not None and not arm.warming)
    on = next(s for s, arm in arms.items() if arm is not None and arm.warming)
    control = await state.predictions.predict(request(off, "/a3", "warming", threshold=0.1))
    treated = await state.predictions.predict(request(on, "/a3", "warming", threshold=0.1))
    assert isinstance(control, WarmingResponse) and control.preload == []
    assert isinstance(treated, WarmingResponse) and "/hub" in [i.page for i in treated.preload]
    assert len(spy.predictions) == 2 and len(spy.appends) == 2  # the control arm's view is still recorded
    arm = SessionArm(warming=True, threshold=0.9)
    assert warming_threshold(request("x", "/a", "warming", threshold=0.2), arm, 0.5) == 0.9  # the arm decides
    assert warming_threshold(request("x", "/a", "warming", threshold=0.2), None, 0.5) == 0.2
    assert warming_threshold(request("x", "/a", "warming"), None, 0.5) == 0.5


class OnlineLayer:
    """A stand-in for the online-learning layer: remembers what it observed and promotes one page."""

    depth = 50

    def __init__(self) -> None:
        self.observed: list[tuple[str, list[str], list[str]]] = []
        self.contexts: list[RequestContext] = []
        self.handed: list[int] = []

    async def observe(self, session_id: str, pages: Sequence[str], history: Sequence[str],
                      context: RequestContext) -> None:
        self.observed.append((session_id, list(pages), list(history)))
        self.contexts.append(context)

    async def rerank(self, session_id: str, history: Sequence[str], ranked: Prediction, k: int) -> Prediction:
        self.handed.append(len(ranked))
        return ([("/online", 0.95)] + [(p, pr) for p, pr in ranked if p != "/online"])[:k]


async def test_the_online_seam_observes_views_and_reranks(state: ServiceState) -> None:
    layer = OnlineLayer()
    core = state.predictions
    core.add_hook(layer)
    page = await core.predict(request("s1", "/entry0"))
    await core.predict(request("s1", "/a3"))
    warming = await core.predict(request("s1", "/hub", "warming", threshold=0.9))
    assert isinstance(page, PageResponse) and page.predictions[0].page == "/online" and len(page.predictions) == 5
    assert max(layer.handed) > 5  # the hook merges from the model's deeper list, not only the top 5 it answers
    assert isinstance(warming, WarmingResponse) and warming.preload[0].page == "/online"
    events: list[Any] = [AccessEventIn.model_validate({"sessionId": "s2", "page": p}) for p in ("/x", "/y")]
    events.append(AccessEventIn.model_validate({"sessionId": "s2", "key": "/k.css"}))
    accepted = await core.record_events(events, "caller")
    assert accepted.accepted == 3
    assert layer.observed == [("s1", ["/entry0"], ["/entry0"]), ("s1", ["/a3"], ["/entry0", "/a3"]),
                              ("s1", ["/hub"], ["/entry0", "/a3", "/hub"]), ("s2", ["/x", "/y"], ["/x", "/y"])]


async def test_the_seam_carries_the_visitor_the_body_names_before_the_routes(state: ServiceState) -> None:
    layer = OnlineLayer()
    core = state.predictions
    core.add_hook(layer)
    route = RequestContext("203.0.113.7", "Mozilla/5.0")
    await core.predict(request("s1", "/entry0"), route)
    named = PredictRequest.model_validate({"sessionId": "s1", "context": {
        "currentPath": "/a3", "client": "198.51.100.1", "userAgent": "Googlebot/2.1"}})
    await core.predict(named, route)
    events: list[Any] = [AccessEventIn.model_validate({"sessionId": "s2", "page": "/x", "client": "192.0.2.5",
                                                       "userAgent": "curl/8.5"}),
                         AccessEventIn.model_validate({"sessionId": "s3", "page": "/y"})]
    await core.record_events(events, "caller", RequestContext("203.0.113.9"))
    assert layer.contexts == [route, RequestContext("198.51.100.1", "Googlebot/2.1"),
                              RequestContext("192.0.2.5", "curl/8.5"), RequestContext("203.0.113.9")]
