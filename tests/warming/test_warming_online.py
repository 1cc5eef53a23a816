"""Online page -> asset links (issue 10): causal, bounded, reset on a version change, and worth something
in the replay (the real warmer, driven by the replay like the service drives it)."""

from __future__ import annotations

import random

import pytest

from precache.cache.clock import ManualClock
from precache.cache.events import AccessEvent
from precache.cache.layered import PredictiveCache
from precache.cache.memory import MemoryTier
from precache.models import build_predictor
from precache.sim.origin import LatencyModel
from precache.sim.replay import Mode, ReplayConfig, replay
from precache.sim.workload import prepare
from precache.traces.model import Request, Session
from precache.traces.paths import normalize_path
from precache.warming import AssetModel, MappingResolver, Warmer, WarmerConfig
from precache.warming.online import OnlineAssets, OnlineConfig


def _warmer(clock: ManualClock, loads: list[str], assets: AssetModel | None = None,
            config: WarmerConfig | None = None, prefix: str = "") -> Warmer:
    cache = PredictiveCache(l1=MemoryTier(max_bytes=10_000_000, clock=clock), clock=clock)

    def make_loader(page: str):  # type: ignore[no-untyped-def]
        async def load() -> bytes:
            loads.append(page)
            return b"x" * 100

        return load

    return Warmer(cache, MappingResolver(make_loader, key_prefix=prefix), clock, None, config or WarmerConfig(),
                  assets=assets)


Stream = list[tuple[float, str, str, bool]]  # (time, session, item, is a page view)


def _stream(new_asset_after: int = 10**9) -> Stream:
    """Sessions view /news then fetch /news/a.png 2 s later; from session ``new_asset_after`` on, the
    asset they fetch is /news/b.png instead."""
    out: Stream = []
    for s in range(12):
        t = 100.0 * s
        out.append((t, f"s{s}", "/news", True))
        out.append((t + 2, f"s{s}", "/news/b.png" if s >= new_asset_after else "/news/a.png", False))
    return out


async def _run(stream: Stream, warmer: Warmer, clock: ManualClock, loads: list[str]) -> list[list[str]]:
    """Feed the stream event by event, one warmer step after each; the preloads started after each event."""
    started: list[list[str]] = []
    for t, session, item, page in stream:
        clock.set(t)
        before = len(loads)
        if page:
            warmer.observe(session, item)
        else:
            warmer.observe_access(session, item)
        await warmer.step()
        await warmer.drain()
        started.append(loads[before:])
    return started


async def test_an_unknown_page_gets_its_assets_preloaded_once_learned() -> None:
    clock, loads = ManualClock(0.0), []
    warmer = _warmer(clock, loads)  # no trained asset model at all
    started = await _run(_stream(), warmer, clock, loads)
    views = [s for (_, _, _, page), s in zip(_stream(), started, strict=True) if page]
    # P = sessions that fetched it / views at risk, the view in progress included: 0, 1/2, 2/3, 3/4
    assert views[0] == views[1] == views[2] == []
    assert views[3] == ["/news/a.png"] and warmer.online.assets_of("/news")[0][0] == "/news/a.png"


async def test_decisions_never_depend_on_later_events() -> None:
    """Two streams equal up to session 6 and different after: every preload up to that point is identical,
    and the learner follows the change only after it was observed."""
    runs = []
    for change in (10**9, 6):
        clock, loads = ManualClock(0.0), []
        runs.append(await _run(_stream(new_asset_after=change), _warmer(clock, loads), clock, loads))
    same, changed = runs
    cut = 2 * 6 + 1  # the events up to session 6's page view are the same in both streams
    assert same[:cut] == changed[:cut]
    assert any(same[:cut])  # something was preloaded before the streams differ (the test can fail)
    # /news/b.png is first seen at event 13; at 3 of 4 views (session 9) it is preloaded, not before
    assert [i for i, s in enumerate(changed) if "/news/b.png" in s] == [18]


def test_bounded_memory() -> None:
    cfg = OnlineConfig(max_pages=50, max_links=4, max_sessions=30, max_keys=8)
    online = OnlineAssets(None, cfg)
    rng = random.Random(1)
    for i in range(5_000):
        session = f"s{rng.randrange(200)}"
        online.observe_page(session, f"/p{rng.randrange(300)}", float(i))
        for _ in range(3):
            online.observe_access(session, f"/img{rng.randrange(1000)}.gif", float(i) + 1)
    assert len(online) <= 50 and online.sessions <= 30
    assert all(len(p.links) <= 4 for p in online._pages.values())
    assert all(len(s.keys) <= 8 for s in online._sessions.values())
    assert online.links() > 0


