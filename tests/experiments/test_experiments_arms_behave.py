"""Arms change behaviour: the warmer reads each session's arm through precache.types.SessionParameters,
the stack applies a replica's arm, and a real trace replayed through one experiment separates the arms."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from conftest import shared_file
from precache.cache.clock import ManualClock
from precache.cache.l2 import MemoryL2
from precache.cache.layered import PredictiveCache
from precache.cache.memory import MemoryTier
from precache.experiments.model import Arm, Experiment, ExperimentError
from precache.experiments.params import ExperimentParameters
from precache.types import Prediction, SessionArm
from precache.warming.resolver import MappingResolver
from precache.warming.warmer import Warmer, WarmerConfig


class Fixed:
    """A predictor that always predicts the same pages (and says which model it is)."""

    def __init__(self, name: str, pages: Prediction) -> None:
        self.name, self.pages = name, pages

    def predict(self, history: Sequence[str], k: int) -> Prediction:
        return self.pages[:k]


class ByName:
    """SessionParameters from a table: the session id's first part names its arm."""

    def __init__(self, table: dict[str, SessionArm]) -> None:
        self.table = table

    def for_session(self, session_id: str) -> SessionArm | None:
        return self.table.get(session_id.split("-")[0])


class Costs:
    """A PreloadObserver that lists the sessions it hears about."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.uses: list[str] = []

    def loaded(self, session: str, key: str, size: int) -> None:
        self.loads.append(session)

    def used(self, session: str, key: str) -> None:
        self.uses.append(session)


async def _warm(params: ByName, sessions: list[str], predictors: dict[str, Fixed]) -> tuple[Warmer, list[str], Costs]:
    clock = ManualClock(0.0)
    cache = PredictiveCache(l1=MemoryTier(clock=clock), l2=MemoryL2(clock), clock=clock)
    loads: list[str] = []

    def loader(page: str):  # type: ignore[no-untyped-def]
        async def load() -> bytes:
            loads.append(page)
            return b"x" * 10

        return load

    costs = Costs()
    default = Fixed("active", [("/a", 0.9), ("/b", 0.6)])
    warmer = Warmer(cache, MappingResolver(loader), clock, predictor=default, config=WarmerConfig(threshold=0.7),
                    params=params, predictors=predictors.get, on_preload=costs)
    for s in sessions:
        warmer.observe(s, "/start")
    await warmer.step()
    await warmer.drain()
    return warmer, sorted(loads), costs


async def test_warmer_follows_each_sessions_arm() -> None:
    params = ByName({
        "off": SessionArm(warming=False), "low": SessionArm(threshold=0.5),
        "pinned": SessionArm(model_version="v7"), "missing": SessionArm(model_version="v404"),
    })
    predictors = {"v7": Fixed("v7", [("/pinned-page", 0.99)])}
    # warming off: nothing predicted, nothing loaded
    warmer, loads, costs = await _warm(params, ["off-1", "off-2"], predictors)
    assert loads == [] and warmer.stats.skipped["arm_off"] == 2 and warmer.stats.predictions == 0
    # no arm: the configured threshold (0.7) keeps /a only
    _, loads, costs = await _warm(params, ["plain-1"], predictors)
    assert loads == ["/a"] and costs.loads == ["plain-1"]
    # threshold arm 0.5: /b (0.6) too
    _, loads, _ = await _warm(params, ["low-1"], predictors)
    assert loads == ["/a", "/b"]
    # a pinned version predicts with that version's model, never the active one
    _, loads, _ = await _warm(params, ["pinned-1"], predictors)
    assert loads == ["/pinned-page"]
    # a version that cannot be loaded: skipped, not served by another model
    warmer, loads, _ = await _warm(params, ["missing-1", "plain-2"], predictors)
    assert loads == ["/a"] and warmer.stats.skipped["model_unavailable"] == 1


async def test_preload_observer_hears_which_session_used_its_preload() -> None:
    params = ByName({})
    warmer, loads, costs = await _warm(params, ["s-1"], {})
    assert loads == ["/a"]
    warmer.record_hit("/a")
    assert costs.uses == ["s-1"] and warmer.stats.used == 1


def test_experiment_parameters_combine_kinds_and_check_arm_meaning() -> None:
    warm = Experiment("w", "warming", (Arm("off", 1), Arm("on", 1)), created=1.0).validate()
    thr = Experiment("t", "threshold", (Arm("base", 1), Arm("t05", 1, {"threshold": 0.5})), created=2.0,
                     seed="other").validate()
    pol = Experiment("p", "cache_policy", (Arm("s3fifo", 1), Arm("learned", 1)), created=3.0).validate()
    params = ExperimentParameters([warm, thr, pol])
    seen = {params.for_session(f"s{i}") for i in range(400)}
    assert {a.warming for a in seen if a} == {True, False}
    assert {a.threshold for a in seen if a} == {None, 0.5}
    assert all(a is not None and a.experiment == "w,t" for a in seen)
    replicas = {params.for_replica(f"replica-{i}").cache_policy for i in range(40)}  # type: ignore[union-attr]
    assert replicas == {"learned", "s3fifo"}
    assert params.for_session("s1") == params.for_session("s1")  # sticky
    stopped = Experiment("w", "warming", (Arm("off", 1), Arm("on", 1)), status="stopped").validate()
    assert ExperimentParameters([stopped]).for_session("s1") is None
    with pytest.raises(ExperimentError, match="threshold"):
        Experiment("bad", "threshold", (Arm("a", 1), Arm("b", 1, {"threshold": 2}))).validate()
    with pytest.raises(ExperimentError, match="policy"):
        Experiment("bad", "cache_policy", (Arm("a", 1), Arm("b", 1))).validate()
    with pytest.raises(ExperimentError, match="version"):
        Experiment("bad", "model_version", (Arm("a", 1), Arm("b", 1, {"version": 3}))).validate()


def test_stack_applies_a_replicas_cache_policy_and_ttl_arm(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from precache.cache.policy import S3FIFOPolicy
    from precache.config import load_settings
    from precache.stack import build_stack
    from precache.types import ReplicaArm

    settings = load_settings(model_storage_path=str(tmp_path / "models"))
    stack = build_stack(settings, l2=False, replica_arm=ReplicaArm(cache_policy="s3fifo", experiment="p", arm="s3fifo"))
    assert isinstance(stack.cache.l1.policy, S3FIFOPolicy)
    assert stack.loaded["replica arm"] == "p:s3fifo"
    learned = build_stack(settings, l2=False, replica_arm=ReplicaArm(cache_policy="learned", experiment="p",
                                                                    arm="learned"))
    assert "no cache optimizer" in learned.loaded["replica arm"]  # said, not silently the other arm


@pytest.mark.realdata
def test_warming_experiment_replayed_on_nasa_separates_the_arms() -> None:
    """NASA 1 Aug through the real cache and warmer, warming off/on per session, three independent splits."""
    from precache.models import build_predictor
    from precache.sim.ab_replay import replay_experiment
    from precache.sim.origin import LatencyModel
    from precache.sim.replay import Mode, ReplayConfig
    from precache.sim.workload import prepare
    from precache.traces.paths import normalize_path
    from precache.traces.reader import read_requests
    from precache.warming.assets import AssetModel

    trace = prepare(list(read_requests(shared_file("nasa-http/nasa_19950801.tsv.gz"))), "nasa-aug", 0.5, 0.1)
    predictor = build_predictor("ppm")
    predictor.fit(trace.train, trace.validation)
    assets = AssetModel(normalize=normalize_path).fit(trace.train)
    distinct = sum(trace.sizes.get(k, 0) for k in set(trace.events.keys))
    config = ReplayConfig(l1_bytes=int(distinct * 0.05), l2_bytes=int(distinct * 0.3),
                          latency=LatencyModel.calibrated(trace.page_sizes, target=0.12))
    hit_diffs, latency_diffs = [], []
    for seed in ("a", "b", "c"):
        experiment = Experiment("warm", "warming", (Arm("off", 1), Arm("on", 1)), mde=0.02, seed=seed).validate()
        result, arms, out = replay_experiment(trace, experiment, Mode("full", warming="predictor"), config,
                                              predictor, assets)
        off, on = arms["off"], arms["on"]
        assert off.preloads.trials == 0 and on.preloads.trials > 100  # the arms really behave differently
        # HR@5 per arm: only the warmed sessions had predictions, and they are all of the replay's scored ones
        assert off.accuracy.trials == 0 and on.accuracy.trials == result.online_transitions > 0
        assert on.accuracy.successes / on.accuracy.trials == result.online_hr5
        assert off.sessions + on.sessions == len({trace.events.sessions[i] for i in result.indices})
        assert not out["sampleRatio"]["mismatch"]
        metrics = out["arms"]["on"]["metrics"]
        hits = metrics["hits"]
        assert hits["treatment"] == on.hits.successes / on.hits.trials  # per-session sums add up to the requests
        hit_diffs.append(hits["fixedHorizon"]["diff"])
        latency_diffs.append(metrics["latency_ms"]["fixedHorizon"]["diff"])
        # the test is per session (the unit of randomization): wider than one treating requests as independent
        assert hits["unit"].startswith("session")
        naive_se = (hits["control"] * (1 - hits["control"]) / off.hits.trials
                    + hits["treatment"] * (1 - hits["treatment"]) / on.hits.trials) ** 0.5
        assert hits["fixedHorizon"]["se"] > naive_se and out["minSampleSize"]["designEffect"] > 1
        # the readout says whether the difference is significant at this traffic, consistently with its p-values
        significant = hits["sequential"]["pValue"] < experiment.alpha
        assert (out["arms"]["on"]["verdict"] == "no significant difference yet") == (not significant)
        assert len(out["looks"]) == 10 and out["looks"][-1]["requests"] == off.hits.trials + on.hits.trials
        ps = [look["alwaysValidPValue"] for look in out["looks"] if "alwaysValidPValue" in look]
        assert ps == sorted(ps, reverse=True)  # always valid: the running minimum never goes back up
    # expected direction, on average over the splits: warmed sessions hit more often and wait less
    assert sum(hit_diffs) > 0 and sum(latency_diffs) < 0


async def test_a_model_arm_pins_a_registry_version_that_is_not_the_active_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """build_stack's warmer loads a pinned page-predictor version from the registry (verified), while the
    active version keeps serving everyone else; an unknown version is skipped, not replaced."""
    from conftest import hub_sessions
    from precache.config import load_settings
    from precache.models import build_predictor
    from precache.registry import open_registry
    from precache.stack import build_stack

    settings = load_settings(model_storage_path=str(tmp_path / "models"), model_backup_path=str(tmp_path / "bak"))
    registry = open_registry(settings)
    popular = build_predictor("popularity")
    popular.fit(hub_sessions(200))
    popular.save(tmp_path / "v1")
    ppm = build_predictor("ppm")
    ppm.fit(hub_sessions(200))
    ppm.save(tmp_path / "v2")
    v1 = registry.register("page-predictor", tmp_path / "v1")
    v2 = registry.register("page-predictor", tmp_path / "v2")
    registry.activate("page-predictor", v2.version)
    arms = ByName({"old": SessionArm(model_version=v1.version, experiment="m", arm="old"),
                   "gone": SessionArm(model_version="v99", experiment="m", arm="gone")})
    stack = build_stack(settings, l2=False, resolver=MappingResolver(lambda page: None), session_params=arms)
    warmer = stack.warmer
    assert warmer is not None and warmer.predictors is not None
    assert stack.loaded["page-predictor version"] == v2.version  # the active one serves by default
    pinned = warmer.predictors(v1.version)
    assert pinned is not None and getattr(pinned, "name", "") == "popularity"
    assert warmer.predictors(v1.version) is pinned  # loaded once
    assert warmer.predictors("v99") is None
    for session in ("old-1", "gone-1", "new-1"):
        warmer.observe(session, "/a3")
    await warmer.step()
    assert warmer.stats.skipped["model_unavailable"] == 1 and warmer.stats.batches == 2  # v1 and the active one
