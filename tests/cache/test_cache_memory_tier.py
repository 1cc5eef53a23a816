"""L1 MemoryTier and the eviction policies (no Redis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from precache.cache import EntryInfo, LRUPolicy, ManualClock, MemoryTier, S3FIFOPolicy, make_policy
from precache.cache.memory import ENTRY_OVERHEAD


def test_ttl_follows_injected_clock_and_grace() -> None:
    clock = ManualClock(100.0)
    tier = MemoryTier(max_bytes=10_000, clock=clock)
    tier.set("a", "x", size=1, ttl=10, grace=5)
    assert tier.get("a") == "x"
    clock.advance(10)
    assert tier.get("a") is None  # expired ...
    assert tier.lookup("a") is not None  # ... but still servable stale
    clock.advance(5)
    assert tier.lookup("a") is None
    assert len(tier) == 0 and tier.bytes == 0


def test_item_and_byte_budgets_hold() -> None:
    tier = MemoryTier(max_bytes=10 * (100 + ENTRY_OVERHEAD + 2), max_items=5)
    for i in range(50):
        tier.set(f"k{i}", "v", size=100)
        assert len(tier) <= 5
        assert tier.bytes <= tier.max_bytes
    assert tier.evictions == 45
    assert not tier.set("huge", "v", size=10**6)


def test_s3fifo_keeps_hot_keys_over_a_scan() -> None:
    tier = MemoryTier(max_bytes=10**9, max_items=100, policy=S3FIFOPolicy())
    for i in range(100):
        tier.set(f"hot{i}", i, size=10)
    for _ in range(3):
        for i in range(100):
            assert tier.get(f"hot{i}") == i
    for i in range(1000):  # a one-pass scan of cold keys
        tier.set(f"cold{i}", i, size=10)
    survivors = sum(1 for i in range(100) if f"hot{i}" in tier)
    assert survivors >= 80


def test_lru_evicts_least_recent() -> None:
    tier = MemoryTier(max_bytes=10**9, max_items=2, policy=LRUPolicy())
    tier.set("a", 1, size=1)
    tier.set("b", 2, size=1)
    tier.get("a")
    tier.set("c", 3, size=1)
    assert "a" in tier and "c" in tier and "b" not in tier


def test_policy_admission_and_ttl_are_consulted() -> None:
    class Picky(LRUPolicy):
        def admit(self, info: EntryInfo) -> bool:
            return not info.key.startswith("no")

        def ttl_for(self, info: EntryInfo, default_ttl: float | None) -> float | None:
            return 1.0

    clock = ManualClock()
    tier = MemoryTier(policy=Picky(), clock=clock)
    assert not tier.set("nope", 1, size=1)
    assert tier.set("yes", 1, size=1, ttl=100)
    clock.advance(1.5)
    assert tier.get("yes") is None


def test_tags_and_bad_input() -> None:
    tier = MemoryTier()
    tier.set("a", 1, size=1, tags=("t",))
    tier.set("b", 2, size=1, tags=("t", "u"))
    assert sorted(tier.delete_tag("t")) == ["a", "b"]
    assert tier.keys_for_tag("u") == set()
    with pytest.raises(TypeError, match="keys are str"):
        tier.set(1, 1, size=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MemoryTier(max_bytes=0)
    with pytest.raises(ValueError, match="unknown eviction policy"):
        make_policy("belady")


ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "get", "delete", "advance", "tag", "fill"]),
        st.integers(0, 30),
        st.integers(0, 3000),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, policy=st.sampled_from(["s3fifo", "lru"]), budget=st.integers(200, 20_000))
def test_l1_never_exceeds_byte_budget(ops: list[tuple[str, int, int]], policy: str, budget: int) -> None:
    clock = ManualClock()
    tier = MemoryTier(max_bytes=budget, max_items=20, policy=make_policy(policy), clock=clock)
    for op, k, n in ops:
        key = f"k{k}"
        if op == "set":
            tier.set(key, "x" * n, size=n, ttl=(n % 7) or None, grace=1.0, tags=(f"t{k % 3}",))
        elif op == "get":
            tier.get(key)
        elif op == "delete":
            tier.delete(key)
        elif op == "tag":
            tier.delete_tag(f"t{k % 3}")
        elif op == "fill":  # an L2 batch fill (duplicates and replacements included)
            now = clock.now()
            tier.fill_many([(f"k{(k + j * 7) % 31}", "y", n // (j + 1), now + (n % 5 or 1), 0.0)
                            for j in range(k % 9)] + [(key, "z", n, None, 0.0)], grace=1.0,
                           keep_fresh=bool(n % 2))
        else:
            clock.advance(n / 500)
        assert tier.bytes <= budget
        assert len(tier) <= 20
        assert tier.bytes == sum(e.size for e in tier.data.values())


def test_batch_fill_and_eviction_match_one_at_a_time() -> None:
    """``fill_many`` + ``S3FIFOPolicy.evict`` keep exactly what per-key ``set`` + ``victim`` keep."""
    clock = ManualClock()
    one = MemoryTier(max_bytes=10**9, max_items=50, policy=S3FIFOPolicy(), clock=clock)
    batch = MemoryTier(max_bytes=10**9, max_items=50, policy=S3FIFOPolicy(), clock=clock)
    for lap in range(6):
        for i in range(0, 120, 3):  # hot keys read between batches: some go to the main queue
            for tier in (one, batch):
                tier.get(f"k{i}")
        items: list[tuple[str, object, int, float | None, float]] = [
            (f"k{(lap * 37 + j) % 200}", j, 10 + j % 7, None, 0.0) for j in range(80)
        ]
        for key, value, size, _, _ in items:
            one.set(key, value, size)
        counted = bool(lap % 2)  # skipping the resident count changes nothing but the return value
        resident = batch.fill_many(items, count_resident=counted)
        assert resident == (sum(1 for key in {k for k, *_ in items} if key in batch.data) if counted else 0)
        assert set(one.data) == set(batch.data)
        assert one.bytes == batch.bytes and one.evictions == batch.evictions


def test_fill_many_keeps_a_fresher_entry_when_asked() -> None:
    clock = ManualClock(10.0)
    tier = MemoryTier(clock=clock)
    tier.set("a", "new", size=3, ttl=60)
    assert tier.fill_many([("a", "old", 3, 70.0, 0.0), ("b", "v", 1, 70.0, 0.0)], keep_fresh=True) == 1
    assert tier.get("a") == "new" and tier.get("b") == "v"
    assert tier.fill_many([("a", "old", 3, 70.0, 0.0)]) == 1
    assert tier.get("a") == "old"
