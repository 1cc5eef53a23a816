"""The online switcher, its shadow caches and its heuristic candidates, on tiny traces."""

from __future__ import annotations

import random

from policy_replay import replay_hits
from precache.cache.memory import MemoryTier
from precache.cache.policy import EntryInfo, EvictionPolicy, LRUPolicy, S3FIFOPolicy
from precache.models.optimizer.heuristics import DoorkeeperPolicy, GDSFPolicy, SievePolicy
from precache.models.optimizer.shadow import ShadowCache
from precache.models.optimizer.switcher import CHECK_EVERY, HALF_LIFE, MARGIN, SwitchingPolicy


def replay(policy: EvictionPolicy, trace: list[tuple[str, int]], capacity: int, start: int = 0) -> float:
    """Byte miss ratio of ``trace[start:]`` through a byte-capacity cache (evict, then insert)."""
    hits, _ = replay_hits(policy, trace, capacity)
    measured = list(zip(trace[start:], hits[start:], strict=True))
    missed = sum(size for (_, size), hit in measured if not hit)
    return missed / max(sum(size for (_, size), _ in measured), 1)


def test_constants_are_the_documented_ones() -> None:
    assert (HALF_LIFE, CHECK_EVERY, MARGIN) == (2048.0, 256, 0.005)


def test_sieve_keeps_a_visited_entry_and_evicts_the_first_unvisited() -> None:
    pol = SievePolicy()
    # capacity 3: a, b, c; "a" is read; "d" evicts b (a's bit is cleared, a stays); "e" evicts c
    replay(pol, [("a", 1), ("b", 1), ("c", 1), ("a", 1), ("d", 1), ("e", 1)], 3)
    assert len(pol) == 3
    # the hand stays where it stopped (past c): d, then e, then it wraps to a, whose bit it cleared
    assert [pol.victim(), pol.victim(), pol.victim()] == ["d", "e", "a"]


def test_gdsf_evicts_the_lowest_frequency_per_byte() -> None:
    pol = GDSFPolicy()
    replay(pol, [("big", 10), ("small", 1), ("small", 1)], 20)
    assert pol.victim() == "big"


def test_gdsf_refuses_a_miss_it_would_evict_first_and_ages() -> None:
    """libCacheSim's GDSF inserts, then evicts the lowest priority: a large object read once, whose
    priority is below every resident it would displace, is the one evicted (and L rises to it)."""
    pol = GDSFPolicy(capacity_bytes=100)
    hot = [(f"h{i}", 10) for i in range(9)]
    replay_hits(pol, hot + hot, 100)  # nine hot objects of 10 bytes, each read twice: priority 2/10
    assert not pol.admit(EntryInfo(key="big", size=50))  # priority 1/50: it would go before them
    assert pol.victim() in {k for k, _ in hot} and abs(pol.age - 2 / 10) < 1e-12
    free = GDSFPolicy(capacity_bytes=100)
    replay_hits(free, hot, 100)
    assert free.admit(EntryInfo(key="small", size=10))  # it fits: nothing to displace
    assert GDSFPolicy().admit(EntryInfo(key="big", size=50))  # no capacity: no rule


def test_gdsf_is_at_parity_with_libcachesim() -> None:
    import libcachesim as lcs

    for seed in range(3):
        rng = random.Random(seed)
        sizes: dict[int, int] = {}
        keys = [int(rng.paretovariate(0.8)) % 2000 for _ in range(20_000)]
        trace = [(f"k{k}", sizes.setdefault(k, int(rng.lognormvariate(6, 1.5)) + 1)) for k in keys]
        total = sum(size for _, size in trace)
        for cap in (20_000, 200_000):
            cache = lcs.GDSF(cache_size=cap)
            theirs = [cache.get(lcs.Request(obj_size=size, obj_id=k + 1))
                      for k, (_, size) in zip(keys, trace, strict=True)]
            ours, _ = replay_hits(GDSFPolicy(capacity_bytes=cap), trace, cap)
            missed = [sum(size for (_, size), hit in zip(trace, hits, strict=True) if not hit) / total
                      for hits in (theirs, ours)]
            assert abs(missed[0] - missed[1]) < 0.003
            assert sum(a != b for a, b in zip(theirs, ours, strict=True)) < 0.01 * len(trace)


def test_doorkeeper_admits_on_the_second_miss() -> None:
    door = DoorkeeperPolicy(LRUPolicy(), generation=2)
    info = EntryInfo(key="k", size=1)
    assert not door.admit(info)
    assert door.admit(info)
    # two generations of 2 keys later, "k" is forgotten
    for key in ("x", "y", "z", "w"):
        door.admit(EntryInfo(key=key, size=1))
    assert not door.admit(info)


