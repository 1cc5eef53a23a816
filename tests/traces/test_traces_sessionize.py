"""Sessionizer properties (hypothesis): order kept, gaps respected, no event lost or duplicated."""

from __future__ import annotations

import itertools
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from precache.traces import Request, Sessionizer

PATHS = ["/a.html", "/b/", "/c.html?x=1", "/img/x.gif", "/s.css", "/d.php"]


@st.composite
def request_streams(draw: st.DrawFn) -> list[Request]:
    n = draw(st.integers(0, 120))
    clients = draw(st.lists(st.sampled_from("abcde"), min_size=n, max_size=n))
    steps = draw(st.lists(st.floats(0, 3000, allow_nan=False), min_size=n, max_size=n))
    paths = draw(st.lists(st.sampled_from(PATHS), min_size=n, max_size=n))
    statuses = draw(st.lists(st.sampled_from([200, 200, 304, 404]), min_size=n, max_size=n))
    moment = 0.0
    out = []
    for client, step, path, status in zip(clients, steps, paths, statuses, strict=True):
        moment += step
        out.append(Request(moment, client, path, "GET", status, 1))
    return out


@settings(max_examples=150, deadline=None)
@given(request_streams(), st.sampled_from([60.0, 900.0, 1800.0]))
def test_sessionizer_properties(requests: list[Request], gap: float) -> None:
    sessionizer = Sessionizer(gap_seconds=gap, keep_empty=True)
    sessions = list(sessionizer(requests))
    stats = sessionizer.stats
    # nothing lost or duplicated: every request is a page, an asset or counted as ignored
    assert stats.requests == len(requests)
    assert stats.pages + stats.assets + stats.ignored == len(requests)
    assert sum(len(s.pages) for s in sessions) == stats.pages
    assert sum(len(s.assets) for s in sessions) == stats.assets
    assert len({s.session_id for s in sessions}) == len(sessions)
    expected_pages = [r for r in requests if sessionizer.page_filter(r)]
    got = sorted((t, s.client, p) for s in sessions for t, p in zip(s.times, s.pages, strict=True))
    assert got == sorted((r.time, r.client, r.path.split("?")[0]) for r in expected_pages)
    # order kept within a session, gaps respected inside and between a client's sessions
    by_client = defaultdict(list)
    for session in sessions:
        events = sorted([*session.times, *(a.time for a in session.assets)])
        assert session.times == sorted(session.times)
        assert session.start == events[0]
        assert all(b - a <= gap for a, b in itertools.pairwise(events))
        by_client[session.client].append((events[0], events[-1]))
    for spans in by_client.values():
        spans.sort()
        assert all(nxt[0] - prev[1] > gap for prev, nxt in itertools.pairwise(spans))


@settings(max_examples=50, deadline=None)
@given(request_streams())
def test_default_drops_only_asset_only_sessions(requests: list[Request]) -> None:
    keep = Sessionizer(keep_empty=True)
    kept = list(keep(requests))
    default = Sessionizer()
    emitted = list(default(requests))
    assert all(session.pages for session in emitted)
    assert len(emitted) + default.stats.dropped_sessions == len(kept)


def test_open_state_is_bounded_by_active_clients() -> None:
    # 10k clients, each visiting once, one every 10 s: with a 60 s gap only ~7 can be open at once.
    requests = [Request(i * 10.0, f"c{i}", "/p.html") for i in range(10_000)]
    sessionizer = Sessionizer(gap_seconds=60.0)
    assert sum(1 for _ in sessionizer(requests)) == 10_000
    assert sessionizer.stats.max_open <= 10


def test_bad_gap() -> None:
    import pytest

    with pytest.raises(ValueError, match="gap_seconds"):
        Sessionizer(gap_seconds=0)