def _trained() -> AssetModel:
    session = Session("t", "c", 0.0, pages=["/home"], times=[0.0],
                      assets=[Request(1.0, "c", "/home/logo.png")] * 1)
    return AssetModel().fit([session, Session("u", "d", 5.0, pages=["/home"], times=[5.0],
                                              assets=[Request(6.0, "d", "/home/logo.png")])])


def test_online_links_reset_when_another_version_is_activated() -> None:
    clock, loads = ManualClock(0.0), []
    base = _trained()
    warmer = _warmer(clock, loads, assets=base)
    for s in range(4):
        warmer.observe(f"s{s}", "/new")
        warmer.observe_access(f"s{s}", "/new/x.png")
    assert warmer.online.assets_of("/new") and warmer.online.assets_of("/home") == base.assets_of("/home")
    warmer.set_models(None, base, None)  # the same version: what was learned stays
    assert warmer.online.assets_of("/new")
    assert warmer.target is not None
    warmer.target.threshold = 0.4  # as if learned
    warmer.set_models(None, base, "v2")
    assert warmer.online.assets_of("/new") == [] and warmer.online.version == "v2"
    assert warmer.target.threshold == warmer.config.threshold  # the learned threshold starts over too
    assert warmer.online.assets_of("/home") == base.assets_of("/home")  # the trained links are untouched


def test_service_events_teach_links_through_handle_event() -> None:
    """The stack subscribes ``handle_event`` to the cache: a session's key-only accesses after a page view
    are that page's assets (the resolver's key prefix is removed, as the warmer preloads page ids)."""
    clock, loads = ManualClock(0.0), []
    warmer = _warmer(clock, loads, prefix="site:")
    for s in range(5):
        warmer.observe(f"s{s}", "/doc")
        warmer.handle_event(AccessEvent(1.0, "site:/doc", f"s{s}", None, "l1", 0.0, 10))
        warmer.handle_event(AccessEvent(1.0, "site:/doc/fig.png", f"s{s}", None, "origin", 0.0, 10))
        warmer.handle_event(AccessEvent(1.0, "site:/other.png", None, None, "origin", 0.0, 10))  # no session
    assert [a for a, _ in warmer.online.assets_of("/doc")] == ["/doc/fig.png"]


def _site(seed: int = 0, silent: float = 0.0) -> list[Request]:
    """Pages /p0-/p19 all along; pages /n0-/n19 appear only in the second half (never in training). Each
    page view pulls its own image 3 s later; the cache holds a few images, so most image requests miss. A
    ``silent`` share of the sessions never fetches images (their browser has them)."""
    rng = random.Random(seed)
    out: list[Request] = []
    for s in range(600):
        t = s * 10.0 + rng.random()
        prefix = "/n" if s >= 300 and rng.random() < 0.6 else "/p"
        quiet = rng.random() < silent
        for _ in range(3 if silent else 2):
            page = f"{prefix}{rng.randrange(20)}"
            out.append(Request(t, f"c{s}", page, size=2000))
            if not quiet:
                out.append(Request(t + 3, f"c{s}", f"{page}/img.png", size=30_000))
            t += 4
    out.sort(key=lambda r: r.time)
    return out


def test_replay_online_links_remove_misses_the_trained_model_cannot() -> None:
    trace = prepare(_site(), "new-pages", train_fraction=0.5, warmup_fraction=0.1)
    predictor = build_predictor("markov")
    predictor.fit(trace.train, trace.validation)
    assets = AssetModel(normalize=normalize_path).fit(trace.train)
    assert not assets.assets_of("/n3")  # the new pages are unknown to the trained model
    results = {}
    for enabled in (False, True):
        warm = WarmerConfig(online=OnlineConfig(enabled=enabled))
        config = ReplayConfig(l1_bytes=100_000, l2_bytes=200_000, warmer=warm,
                              latency=LatencyModel.calibrated(trace.page_sizes, target=0.12))
        results[enabled] = replay(trace, Mode("full", warming="predictor"), config, predictor, assets).summary()
    offline, online = results[False], results[True]
    assert online["cold_starts"] < 0.8 * offline["cold_starts"], (offline["cold_starts"], online["cold_starts"])
    assert online["preload_efficiency"] >= 0.8
    assert online["avg_load_ms"] < offline["avg_load_ms"]


