"""The online switcher, its miniature simulations and its heuristic candidates, on tiny traces."""

from __future__ import annotations

import random

from policy_replay import replay_hits
from precache.cache.policy import EntryInfo, EvictionPolicy, LRUPolicy, S3FIFOPolicy
from precache.models.optimizer.heuristics import DoorkeeperPolicy, GDSFPolicy, SievePolicy
from precache.models.optimizer.minisim import Shards, key_hash
from precache.models.optimizer.switcher import CHECK_EVERY, HALF_LIFE, MARGIN, MAX_KEYS, SwitchingPolicy


def replay(policy: EvictionPolicy, trace: list[tuple[str, int]], capacity: int, start: int = 0) -> float:
    """Byte miss ratio of ``trace[start:]`` through a byte-capacity cache (evict, then insert)."""
    hits, _ = replay_hits(policy, trace, capacity)
    measured = list(zip(trace[start:], hits[start:], strict=True))
    missed = sum(size for (_, size), hit in measured if not hit)
    return missed / max(sum(size for (_, size), _ in measured), 1)


def test_constants_are_the_documented_ones() -> None:
    assert (MAX_KEYS, HALF_LIFE, CHECK_EVERY, MARGIN) == (4096, 2048.0, 256, 0.005)


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


def test_doorkeeper_admits_on_the_second_miss() -> None:
    door = DoorkeeperPolicy(LRUPolicy(), generation=2)
    info = EntryInfo(key="k", size=1)
    assert not door.admit(info)
    assert door.admit(info)
    # two generations of 2 keys later, "k" is forgotten
    for key in ("x", "y", "z", "w"):
        door.admit(EntryInfo(key=key, size=1))
    assert not door.admit(info)


def test_minis_are_exact_while_every_key_is_sampled() -> None:
    rng = random.Random(1)
    trace = [(f"k{int(rng.paretovariate(1.0)) % 300}", 1 + rng.randrange(50)) for _ in range(3000)]
    shards = Shards({"lru": lambda cap: LRUPolicy()}, 500, max_keys=10_000, half_life=1e12)
    for key, size in trace:
        assert shards.observe(key, size)
    assert shards.threshold == 1.0
    assert abs(shards.ratios()["lru"] - replay(LRUPolicy(), trace, 500)) < 1e-9


def test_the_sample_stays_bounded_and_the_minis_shrink_with_it() -> None:
    shards = Shards({"s3": lambda cap: S3FIFOPolicy(capacity_bytes=cap)}, 10_000, max_keys=100, half_life=100.0)
    for i in range(5000):
        shards.observe(f"key-{i % 2000}", 10)
    assert len(shards._keys) <= 100
    assert 0.02 < shards.threshold < 0.1  # about 100 of 2,000 keys
    mini = shards.minis["s3"]
    assert mini.used <= mini.capacity <= 10_000 * shards.threshold + 1e-9
    assert all(key_hash(k) < shards.threshold for k in mini.resident)


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
    assert got < best + 0.02


def test_equal_candidates_never_switch_and_decisions_use_only_the_past() -> None:
    trace = scan_then_hot(12_000, 5)
    same = {"a": lambda cap: S3FIFOPolicy(capacity_bytes=cap), "b": lambda cap: S3FIFOPolicy(capacity_bytes=cap)}
    sw = SwitchingPolicy(capacity_bytes=2000, factories=same)
    replay(sw, trace, 2000)
    assert sw.switches == []
    # test-then-learn: the switches made on a prefix are exactly those made on the whole trace up to it
    whole, prefix = SwitchingPolicy(capacity_bytes=2000), SwitchingPolicy(capacity_bytes=2000)
    replay(whole, scan_then_hot(30_000, 7), 2000)
    replay(prefix, scan_then_hot(30_000, 7)[:15_000], 2000)
    assert whole.switches[: len(prefix.switches)] == prefix.switches


def test_a_switch_keeps_the_cache_contents_and_the_budget() -> None:
    sw = SwitchingPolicy(capacity_bytes=3000)
    replay(sw, scan_then_hot(30_000, 9), 3000)
    assert sw.switches
    inner = getattr(sw.policy, "inner", sw.policy)  # behind a doorkeeper, the eviction policy it wraps
    assert len(inner) == len(sw.resident)
    assert sw.used <= 3000


def test_without_a_capacity_it_learns_the_tier_budget() -> None:
    sw = SwitchingPolicy()
    replay(sw, scan_then_hot(5000, 11), 2500)
    assert 2400 <= sw.shards.capacity <= 2500
