"""Cache optimizer: features, labels, training → ONNX, the learned policy in the MemoryTier."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import pytest

from precache.cache.clock import ManualClock
from precache.cache.config import CacheConfig, StalenessConfig
from precache.cache.memory import MemoryTier
from precache.cache.policy import EntryInfo, EvictionPolicy
from precache.models.optimizer.features import FEATURE_NAMES, N_FEATURES, FeatureTracker, static_features
from precache.models.optimizer.labels import (
    CacheTrace,
    build_dataset,
    next_access_index,
    trace_from_requests,
)
from precache.models.optimizer.model import ModelIntegrityError, OptimizerModel, decision_metrics, roc_auc
from precache.models.optimizer.policy import LearnedPolicy
from precache.models.optimizer.train import TrainConfig, train
from precache.traces.model import Request


def _workload(n: int = 6000, seed: int = 0) -> tuple[list[Request], list[tuple[float, str]]]:
    """Hot keys re-read every few seconds, a long tail of one-hit wonders, hot keys updated often."""
    rng = random.Random(seed)
    reqs: list[Request] = []
    updates: list[tuple[float, str]] = []
    t = 1_000_000.0
    for i in range(n):
        t += rng.expovariate(2.0)
        path = f"/hot/p{rng.randrange(40)}.html" if rng.random() < 0.6 else f"/cold/x{i}.gif"
        reqs.append(Request(time=t, client=f"c{rng.randrange(50)}", path=path, size=1000 + rng.randrange(500)))
        if rng.random() < 0.01:
            updates.append((t, f"/hot/p{rng.randrange(10)}.html"))
    return reqs, sorted(updates)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    reqs, updates = _workload()
    trace = trace_from_requests(reqs, updates=updates)
    split = len(trace) // 2
    d_train = build_dataset(trace, 0, split, horizon=60.0)
    d_test = build_dataset(trace, split, len(trace), horizon=60.0)
    out = tmp_path_factory.mktemp("opt")
    train(d_train, out, TrainConfig(n_estimators=30))
    return out, d_test, trace


def test_optimizer_features_are_online_and_fixed_length() -> None:
    assert N_FEATURES == len(FEATURE_NAMES) >= 45
    tr = FeatureTracker()
    for i in range(40):
        tr.observe("/a/b/c.gif", 10.0 * i, size=500, client=f"c{i % 3}")
    row = tr.features("/a/b/c.gif", 400.0)
    assert row is not None and row.shape == (N_FEATURES,) and row.dtype == np.float32
    named = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
    assert named["size"] == 500
    assert named["log_distinct_clients"] == pytest.approx(math.log1p(3))
    assert named["log_time_since_last"] == pytest.approx(math.log1p(10.0))
    assert named["log_gap_0"] == pytest.approx(math.log1p(10.0))  # ring of 16 gaps, all 10 s
    assert named["log_count"] == pytest.approx(math.log1p(40))
    assert static_features("/a/b/c.gif")[:2] == (2, 3)  # image, depth 3
    assert tr.features("/never", 1.0) is None
    # bounded memory
    small = FeatureTracker(max_objects=10)
    for i in range(100):
        small.observe(f"/k{i}", float(i))
    assert len(small) == 10


def test_optimizer_labels_from_the_future() -> None:
    assert next_access_index(["a", "b", "a", "c", "b"]).tolist() == [2, 4, -1, -1, -1]
    reqs = [Request(time=float(t), client="c", path=p, size=s) for t, p, s in [
        (0, "/x", 1000), (10, "/x", 1000), (20, "/x", 90), (30, "/x", 1000), (40, "/x", 1200), (50, "/y", 5)]]
    trace = trace_from_requests(reqs)
    # the 90-byte response is an aborted transfer, not a change; 1000 → 1200 is one change at t=40
    assert trace.change_signal == "size-change"
    assert trace.versions.tolist() == [0, 0, 0, 0, 1, 0]
    assert trace.sizes.tolist()[:5] == [1200] * 5
    d = build_dataset(trace, 0, len(trace), horizon=5.0)
    assert d.invalidated.tolist() == [0, 0, 0, 1]
    d2 = build_dataset(trace, 0, len(trace), horizon=15.0, delayed_rate=0.0)
    # rows closer than the horizon to the end are dropped; /x at 0..30 is reused within 15 s
    assert d2.should_cache.tolist() == [1, 1, 1, 1]
    assert d2.priority_access[0] == pytest.approx(math.log1p(10.0))
    ups = trace_from_requests(reqs, updates=[(15.0, "/x")])
    assert ups.change_signal == "synthetic-updates" and ups.versions.tolist() == [0, 0, 1, 1, 1, 0]


def test_optimizer_train_exports_onnx_with_checked_manifest(trained: tuple[Path, object, object]) -> None:
    out, d_test, _ = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"should_cache", "priority", "ttl", "invalidation"}
    assert manifest["features"] == list(FEATURE_NAMES)
    assert not list(out.glob("*.pkl")) and not list(out.glob("*.pickle"))
    model = OptimizerModel.load(out)
    m = decision_metrics(model, d_test)  # type: ignore[arg-type]
    sc = m["should_cache"]
    assert sc["auc"] > 0.85 and sc["accuracy"] > sc["majority_baseline_accuracy"]
    assert m["priority"]["mae_log1p_s"] < m["priority"]["baseline_mae_log1p_s (predict the median)"]
    assert m["invalidation"]["auc"] > 0.6
    # the merged graph gives the same numbers as each exported single-output file
    import onnxruntime as ort

    X = d_test.X_access[:50]  # type: ignore[attr-defined]
    p = model.predict(X)
    assert p.should_cache.shape == (50,) and np.all((p.should_cache >= 0) & (p.should_cache <= 1))
    for name, got in (("should_cache", p.should_cache), ("priority", p.priority), ("ttl", p.ttl)):
        single = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(single.run(["y"], {"input": X})[0], got, rtol=1e-5, atol=1e-6)
    # tampering is detected
    data = bytearray((out / "optimizer.onnx").read_bytes())
    (out / "tampered").mkdir()
    (out / "tampered" / "manifest.json").write_text((out / "manifest.json").read_text())
    data[-1] ^= 0xFF
    (out / "tampered" / "optimizer.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        OptimizerModel.load(out / "tampered")


def test_optimizer_roc_auc() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_optimizer_policy_in_memory_tier(trained: tuple[Path, object, object]) -> None:
    out, _, trace = trained
    model = OptimizerModel.load(out)
    clock = ManualClock(0.0)
    policy = LearnedPolicy(model, clock, batch_size=16, sample_size=16, evict_batch=4, min_ttl=5.0, max_ttl=600.0)
    assert isinstance(policy, EvictionPolicy)
    tier = MemoryTier(max_bytes=20_000, max_items=1000, policy=policy, clock=clock)
    hits = 0
    keys = trace.keys  # type: ignore[attr-defined]
    times = trace.times  # type: ignore[attr-defined]
    for k, t in zip(keys[:3000], times[:3000].tolist(), strict=True):
        clock.set(t)
        if tier.get(k) is not None:
            hits += 1
        else:
            tier.set(k, b"x" * 1000, size=1000)
        assert tier.bytes <= 20_000
        assert len(policy) == len(tier)
    assert hits > 300 and policy.inference_calls > 0
    # a learned TTL exists for a scored key and respects the bounds
    ttls = [policy.predicted_ttl(k) for k in set(keys[:3000])]
    known = [x for x in ttls if x is not None]
    assert known and all(5.0 <= x <= 600.0 for x in known)
    assert tier.data and all(e.expires_at is None or e.expires_at - e.inserted_at <= 600.0
                             for e in tier.data.values())


def test_optimizer_policy_beats_lru_and_is_cheap(trained: tuple[Path, object, object]) -> None:
    """One-hit wonders pollute LRU; the learned policy rejects/evicts them first."""
    from precache.cache.policy import LRUPolicy

    out, _, trace = trained
    model = OptimizerModel.load(out)

    def run(policy: EvictionPolicy, clock: ManualClock | None) -> tuple[float, float]:
        resident: dict[str, EntryInfo] = {}
        used = misses = 0
        split = len(trace) // 2  # type: ignore[arg-type]
        keys = trace.keys  # type: ignore[attr-defined]
        times = trace.times.tolist()  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for i in range(split, len(keys)):
            if clock is not None:
                clock.set(times[i])
            e = resident.get(keys[i])
            if e is not None:
                policy.on_hit(e)
                continue
            misses += 1
            info = EntryInfo(key=keys[i], size=1000, inserted_at=times[i])
            policy.ttl_for(info, None)
            if not policy.admit(info):
                continue
            resident[keys[i]] = info
            used += 1000
            policy.on_insert(info)
            while used > 20_000:
                v = policy.victim()
                assert v is not None
                used -= resident.pop(v).size
        return misses / (len(keys) - split), (time.perf_counter() - t0) / (len(keys) - split)

    clock = ManualClock(0.0)
    learned_mr, per_req = run(LearnedPolicy(model, clock), clock)
    lru_mr, _ = run(LRUPolicy(), None)
    assert learned_mr < lru_mr - 0.05
    assert per_req < 500e-6  # generous bound for a loaded 2-core box; the bench measures the real rate


def test_optimizer_policy_queues_stale_keys(trained: tuple[Path, object, object]) -> None:
    out, _, _ = trained
    clock = ManualClock(0.0)
    pol = LearnedPolicy(OptimizerModel.load(out), clock, batch_size=2, invalidation_threshold=0.0)
    for i, k in enumerate(["/hot/p1.html", "/hot/p2.html"]):
        clock.set(float(i))
        info = EntryInfo(key=k, size=10, inserted_at=float(i))
        pol.ttl_for(info, None)
        pol.admit(info)
        pol.on_insert(info)
    pol.admission = "none"
    assert pol.inference_calls == 1
    assert set(pol.drain_revalidations()) <= {"/hot/p1.html", "/hot/p2.html"}
    pol.on_remove("/hot/p1.html")
    assert len(pol) == 1 and pol.victim() == "/hot/p2.html" and pol.victim() is None


def test_optimizer_vectorised_rows_match_row_list() -> None:
    """The policy's batch path (FeatureTracker.rows) gives exactly the training rows (row_list)."""
    rng = random.Random(3)
    tr = FeatureTracker()
    t = 1_000.0
    for i in range(3000):
        t += rng.expovariate(0.5)
        key = f"/d{rng.randrange(5)}/k{int(rng.paretovariate(1.2)) % 200}.{rng.choice(['gif', 'html', 'js'])}"
        tr.observe(key, t, size=rng.randrange(1, 50_000), client=f"c{rng.randrange(30)}",
                   latency=0.02 if i % 5 == 0 else None, predictor_prob=0.3 if i % 11 == 0 else None)
        if i % 37 == 0:
            tr.observe_update(key, t)
    states = list(tr.objects.values())
    assert len(states) > 100
    for now in (t, t + 5.0, t + 50_000.0):
        expected = np.asarray([tr.row_list(st, now) for st in states], dtype=np.float32)
        np.testing.assert_allclose(tr.rows(states, now), expected, rtol=1e-6, atol=1e-6)
        for m in (0, 1, 15, 16):  # the small-batch path and the vectorised one agree too
            np.testing.assert_allclose(tr.rows(states[:m], now), expected[:m], rtol=1e-6, atol=1e-6)
            assert tr.rows(states[:m], now).shape == (m, N_FEATURES)