def test_appetite_follows_what_a_session_fetched_after_its_views() -> None:
    """Sessions whose browser already has the site's images view pages without fetching their likely assets;
    their factor falls below 1, a fetching session's rises above it, a new session's is 1. Only views that
    ended (the session's next page view) count, so the current view's outcome is never read early."""
    online = OnlineAssets(_trained())
    assert online.appetite("new") == 1.0
    for s in range(6):  # three fetching sessions, three silent ones, two views each
        for view in range(2):
            online.observe_page(f"s{s}", "/home", 10.0 * view)
            if s < 3:
                online.observe_access(f"s{s}", "/home/logo.png", 10.0 * view + 1)
    # each session's first view has closed; the second is still open
    assert online.appetite("s0") > 1.0 > online.appetite("s5")
    online.observe_access("s5", "/home/logo.png", 21.0)  # fetched in its open view: not counted yet
    low = online.appetite("s5")
    online.observe_page("s5", "/other", 30.0)  # the view closes: now it counts
    assert online.appetite("s5") > low


async def test_a_silent_session_gets_no_asset_preloads() -> None:
    """The trained model says every view of a page fetches its image (P = 1). After views without a fetch,
    a session's asset preloads stop (P x appetite < threshold); a fetching session keeps getting them."""
    pages = [f"/{s}{i}" for s in "ab" for i in range(4)]
    model = AssetModel().fit([Session(f"t{i}", "c", 10.0 * i, pages=[p], times=[10.0 * i],
                                      assets=[Request(10.0 * i + 1, "c", f"{p}/img.png")])
                              for i, p in enumerate(pages)])
    clock, loads = ManualClock(0.0), []
    warmer = _warmer(clock, loads, assets=model, config=WarmerConfig(target_efficiency=None))
    preloaded: dict[str, list[bool]] = {"a": [], "b": []}  # session "a" fetches its images, "b" never does
    t = 0.0
    for view in range(4):
        for session in preloaded:
            t += 100.0
            clock.set(t)
            before = len(loads)
            warmer.observe(session, f"/{session}{view}")
            await warmer.step()
            await warmer.drain()
            preloaded[session].append(loads[before:] == [f"/{session}{view}/img.png"])
            if session == "a":
                warmer.observe_access(session, f"/{session}{view}/img.png")
    assert preloaded["a"] == [True] * 4
    assert preloaded["b"] == [True, False, False, False]  # one silent view: (0 + a) / (1 + 1) / a = 0.5


def test_efficiency_target_moves_the_threshold_to_where_the_used_share_is_the_target() -> None:
    """Preloads above threshold ``t`` are used with probability ``0.7 + t / 2`` (lower thresholds waste more):
    the used share equals 0.85 at t = 0.3, where the controller must settle."""
    from precache.warming.limits import EfficiencyTarget

    target = EfficiencyTarget(initial=0.7, target=0.85)
    rng = random.Random(4)
    for _ in range(20_000):
        target.outcome(rng.random() < 0.7 + target.threshold / 2)
    assert abs(target.threshold - 0.3) < 0.06
    assert abs(target.used / (target.used + target.wasted) - 0.85) < 0.01
    always = EfficiencyTarget(initial=0.7, target=0.85)
    for _ in range(100):
        always.outcome(False)
    assert always.threshold == always.high  # bounded


def test_replay_appetite_raises_preload_efficiency() -> None:
    """Half the sessions never fetch images: without the appetite every one of their page views preloads an
    image nobody uses; with it, their second and later views do not."""
    trace = prepare(_site(seed=3, silent=0.5), "silent", train_fraction=0.5, warmup_fraction=0.1)
    predictor = build_predictor("markov")
    predictor.fit(trace.train, trace.validation)
    assets = AssetModel(normalize=normalize_path, min_probability=0.05).fit(trace.train)
    rows = {}
    for appetite in (False, True):
        warm = WarmerConfig(threshold=0.3, target_efficiency=None, online=OnlineConfig(appetite=appetite))
        config = ReplayConfig(l1_bytes=100_000, l2_bytes=200_000, warmer=warm,
                              latency=LatencyModel.calibrated(trace.page_sizes, target=0.12))
        rows[appetite] = replay(trace, Mode("full", warming="predictor"), config, predictor, assets).summary()
    assert rows[True]["preload_efficiency"] > rows[False]["preload_efficiency"] + 0.05  # 0.55 -> 0.64
    assert rows[True]["origin_requests"] < rows[False]["origin_requests"]


def test_target_efficiency_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from precache.config import ConfigError, load_settings

    monkeypatch.setenv("PRECACHE_PREDICTIVE__TARGET_EFFICIENCY", "0.9")
    config = WarmerConfig.from_settings(load_settings())
    assert config.target_efficiency == 0.9 and config.threshold == 0.7
    clock = ManualClock(0.0)
    warmer = _warmer(clock, [], config=config)
    assert warmer.target is not None and warmer.target.target == 0.9
    monkeypatch.setenv("PRECACHE_PREDICTIVE__TARGET_EFFICIENCY", "1.0")  # all used is not a target
    with pytest.raises(ConfigError):
        load_settings()
    assert _warmer(clock, [], config=WarmerConfig(target_efficiency=None)).target is None
