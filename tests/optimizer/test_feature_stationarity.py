"""Issue 26: a model trained once serves on rows with no count over the whole stream.

Why it matters: the offline optimizer is trained on an earlier stretch of the stream and serves a later
one. The number of distinct objects seen so far only grows, so when the policy serves it is always
beyond its training range, and the trees read the present as "the end of the training stretch". On the
validation protocol (model trained on the first quarter, second quarter replayed) writing it as 0 moved
the default learned configuration at the 10% cache by -0.012 (NASA Jul, mean of 5 seeds), -0.004
(NASA 1 Aug) and -0.009 (CloudPhysics), and the smaller caches by at most 0.003 (docs/policy.md).
The online policy, refit every half window, keeps the count: it was worth up to 0.009 there.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from precache.cache.clock import ManualClock
from precache.models.optimizer.features import FEATURE_NAMES, FeatureTracker
from precache.models.optimizer.labels import build_dataset, trace_from_requests
from precache.models.optimizer.model import OptimizerModel
from precache.models.optimizer.online import OnlineConfig, OnlineLearnedPolicy
from precache.models.optimizer.policy import LearnedPolicy
from precache.models.optimizer.train import TrainConfig, train
from precache.traces.model import Request

COUNT = FEATURE_NAMES.index("log_distinct_objects")


def _history(tr: FeatureTracker, t0: float) -> None:
    """The same recent history of two objects, from ``t0`` on."""
    for dt, key in ((0.0, "/a.html"), (4.0, "/b.gif"), (9.0, "/a.html"), (30.0, "/a.html"), (31.0, "/b.gif")):
        tr.observe(key, t0 + dt, size=2_000, client="c1")


def _rows_after(stream_counts: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the same two objects, for a tracker that saw nothing before them and for one that also saw
    5,000 other objects of the same size a million seconds earlier (every decayed rate has forgotten them)."""
    fresh, veteran = FeatureTracker(stream_counts=stream_counts), FeatureTracker(stream_counts=stream_counts)
    for i in range(5_000):
        veteran.observe(f"/old/{i}.html", float(i % 100), size=2_000, client="c1")
    t0 = 1_000_000.0
    _history(fresh, t0)
    _history(veteran, t0)
    states = [fresh.get("/a.html"), fresh.get("/b.gif")], [veteran.get("/a.html"), veteran.get("/b.gif")]
    assert all(st is not None for group in states for st in group)
    return fresh.rows(states[0], t0 + 45.0), veteran.rows(states[1], t0 + 45.0)  # type: ignore[arg-type]


def test_rows_without_stream_counts_do_not_depend_on_what_came_long_before() -> None:
    a, b = _rows_after(stream_counts=False)
    differ = {FEATURE_NAMES[j] for j in np.nonzero(~np.isclose(a, b, atol=1e-6).all(axis=0))[0]}
    assert differ == set(), f"features that count the whole stream: {differ}"
    assert (a[:, COUNT] == 0).all()
    # with the count (the online policy's rows) exactly that one feature differs
    a, b = _rows_after(stream_counts=True)
    assert {FEATURE_NAMES[j] for j in np.nonzero(~np.isclose(a, b, atol=1e-6).all(axis=0))[0]} == \
        {"log_distinct_objects"}


def _trace(n: int = 1_500, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    t = 1_000.0
    reqs = []
    for i in range(n):
        t += rng.expovariate(1.0)
        path = f"/hot/p{rng.randrange(30)}.html" if rng.random() < 0.6 else f"/cold/x{i}.gif"
        reqs.append(Request(t, f"c{rng.randrange(20)}", path, size=1_000 + rng.randrange(5_000)))
    return trace_from_requests(reqs)


def test_offline_model_is_trained_and_served_without_the_count(tmp_path: Path) -> None:
    """build_dataset's rows, the manifest, and the LearnedPolicy (and advisor) that load the model agree:
    no stream count. A model without the manifest field (trained before the fix) keeps its rows as trained."""
    trace = _trace()
    data = build_dataset(trace, 0, len(trace), horizon=60.0)
    assert not data.stream_counts and len(data.X_access) > 100
    assert (data.X_access[:, COUNT] == 0).all() and (data.X_delayed[:, COUNT] == 0).all()
    with_count = build_dataset(trace, 0, len(trace), horizon=60.0, tracker=FeatureTracker())
    assert with_count.stream_counts and with_count.X_access[:, COUNT].max() > 5.0

    train(data, tmp_path, TrainConfig(n_estimators=5))
    model = OptimizerModel.load(tmp_path)
    assert model.manifest["stream_counts"] is False and model.stream_counts is False
    policy = LearnedPolicy(model, ManualClock(0.0))
    assert policy.tracker.stream_counts is False
    # the same directory as a model trained before the fix wrote it (no field): rows as it was trained
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["stream_counts"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    legacy = OptimizerModel.load(tmp_path)
    assert legacy.stream_counts is True and LearnedPolicy(legacy, ManualClock(0.0)).tracker.stream_counts is True


def test_online_policy_keeps_the_count() -> None:
    policy = OnlineLearnedPolicy(ManualClock(0.0), OnlineConfig())
    assert policy.tracker.stream_counts is True