def test_a_shadow_is_exactly_its_policy_alone() -> None:
    rng = random.Random(1)
    trace = [(f"k{int(rng.paretovariate(1.0)) % 300}", 1 + rng.randrange(50)) for _ in range(3000)]
    shadow = ShadowCache(S3FIFOPolicy(capacity_bytes=500), 500, decay=1.0)
    shadow_hits = [shadow.request(key, size) for key, size in trace]
    hits, resident = replay_hits(S3FIFOPolicy(capacity_bytes=500), trace, 500)
    assert set(shadow.resident) == resident and shadow.used <= 500
    assert abs(shadow.byte_miss_ratio() - replay(S3FIFOPolicy(capacity_bytes=500), trace, 500)) < 1e-12
    assert shadow_hits == hits


def scan_then_hot(n: int, seed: int) -> list[tuple[str, int]]:
    """A hot set re-read often, interleaved with a stream of one-hit wonders (a doorkeeper's workload)."""
    rng = random.Random(seed)
    out: list[tuple[str, int]] = []
    for i in range(n):
        if rng.random() < 0.5:
            out.append((f"hot{rng.randrange(400)}", 10))
        else:
            out.append((f"once{i}", 10))
    return out


def test_the_switcher_follows_a_doorkeeper_workload_and_stays_close_to_the_best_candidate() -> None:
    trace = scan_then_hot(40_000, 3)
    cap = 3000  # 300 objects: the hot set does not fit beside the one-hit wonders without admission
    sw = SwitchingPolicy(capacity_bytes=cap)
    got = replay(sw, trace, cap, start=20_000)
    best = min(replay(make(cap), trace, cap, start=20_000) for make in sw.factories.values())
    s3 = replay(S3FIFOPolicy(capacity_bytes=cap), trace, cap, start=20_000)
    assert sw.switches and sw.current.endswith("+door")
    assert got < s3 - 0.02  # it stepped aside from S3-FIFO
    assert got < best + 0.005  # and a switch rebuilds nothing: it is as good as the best candidate


def test_a_switcher_that_never_switches_is_its_first_candidate() -> None:
    trace = scan_then_hot(12_000, 5)
    same = {"a": lambda cap: S3FIFOPolicy(capacity_bytes=cap), "b": lambda cap: S3FIFOPolicy(capacity_bytes=cap)}
    sw = SwitchingPolicy(capacity_bytes=2000, factories=same)
    assert replay_hits(sw, trace, 2000) == replay_hits(S3FIFOPolicy(capacity_bytes=2000), trace, 2000)
    assert sw.switches == []


def test_after_a_switch_the_cache_holds_only_what_the_new_candidate_holds() -> None:
    """A switch hands the cache to a warm shadow: the keys it does not hold go first, and from then on the
    real contents are the running shadow's, less what has not been requested since the switch."""
    sw = SwitchingPolicy(capacity_bytes=3000)

    def checkpoint(i: int, resident: dict[str, EntryInfo]) -> None:
        if i % 1000 != 999:
            return
        extras = set(resident) - set(sw.shadows[sw.current].resident)
        assert sw.used <= 3000 and set(sw.resident) == set(resident)
        recent = [n for n, _ in sw.switches if n > i + 1 - 3000]
        assert not extras or recent  # what the new candidate does not hold leaves within ~3,000 requests

    replay_hits(sw, scan_then_hot(30_000, 9), 3000, after=checkpoint)
    assert len(sw.switches) >= 2


def test_decisions_use_only_the_past() -> None:
    # test-then-learn: the switches made on a prefix are exactly those made on the whole trace up to it
    whole, prefix = SwitchingPolicy(capacity_bytes=2000), SwitchingPolicy(capacity_bytes=2000)
    replay(whole, scan_then_hot(30_000, 7), 2000)
    replay(prefix, scan_then_hot(30_000, 7)[:15_000], 2000)
    assert whole.switches[: len(prefix.switches)] == prefix.switches


def test_without_a_capacity_it_learns_the_tier_budget() -> None:
    sw = SwitchingPolicy()
    replay(sw, scan_then_hot(5000, 11), 2500)
    assert 2400 <= sw.capacity <= 2510  # the budget, or one object above it


def test_in_the_memory_tier_it_keeps_the_budgets_and_the_fills_from_l2() -> None:
    """The tier gives its byte budget, stores first and evicts after, stores L2 fills without asking
    admission, and may have an item budget the shadows do not know (the first tier here): the switcher
    keeps its books equal to the tier's through all of it."""
    for max_items in (60, 100_000):
        sw = SwitchingPolicy()
        tier = MemoryTier(max_bytes=20_000, max_items=max_items, policy=sw)
        assert sw.fixed_capacity == 20_000 and sw.capacity == 20_000
        for i, (key, _) in enumerate(scan_then_hot(20_000, 13)):
            if tier.get(key) is None:
                if i % 3:
                    tier.set(key, "v" * 50, 50)
                else:
                    tier.fill_one(key, "v" * 50, 50, None, 0.0)
            assert set(sw.resident) == set(tier.data) and sw.used == tier.bytes
            assert tier.bytes <= 20_000 and len(tier.data) <= max_items
        assert tier.evictions > 0 and sw.switches