def test_optimizer_priority_only_session_matches(trained: tuple[Path, object, object]) -> None:
    out, d_test, _ = trained
    model = OptimizerModel.load(out)
    X = d_test.X_access[:40]  # type: ignore[attr-defined]
    np.testing.assert_allclose(model.predict_priority(X), model.predict(X).priority, rtol=1e-5, atol=1e-6)
    assert model.predict_priority(X[:0]).shape == (0,)


def test_optimizer_policy_reuses_scores_and_small_cache_sees_new_entries(
        trained: tuple[Path, object, object]) -> None:
    out, _, trace = trained
    model = OptimizerModel.load(out)
    keys = trace.keys  # type: ignore[attr-defined]
    times = trace.times.tolist()  # type: ignore[attr-defined]

    def run(cap_items: int, **kw: object) -> LearnedPolicy:
        clock = ManualClock(0.0)
        pol = LearnedPolicy(model, clock, **kw)  # type: ignore[arg-type]
        resident: set[str] = set()
        for k, t in zip(keys[:3000], times[:3000], strict=True):
            clock.set(t)
            info = EntryInfo(key=k, size=1, inserted_at=t)
            if k in resident:
                pol.on_hit(info)
                continue
            pol.ttl_for(info, None)
            if not pol.admit(info):
                continue
            resident.add(k)
            pol.on_insert(info)
            while len(resident) > cap_items:
                v = pol.victim()
                assert v is not None and v in resident
                resident.discard(v)
            assert len(pol) == len(resident)
        return pol

    pol = run(100, admission="none")  # no reject queue: every eviction samples
    assert pol.rows_reused > 0  # fresh cached scores were not recomputed
    assert pol.rows_scored < 3000 * 2
    # always re-scoring (max_staleness=0) scores more rows
    assert run(100, admission="none", max_staleness=0.0).rows_scored > pol.rows_scored
    # a tiny cache: every eviction looks at all residents (no stale queue of victims)
    tiny = run(4)
    assert tiny.rows_scored > 0 and len(tiny) <= 4
    assert not tiny._victims  # one victim chosen per look at the 4 residents, none queued stale
    # the probationary FIFO (S3-FIFO's small queue) in front of the sampled main area
    prob = run(100, probation=0.1, admission="none", probation_model=False)
    nodes = prob._nodes
    assert prob._bytes == len(nodes) == 100
    assert prob._prob_bytes == sum(nd.size for nd in nodes.values() if nd.prob) > 0
    assert len(prob._keys) == sum(1 for nd in nodes.values() if not nd.prob)
    assert all(prob._keys[nd.idx] == k for k, nd in nodes.items() if not nd.prob)
    assert prob._ghost  # one-hit wonders left through probation
    again = next(iter(nodes))  # a replace without on_remove keeps the index consistent
    prob.on_insert(EntryInfo(key=again, size=1))
    assert len(prob) == 100 and prob._bytes == 100
    assert all(prob._keys[nd.idx] == k for k, nd in nodes.items() if not nd.prob)
    some = next(k for k, nd in nodes.items() if nd.prob)
    prob.on_remove(some)
    assert prob._prob_bytes == sum(nd.size for nd in nodes.values() if nd.prob)
    with pytest.raises(ValueError):
        LearnedPolicy(model, ManualClock(0.0), max_staleness=-1.0)


