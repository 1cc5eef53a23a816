"""Issue 26: the learned policy trained online on a sliding window (LRB-style), kept cheap (~5 s)."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("lightgbm")

from precache.cache.clock import ManualClock
from precache.cache.policy import EntryInfo, EvictionPolicy, LRUPolicy
from precache.models.optimizer.online import OnlineConfig, OnlineLearnedPolicy


def _requests(n: int, seed: int) -> list[tuple[float, str]]:
    """A hot set of 40 keys (60% of requests) mixed with one-hit wonders (a scan)."""
    rng = random.Random(seed)
    return [(float(i), f"hot{rng.randrange(40)}" if rng.random() < 0.6 else f"once{i}") for i in range(n)]


def _run(policy: EvictionPolicy, reqs: list[tuple[float, str]], clock: ManualClock, capacity: int = 50,
         start: int = 0) -> tuple[float, list[str]]:
    """Unit-size objects; the miss ratio over ``[start, n)`` and every victim in order."""
    resident: dict[str, EntryInfo] = {}
    misses = 0
    victims: list[str] = []
    for i, (t, key) in enumerate(reqs):
        clock.set(t)
        e = resident.get(key)
        if e is not None:
            policy.on_hit(e)
            continue
        misses += i >= start
        info = EntryInfo(key=key, size=1, inserted_at=t)
        if not policy.admit(info):
            continue
        while len(resident) + 1 > capacity:
            v = policy.victim()
            assert v is not None
            resident.pop(v)
            victims.append(v)
        resident[key] = info
        policy.on_insert(info)
    return misses / (len(reqs) - start), victims


CFG = OnlineConfig(window=2000, batch=1024, max_rows=4096, sample_rate=0.5)


def test_online_policy_learns_to_keep_the_hot_set_and_beats_lru() -> None:
    reqs = _requests(8000, seed=1)
    clock = ManualClock(0.0)
    learned = OnlineLearnedPolicy(clock, CFG)
    lm, _ = _run(learned, reqs, clock, start=4000)
    lru, _ = _run(LRUPolicy(), reqs, ManualClock(0.0), start=4000)
    assert learned.retrains >= 2 and learned.rows_scored > 0
    assert lm < lru - 0.05  # one-hit wonders are predicted far away and go first


def test_decisions_never_depend_on_requests_not_yet_served() -> None:
    """Labels come from the window's own past: two traces with the same prefix give the same victims
    while serving that prefix, whatever follows."""
    a, b = _requests(5000, seed=2), _requests(5000, seed=3)
    prefix = a[:4000]
    clock_a, clock_b, clock_p = ManualClock(0.0), ManualClock(0.0), ManualClock(0.0)
    pa, pb, pp = OnlineLearnedPolicy(clock_a, CFG), OnlineLearnedPolicy(clock_b, CFG), OnlineLearnedPolicy(clock_p, CFG)
    va = _run(pa, prefix + a[4000:], clock_a)[1]
    vb = _run(pb, prefix + b[4000:], clock_b)[1]
    n_prefix = len(_run(pp, prefix, clock_p)[1])
    assert pp.retrains >= 1 and n_prefix > 100 and va[:n_prefix] == vb[:n_prefix]


def test_hints_set_the_predictor_feature_and_bad_configs_are_refused() -> None:
    clock = ManualClock(0.0)
    pol = OnlineLearnedPolicy(clock, CFG)
    pol.admit(EntryInfo(key="/a", size=10))
    pol.hint("/a", 0.7)
    state = pol.tracker.get("/a")
    assert state is not None and state.predictor_prob == pytest.approx(0.7)
    with pytest.raises(ValueError):
        OnlineConfig(objective="hits")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        OnlineConfig(window=1000, batch=10)
