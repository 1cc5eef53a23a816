"""S3-FIFO follows libCacheSim's reference S3FIFO.c on tiny traces (the rules its docstring lists)."""

from __future__ import annotations

from policy_replay import replay_hits
from precache.cache.policy import EntryInfo, S3FIFOPolicy


def test_one_read_in_small_is_not_enough_to_reach_main() -> None:
    # capacity 200: small 20 bytes (two 10-byte objects), main 180; "a" enters small once m0 is evicted.
    # Read once while in small: with libCacheSim's threshold 2 it goes to the ghost, not to main (the old
    # rule promoted it).
    fill = [(f"m{i}", 10) for i in range(20)]  # full; m0, m1 in small (the rest went to main before any eviction)
    trace = [*fill, ("a", 10), ("a", 10), ("x", 10), ("y", 10)]
    pol = S3FIFOPolicy(capacity_bytes=200)
    _, resident = replay_hits(pol, trace, 200)
    assert "a" not in resident
    # read twice while in small: promoted to main, survives the next insertion
    # (and the victim is then still sought in small: "x" goes, not main's oldest, m2)
    pol2 = S3FIFOPolicy(capacity_bytes=200)
    _, resident2 = replay_hits(pol2, [*fill, ("b", 10), ("b", 10), ("b", 10), ("x", 10), ("y", 10)], 200)
    assert "b" in resident2 and "m2" in resident2 and "x" not in resident2


def test_a_ghost_hit_goes_to_main_and_the_ghost_is_bounded_in_bytes() -> None:
    fill = [(f"m{i}", 10) for i in range(20)]  # full; m0, m1 in small (the rest went to main before any eviction)
    pol = S3FIFOPolicy(capacity_bytes=200)
    # "g" leaves small unread (to the ghost), comes back: straight to main, and outlives new small keys
    _, resident = replay_hits(pol, [*fill, ("g", 10), ("x", 10), ("y", 10), ("g", 10), ("z", 10), ("w", 10)], 200)
    assert "g" in resident and "m2" not in resident
    # ghost bytes never exceed 90% of the capacity, whatever the churn
    churn = S3FIFOPolicy(capacity_bytes=200)
    replay_hits(churn, [(f"s{i}", 10) for i in range(200)], 200)
    assert 0 < sum(churn._ghost.values()) <= 180


def test_objects_as_large_as_the_small_queue_are_not_admitted() -> None:
    pol = S3FIFOPolicy(capacity_bytes=100)
    assert not pol.admit(EntryInfo(key="big", size=10))
    assert pol.admit(EntryInfo(key="ok", size=9))
    assert S3FIFOPolicy().admit(EntryInfo(key="big", size=10**9))  # no capacity (the tier): admit all


def test_before_the_first_eviction_a_full_small_queue_sends_new_keys_to_main() -> None:
    pol = S3FIFOPolicy(capacity_bytes=100)
    replay_hits(pol, [("a", 5), ("b", 5), ("c", 5)], 100)
    assert pol._small_bytes == 10 and pol._main_bytes == 5


def test_without_a_capacity_the_tier_keeps_its_former_rules() -> None:
    # the memory tier passes no capacity: one read in small promotes, the ghost is bounded in keys
    pol = S3FIFOPolicy(ghost_items=3)
    assert pol.threshold == 1 and S3FIFOPolicy(capacity_bytes=200).threshold == 2
    fill = [(f"m{i}", 10) for i in range(20)]
    _, resident = replay_hits(pol, [*fill, ("a", 10), ("a", 10), ("x", 10), ("y", 10)], 200)
    assert "a" in resident
    churn = S3FIFOPolicy(ghost_items=3)
    replay_hits(churn, [(f"s{i}", 10) for i in range(100)], 200)
    assert len(churn._ghost) == 3