def test_optimizer_policy_reads_never_run_the_model(trained: tuple[Path, object, object]) -> None:
    out, _, _ = trained
    clock = ManualClock(10.0)
    pol = LearnedPolicy(OptimizerModel.load(out), clock, batch_size=1, hit_rescore_every=1)
    a = EntryInfo(key="/hot/p1.html", size=10, inserted_at=10.0)
    pol.ttl_for(a, None)
    pol.on_insert(a)
    assert pol.inference_calls == 1
    for i in range(5):
        clock.set(11.0 + i)
        pol.on_hit(a)
    assert pol.inference_calls == 1 and pol.rows_scored == 1  # queued, not scored inside the read
    b = EntryInfo(key="/hot/p2.html", size=10, inserted_at=20.0)
    clock.set(20.0)
    pol.ttl_for(b, None)
    pol.on_insert(b)
    assert pol.inference_calls == 2 and pol.rows_scored == 3  # the read joined the insert's batch


def _learned_entry(pol: LearnedPolicy, clock: ManualClock, keys: list[str]) -> None:
    for i, k in enumerate(keys):
        clock.set(float(i))
        info = EntryInfo(key=k, size=10, inserted_at=float(i))
        pol.ttl_for(info, None)
        pol.admit(info)
        pol.on_insert(info)


