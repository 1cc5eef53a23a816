"""Online accuracy: scored against the next page, expiring with the session, bounded in memory."""

from __future__ import annotations

import tracemalloc

import pytest

from precache.monitoring.accuracy import OnlineAccuracyTracker
from precache.monitoring.monitor import Monitor
from precache.monitoring.summary import quantile_from_buckets, snap_duration, summarize


def test_a_prediction_is_scored_against_the_next_page_at_1_and_5() -> None:
    t = OnlineAccuracyTracker(session_gap=100)
    t.on_prediction("s", ["/a", "/b", "/c"], "v1", now=0)
    assert t.on_page("s", "/b", now=1) is True
    t.on_prediction("s", ["/a", "/b"], "v1", now=2)
    assert t.on_page("s", "/a", now=3) is True
    t.on_prediction("s", ["/a"], "v2", now=4)
    assert t.on_page("s", "/z", now=5) is False
    assert t.on_page("s", "/z", now=6) is None  # nothing pending any more
    v1, v2 = t.by_version["v1"], t.by_version["v2"]
    assert (v1.scored, v1.hit1, v1.hit5) == (2, 1, 2)
    assert (v2.scored, v2.hit1, v2.hit5) == (1, 0, 0)


def test_a_prediction_expires_with_the_session_and_is_not_a_miss() -> None:
    t = OnlineAccuracyTracker(session_gap=10)
    t.on_prediction("s", ["/a"], "v1", now=0)
    assert t.on_page("s", "/a", now=11) is None
    t.on_prediction("old", ["/a"], "v1", now=20)
    t.on_prediction("new", ["/a"], "v1", now=40)  # "old" expired at 30: dropped on the way
    assert len(t) == 1 and t.expired == 2 and t.totals().scored == 0


def test_versions_beyond_the_bound_are_pooled() -> None:
    t = OnlineAccuracyTracker(max_versions=2)
    for i in range(5):
        t.on_prediction(f"s{i}", ["/a"], f"v{i}", now=0)
        t.on_page(f"s{i}", "/a", now=1)
    assert set(t.by_version) == {"v0", "other"} and t.totals().scored == 5


@pytest.mark.slow
def test_sessions_past_the_cap_stay_within_the_memory_bound() -> None:
    """500k sessions (5x the cap), each served a prediction and never seen again: memory stays under the
    stated bound (max_sessions=100k pending, ~25 MB), because the oldest pending predictions are evicted.
    Past the cap the live memory does not grow at all (checked between 200k and 500k sessions), and the peak,
    which includes the pending table's periodic resizes (one falls between 300k and 500k), stays under
    40 MiB. (It drove 1M sessions before: twice the run time under tracemalloc for the same two facts.)"""
    t = OnlineAccuracyTracker(session_gap=1e9, max_sessions=100_000)
    top = ("/a", "/b", "/c", "/d", "/e")
    tracemalloc.start()
    live: dict[int, int] = {}
    for i in range(500_000):
        t.on_prediction(f"session-{i}", top, "v1", now=float(i))
        if i + 1 in (200_000, 500_000):
            live[i + 1] = tracemalloc.get_traced_memory()[0]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(t) == 100_000 and t.evicted == 400_000
    assert live[500_000] <= live[200_000] * 1.01, live
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_summary_windows_rates_trends_and_quantiles() -> None:
    now = [1000.0]
    m = Monitor(clock=lambda: now[0])
    for _ in range(10):
        m.record_prediction(0.001, session_id="s", pages=["/a"], model_version="v1")
        m.record_page_view("s", "/a")
    m.sample()
    now[0] += 61  # a minute later, worse accuracy
    for _ in range(10):
        m.record_prediction(0.02, session_id="s", pages=["/a"], model_version="v1")
        m.record_page_view("s", "/b")
    summary = summarize(m.snapshot(), duration_ms=50_000)
    assert summary["window"]["durationMs"] == 60_000
    assert summary["accuracy"] == 0.0 and summary["trends"]["accuracy"] == "down"
    assert summary["avgLatency"] == pytest.approx(20.0)
    assert 10.0 < summary["p95Latency"] <= 25.0
    assert summary["cacheHitRate"] is None  # no cache attached: no data, not 0
    hour = summarize(m.snapshot(), duration_ms=3_000_000)
    assert hour["accuracy"] == pytest.approx(0.5) and hour["window"]["durationMs"] == 3_600_000
    assert snap_duration(20 * 3_600_000) == "86400"
    with pytest.raises(ValueError):
        snap_duration(0)
    assert quantile_from_buckets(0.5, [0, 10, 0], bounds=[1.0, 2.0]) == pytest.approx(1.5)
    assert quantile_from_buckets(0.5, [0, 0, 0], bounds=[1.0, 2.0]) is None
