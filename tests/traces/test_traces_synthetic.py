"""The synthetic workload: deterministic, time-ordered, realistic in shape, and learnable."""

from __future__ import annotations

import itertools
import tracemalloc
from collections import Counter

import pytest

from precache.traces import Sessionizer, SyntheticWorkload, is_page
from precache.traces.synthetic import build_site


def test_deterministic_and_exact_count() -> None:
    a = list(SyntheticWorkload(5_000, seed=3).requests())
    b = list(SyntheticWorkload(5_000, seed=3).requests())
    c = list(SyntheticWorkload(5_000, seed=4).requests())
    assert len(a) == 5_000
    assert a == b
    assert a != c
    assert all(x.time <= y.time for x, y in itertools.pairwise(a))


def test_site_structure() -> None:
    site = build_site(500, seed=1)
    assert len(site.pages) == len(set(site.pages)) == 500
    assert abs(sum(site.popularity) - 1.0) < 1e-9
    assert all(abs(sum(site.link_weights[p]) - 1.0) < 1e-9 for p in site.pages)
    assert all(set(site.links[p]) <= set(site.pages) and p not in site.links[p] for p in site.pages)
    assert all(site.sizes[p] > 0 for p in site.pages)
    assert all(site.sizes[a] > 0 for a in site.all_assets)
    # some assets are shared across pages, some are page-specific
    users = Counter(a for assets in site.assets.values() for a in set(assets))
    assert users["/static/site.css"] == 500
    assert any(count == 1 for count in users.values())
    assert any(1 < count < 500 for count in users.values())
    sizes = sorted(site.sizes.values())
    assert sizes[-1] > 20 * sizes[len(sizes) // 2]  # heavy tail


def test_requests_mix_pages_assets_and_sessions_are_recoverable() -> None:
    workload = SyntheticWorkload(30_000, seed=0, n_pages=400)
    requests = list(workload.requests())
    pages = [r for r in requests if is_page(r)]
    assert 0.1 < len(pages) / len(requests) < 0.6
    assert all(r.size == workload.site.sizes[r.path] for r in requests if r.status == 200)
    hours = Counter(int((r.time - workload.start) // 3600) % 24 for r in requests)
    assert max(hours.values()) > 2.5 * min(hours[h] for h in range(24))  # diurnal load
    sessions = list(Sessionizer()(requests))
    assert len(sessions) > 500
    assert 2.0 < sum(len(s) for s in sessions) / len(sessions) < 10.0


def test_learnable_markov_beats_popularity() -> None:
    sessionizer = Sessionizer()
    sessions = sorted(sessionizer(SyntheticWorkload(60_000, seed=5, n_pages=300).requests()),
                      key=lambda s: s.start)
    cut = int(len(sessions) * 0.8)
    train, test = sessions[:cut], sessions[cut:]
    popularity = Counter(p for s in train for p in s.pages)
    top = [p for p, _ in popularity.most_common(5)]
    follow: dict[str, Counter[str]] = {}
    for session in train:
        for a, b in itertools.pairwise(session.pages):
            follow.setdefault(a, Counter())[b] += 1
    hits_pop = hits_markov = total = 0
    for session in test:
        for a, b in itertools.pairwise(session.pages):
            total += 1
            hits_pop += b in top
            ranked = [p for p, _ in follow[a].most_common(5)] if a in follow else top
            hits_markov += b in ranked
    assert total > 1_000
    assert hits_markov / total > hits_pop / total + 0.2


def test_updates_are_time_ordered_and_heterogeneous() -> None:
    workload = SyntheticWorkload(10_000, seed=2, n_pages=300)
    updates = list(workload.updates())
    assert updates == sorted(updates)
    assert all(workload.start <= t <= workload.end for t, _ in updates)
    counts = Counter(path for _, path in updates)
    assert counts["/"] >= 10  # the home page changes about hourly over a day
    assert len(counts) < len(workload.site.pages)  # most pages do not change within a day
    assert updates == list(SyntheticWorkload(10_000, seed=2, n_pages=300).updates())


def test_memory_does_not_grow_with_request_count() -> None:
    def peak(n: int) -> int:
        workload = SyntheticWorkload(n, seed=0, n_pages=300, days=1.0)
        tracemalloc.start()
        try:
            for _ in workload.requests():
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(10_000), peak(80_000)
    assert large < 3 * small + 2_000_000


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        SyntheticWorkload(-1)
    with pytest.raises(ValueError):
        SyntheticWorkload(10, continue_prob=1.0)
    with pytest.raises(ValueError):
        SyntheticWorkload(10, n_pages=1)