def test_optimizer_policy_stale_keys_for_the_cache(trained: tuple[Path, object, object]) -> None:
    from precache.cache.policy import StalenessSource

    out, _, _ = trained
    model = OptimizerModel.load(out)
    clock = ManualClock(0.0)
    keys = ["/hot/p1.html", "/hot/p2.html"]
    pol = LearnedPolicy(model, clock, batch_size=2, invalidation_threshold=0.0, admission="none")
    assert isinstance(pol, StalenessSource)
    _learned_entry(pol, clock, keys)
    assert pol.stale_keys(1) == [(keys[0], "revalidate")]
    assert pol.stale_keys(10) == [(keys[1], "revalidate")] and pol.stale_keys(10) == []

    ev = LearnedPolicy(model, clock := ManualClock(0.0), batch_size=2, invalidation_threshold=0.0,
                       admission="none", stale_action="evict")
    _learned_entry(ev, clock, keys)
    ev.on_hit(EntryInfo(key=keys[0], size=10))  # a read does not make it fresher
    ev.on_remove(keys[1])  # gone (or replaced) since it was scored: not handed out
    assert ev.stale_keys(10) == [(keys[0], "evict")] and ev.drain_revalidations() == []

    none = LearnedPolicy(model, clock := ManualClock(0.0), batch_size=2, invalidation_threshold=0.0,
                         admission="none", stale_action="none")
    _learned_entry(none, clock, keys)
    assert none.stale_keys(10) == []
    high = LearnedPolicy(model, clock := ManualClock(0.0), batch_size=2, invalidation_threshold=1.01,
                         admission="none")
    _learned_entry(high, clock, keys)
    assert high.inference_calls == 1 and high.stale_keys(10) == []


@pytest.mark.parametrize("action", ["revalidate", "evict"])
async def test_optimizer_policy_drives_cache_revalidation(trained: tuple[Path, object, object], action: str) -> None:
    """End to end: the trained model flags keys (threshold 0 = every scored key), the cache reloads
    them in the background (or drops them), and a user's L1 hit never waits for any of it."""
    from precache.cache import MemoryL2, PredictiveCache

    out, _, _ = trained
    clock = ManualClock(1000.0)
    pol = LearnedPolicy(OptimizerModel.load(out), clock, batch_size=2, invalidation_threshold=0.0,
                        admission="none", stale_action=action)  # type: ignore[arg-type]
    cache = PredictiveCache(MemoryTier(clock=clock, policy=pol), MemoryL2(clock), clock,
                            config=CacheConfig(staleness=StalenessConfig(poll_interval=1.0)))
    calls: dict[str, int] = {}

    def loader_for(key: str):  # type: ignore[no-untyped-def]
        async def load() -> str:
            calls[key] = calls.get(key, 0) + 1
            return f"{key}@{calls[key]}"
        return load

    keys = ["/hot/p1.html", "/hot/p2.html"]
    for k in keys:
        assert await cache.get(k, loader=loader_for(k)) == f"{k}@1"
    assert pol.inference_calls == 1  # the batch of two was scored: both keys flagged
    clock.advance(5.0)
    for k in keys:  # hits: no poll, no reload
        assert await cache.get(k, loader=loader_for(k)) == f"{k}@1"
    assert calls == {k: 1 for k in keys}
    assert await cache.get("/cold/x.gif") is None  # a miss: the cache polls the policy
    for _ in range(200):
        if not cache._flights.background and not cache._flights.running:
            break
        await asyncio.sleep(0)
    s = cache.stats
    if action == "revalidate":
        assert calls == {k: 2 for k in keys} and s.policy_revalidations == 2
        for k in keys:
            assert cache.contains(k) and await cache.get(k) == f"{k}@2"
    else:
        assert calls == {k: 1 for k in keys} and s.policy_evictions == 2
        assert not any(cache.contains(k) for k in keys)
        assert await cache.get(keys[0]) == f"{keys[0]}@1"  # L2 still has it
    assert len(pol) == len(cache.l1)
    await cache.close()


def test_optimizer_queued_victim_does_not_hit_a_reinserted_key(trained: tuple[Path, object, object]) -> None:
    """A victim queued for a key that was then removed and inserted again belongs to the old entry."""
    out, _, _ = trained
    clock = ManualClock(0.0)
    keys = ["/hot/p1.html", "/hot/p2.html"]
    pol = LearnedPolicy(OptimizerModel.load(out), clock, batch_size=2, invalidation_threshold=0.0,
                        admission="none", stale_action="evict")
    _learned_entry(pol, clock, keys)  # both scored, both queued for eviction as stale
    pol.on_remove(keys[0])
    clock.set(5.0)
    again = EntryInfo(key=keys[0], size=10, inserted_at=5.0)
    pol.admit(again)
    pol.on_insert(again)
    assert pol.victim() == keys[1]


def test_optimizer_dataset_reads_nothing_after_its_slice() -> None:
    """Rows and labels for requests [0, end) are the same whether or not the trace goes on after ``end``:
    no next access, content change (the TTL label) or feature from the future of the slice."""
    reqs, updates = _workload(4000, seed=3)
    full = trace_from_requests(reqs, updates=updates)
    end = len(full) // 2
    t_end = float(full.times[end - 1])
    cut = CacheTrace(times=full.times[:end], keys=full.keys[:end], sizes=full.sizes[:end], clients=full.clients[:end],
                     versions=full.versions[:end], change_signal=full.change_signal,
                     change_times={k: [t for t in ts if t <= t_end] for k, ts in full.change_times.items()})
    assert any(t > t_end for ts in full.change_times.values() for t in ts)  # there is a future to leak
    a = build_dataset(full, 0, end, horizon=60.0)
    b = build_dataset(cut, 0, end, horizon=60.0)
    for name in ("X_access", "should_cache", "priority_access", "ttl", "X_delayed", "priority_delayed", "X_inval",
                 "invalidated"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert len(a.ttl) > 100 and float(a.ttl.min()) < math.log1p(a.cap)  # some changes are inside the slice


def test_shipped_policy_is_chosen_on_a_held_out_slice_and_loaded(trained: tuple[Path, object, object],
                                                                  tmp_path: Path) -> None:
    """Issue 26: what build_stack runs is the validation slice's choice among learned and heuristics."""
    import shutil

    from precache.cache.policy import S3FIFOPolicy
    from precache.models.optimizer.shipped import HEURISTICS, LEARNED, choose_policy, load_policy, record_choice
    from precache.models.optimizer.switcher import SwitchingPolicy

    src, _, trace = trained
    d = tmp_path / "opt"
    shutil.copytree(src, d)  # record_choice rewrites the manifest: not the shared fixture's
    assert isinstance(trace, CacheTrace)
    choice = choose_policy(OptimizerModel.load(d), trace, len(trace) * 3 // 4, fractions=(0.05,))
    scores = choice["byte_miss_ratio"]
    assert set(scores) == {*HEURISTICS, *LEARNED} and all(0 < v < 1 for v in scores.values())
    sel = choice["selection"]  # the noise-band rule: the switcher unless a candidate beats it beyond the band
    assert sel["default"] == "switch" and sel["blocks"] >= 2 and set(sel["vs_default"]) == set(scores) - {"switch"}
    for name, v in sel["vs_default"].items():
        assert v["delta"] == pytest.approx(scores[name] - scores["switch"])
        assert v["clears"] == (v["delta"] < -max(choice["margin"], sel["k"] * v["se"]))
    clearing = [n for n, v in sel["vs_default"].items() if v["clears"]]
    assert choice["chosen"] == (min(clearing, key=lambda n: scores[n]) if clearing else "switch")
    assert load_policy(d, ManualClock(0.0))[1] == "learned"  # before any choice: the learned default
    record_choice(d, choice)
    _, name, version = load_policy(d, ManualClock(0.0))
    assert name == choice["chosen"] and version
    record_choice(d, {"chosen": "s3fifo"})
    assert isinstance(load_policy(d, ManualClock(0.0))[0], S3FIFOPolicy)
    record_choice(d, {"chosen": "switch"})
    assert isinstance(load_policy(d, ManualClock(0.0))[0], SwitchingPolicy)
    record_choice(d, {"chosen": "bogus"})
    with pytest.raises(ValueError, match="bogus"):
        load_policy(d, ManualClock(0.0))


def test_optimizer_policy_seen_admission_is_a_doorkeeper(trained: tuple[Path, object, object]) -> None:
    """Issue 26: ``admission="seen"`` stores a miss only if its key was requested before (no inference)."""
    out, _, _ = trained
    clock = ManualClock(0.0)
    pol = LearnedPolicy(OptimizerModel.load(out), clock, admission="seen")
    first = EntryInfo(key="/a", size=10, inserted_at=0.0)
    assert not pol.admit(first) and pol.rejected == 1 and pol.inference_calls == 0
    clock.set(5.0)
    assert pol.admit(EntryInfo(key="/a", size=10, inserted_at=5.0))  # its second request
    assert not pol.admit(EntryInfo(key="/b", size=10, inserted_at=5.0))
