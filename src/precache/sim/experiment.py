"""The comparison every figure and table comes from: one trace, the configurations below, three cache sizes.

Steps: split the trace by time (``workload.prepare``); train the page predictor and the asset model on
the training sessions, the learned cache policy on the training requests; then replay the rest under
each configuration on the same events, the same origin draws, the same TTL and the same bounded L1 and L2:

- ``no-cache``: every request goes to the origin;
- ``lru-ttl`` ("before ML"): LRU;
- ``heuristic``: the cache's S3-FIFO policy;
- ``long-ttl``: S3-FIFO with a long fixed TTL (``long_ttl``), so a TTL's share of any gain is visible;
- ``learned``: the learned optimizer policy (admission + eviction), the same fixed TTL, no warming;
- ``learned-adaptive-ttl``: the ablation: the learned policy choosing TTLs itself;
- ``full-offline``: the ablation: ``full``'s warmer without its online layer (trained models only, the
  fixed threshold): what ``full`` was before the warmer learned from the stream;
- ``full``: the learned policy (S3-FIFO if the optimizer is unavailable) + predictive warming, the warmer
  learning online (page -> asset links, each session's appetite for assets, its efficiency target);
- ``oracle``: the same cache, but each session's next request is in place just in time (an upper bound).

Sizes: ``SIZE_PAIRS`` names three (L1, L2) budgets as shares of the bytes the replay touches; every
configuration runs at each, since the answer depends on size. ``default_size`` is the one the top-level
table (and the threshold sweep and miss breakdown) reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from precache.defaults import WARMING_THRESHOLD
from precache.models import build_predictor
from precache.scoring import misses_removed
from precache.sim.analysis import miss_breakdown
from precache.sim.metrics import ReplayResult
from precache.sim.origin import LatencyModel
from precache.sim.payloads import release_freed_memory
from precache.sim.policies import PolicyFactory, lru, s3fifo, train_learned_policy
from precache.sim.replay import Mode, ReplayConfig, replay
from precache.sim.workload import Events, PreparedTrace, prepare
from precache.traces.model import Request
from precache.traces.paths import normalize_path
from precache.warming.assets import AssetModel
from precache.warming.warmer import WarmerConfig

if TYPE_CHECKING:
    from precache.models.optimizer.labels import CacheTrace

Progress = Callable[[str, int, int], None]
SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# The figures this system was specified with; every before/after view prints ours next to them.
SPECIFIED_CLAIMS = {"hit_rate": "95% -> 99.5%", "cold_starts": "-90%", "avg_load_ms": "120 -> 30 ms (-75%)",
                    "accuracy": "87%", "preload_efficiency": "82%"}
HEURISTICS = ("lru-ttl", "heuristic")
"""The baselines "full" is judged against: the same TTL, L1 and L2 (``long-ttl`` changes the TTL)."""
ALL_MODES = ("no-cache", "lru-ttl", "heuristic", "long-ttl", "learned", "learned-adaptive-ttl", "full-offline", "full",
             "oracle")


@dataclass(frozen=True, slots=True)
class SizePair:
    """L1 and L2 byte budgets as shares of the distinct bytes the replay touches."""

    name: str
    l1_share: float
    l2_share: float


SIZE_PAIRS = (SizePair("small", 0.01, 0.10), SizePair("medium", 0.05, 0.30), SizePair("large", 0.10, 1.00))


@dataclass(slots=True)
class ExperimentConfig:
    train_fraction: float = 0.5
    warmup_fraction: float = 0.1
    predictor: str = "ppm"
    learned_policy: bool = True
    sizes: Sequence[SizePair] = SIZE_PAIRS
    default_size: str = "medium"
    l2: bool = True
    ttl: float = 3600.0
    """The one TTL every configuration gets (except ``long-ttl`` and the adaptive ablation)."""
    long_ttl: float = 86400.0
    target_page_ms: float = 120.0
    threshold: float = WARMING_THRESHOLD
    sweep: Sequence[float] = SWEEP
    sweep_max_events: int | None = 200_000
    warmer: WarmerConfig = field(default_factory=WarmerConfig)
    seed: int = 0


@dataclass(slots=True)
class SizeRun:
    """Every configuration at one (L1, L2) size pair."""

    meta: dict[str, Any]
    results: dict[str, ReplayResult]

    def table(self) -> list[dict[str, Any]]:
        rows = [r.summary() for r in self.results.values()]
        by_mode = {row["mode"]: row for row in rows}
        base = by_mode.get("learned") or by_mode.get("heuristic")
        for row in rows:  # net origin overhead of warming: with warming minus the same cache without
            if base is not None and row["mode"] in ("full", "full-offline", "oracle"):
                row["net_extra_origin_requests"] = row["origin_requests"] - base["origin_requests"]
                row["net_extra_origin_bytes"] = row["origin_bytes"] - base["origin_bytes"]
        return rows

    def as_json(self) -> dict[str, Any]:
        return {"meta": {**self.meta, "vs_best_heuristic": versus_best_heuristic(self.table())},
                "table": self.table()}


def versus_best_heuristic(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``full`` against the best heuristic (lowest average load time among ``HEURISTICS``) and the oracle."""
    by_mode = {row["mode"]: row for row in rows}
    full, oracle = by_mode.get("full"), by_mode.get("oracle")
    heuristics = [by_mode[m] for m in HEURISTICS if m in by_mode]
    if full is None or not heuristics:
        return None
    best = min(heuristics, key=lambda r: r["avg_load_ms"])
    out: dict[str, Any] = {
        "best_heuristic": best["mode"],
        "avg_load_ms": {"best": best["avg_load_ms"], "full": full["avg_load_ms"]},
        "origin_misses": {"best": best["cold_starts"], "full": full["cold_starts"]},
        "misses_removed": 1.0 - full["cold_starts"] / best["cold_starts"] if best["cold_starts"] else 0.0,
        "preload_efficiency": full["preload_efficiency"],
        "net_extra_origin_requests": full["origin_requests"] - best["origin_requests"],
        "net_extra_origin_bytes": full["origin_bytes"] - best["origin_bytes"],
    }
    offline = by_mode.get("full-offline")
    if offline is not None:  # the same judged without the warmer's online layer (the ablation)
        out["full_offline"] = {
            "avg_load_ms": offline["avg_load_ms"], "origin_misses": offline["cold_starts"],
            "misses_removed": 1.0 - offline["cold_starts"] / best["cold_starts"] if best["cold_starts"] else 0.0,
            "preload_efficiency": offline["preload_efficiency"]}
    if oracle is not None:
        gap = best["avg_load_ms"] - oracle["avg_load_ms"]
        out["oracle_avg_load_ms"] = oracle["avg_load_ms"]
        out["load_gap_closed"] = (best["avg_load_ms"] - full["avg_load_ms"]) / gap if gap > 0 else None
    return out


@dataclass(slots=True)
class Experiment:
    trace: str
    results: dict[str, ReplayResult]
    sweep: list[dict[str, Any]]
    meta: dict[str, Any]
    sizes: dict[str, SizeRun] = field(default_factory=dict)

    def table(self) -> list[dict[str, Any]]:
        """The default size pair's rows."""
        return SizeRun(self.meta, self.results).table()

    def headline(self) -> Headline | None:
        """Before ML (``lru-ttl``) vs precache full, or None when either was not run."""
        rows = {row["mode"]: row for row in self.table()}
        before, after = rows.get("lru-ttl"), rows.get("full")
        if before is None or after is None:
            return None
        return Headline(before, after, rows.get("learned") or rows.get("heuristic") or before)

    def as_json(self) -> dict[str, Any]:
        """``{meta, table, sweep, sizes}``: the layout of ``bench/results/replay.json``'s traces and of
        ``precache demo``'s ``report.json`` (``table``/``meta`` are the default size pair's)."""
        return {"meta": {**self.meta, "vs_best_heuristic": versus_best_heuristic(self.table())},
                "table": self.table(), "sweep": self.sweep,
                "sizes": {name: run.as_json() for name, run in self.sizes.items()}}


@dataclass(frozen=True, slots=True)
class Headline:
    """The before/after rows (``ReplayResult.summary()`` dicts) and what is derived from them."""

    before: dict[str, Any]
    after: dict[str, Any]
    without_warming: dict[str, Any]  # the same cache policy as ``after``, no warming

    @property
    def misses_removed_by_warming(self) -> float:
        return misses_removed(self.after["hit_rate"], self.without_warming["hit_rate"])

    @property
    def cold_start_change(self) -> float:
        return float(self.after["cold_starts"]) / max(float(self.before["cold_starts"]), 1.0) - 1.0


def _noop(stage: str, done: int, total: int) -> None:
    return None


def _modes(cfg: ExperimentConfig, make_learned: Callable[..., PolicyFactory] | None) -> dict[str, Mode]:
    learned = make_learned(adaptive_ttl=False) if make_learned else s3fifo
    unavailable = "" if make_learned else " (unavailable: S3-FIFO)"
    ttl = f"TTL {cfg.ttl:.0f}s"
    modes = {
        "no-cache": Mode("no-cache", cache=False, label="no cache"),
        "lru-ttl": Mode("lru-ttl", policy=lru, ttl=cfg.ttl, label=f"LRU, {ttl} (before ML)"),
        "heuristic": Mode("heuristic", policy=s3fifo, ttl=cfg.ttl, label=f"S3-FIFO heuristic, {ttl}"),
        "long-ttl": Mode("long-ttl", policy=s3fifo, ttl=cfg.long_ttl,
                         label=f"S3-FIFO, long fixed TTL {cfg.long_ttl:.0f}s"),
        "learned": Mode("learned", policy=learned, ttl=cfg.ttl, label=f"learned policy, {ttl}{unavailable}"),
        "full": Mode("full", policy=learned, ttl=cfg.ttl, warming="predictor",
                     label=f"precache full (learned policy + warming), {ttl}{unavailable}"),
        "full-offline": Mode("full-offline", policy=learned, ttl=cfg.ttl, warming="predictor", online=False,
                             label=f"ablation: full with the trained models only, fixed threshold, {ttl}{unavailable}"),
        "oracle": Mode("oracle", policy=learned, ttl=cfg.ttl, warming="oracle",
                       label="oracle (next request of each session in place just in time)"),
    }
    if make_learned is not None:
        modes["learned-adaptive-ttl"] = Mode("learned-adaptive-ttl", policy=make_learned(adaptive_ttl=True),
                                             ttl=cfg.ttl, label="ablation: learned policy + adaptive TTL")
    return modes


def _read(requests: Iterable[Request], progress: Progress) -> list[Request]:
    out: list[Request] = []
    for request in requests:
        out.append(request)
        if len(out) % 100_000 == 0:
            progress("read requests", len(out), 0)
    progress("read requests", len(out), len(out))
    return out


def run_experiment(
    requests: Iterable[Request],
    name: str,
    config: ExperimentConfig | None = None,
    updates: Iterable[tuple[float, str]] = (),
    progress: Progress = _noop,
    modes: Sequence[str] = ALL_MODES,
) -> Experiment:
    """Run the comparison on a time-ordered request trace (see the module docstring).

    ``requests`` may be a generator: the requests are needed only until the trace is prepared and the
    cache policy's training trace is built, and nothing keeps them after that unless the caller does
    (at 1M requests they are ~150 MB). Content ``updates`` after the last request are ignored."""
    cfg = config or ExperimentConfig()
    if cfg.default_size not in {s.name for s in cfg.sizes}:
        raise ValueError(f"default_size {cfg.default_size!r} is not one of the size pairs")
    reqs = _read(requests, progress)
    del requests
    last = reqs[-1].time if reqs else 0.0
    updates = [u for u in updates if u[0] <= last]
    meta: dict[str, Any] = {"trace": name, "requests": len(reqs)}
    t0 = time.perf_counter()
    trace = prepare(reqs, name, cfg.train_fraction, cfg.warmup_fraction, updates=updates)
    meta["prepare_seconds"] = time.perf_counter() - t0
    policy_trace: CacheTrace | None = None
    wants_policy = cfg.learned_policy and any(m.startswith(("learned", "full")) or m == "oracle" for m in modes)
    if wants_policy:
        t0 = time.perf_counter()
        try:
            from precache.models.optimizer.labels import trace_from_requests

            ordered = sorted(reqs, key=lambda r: r.time)[: int(len(reqs) * cfg.train_fraction)]
            policy_trace = trace_from_requests(ordered, [u for u in updates if u[0] <= ordered[-1].time] or None)
            del ordered
        except Exception as exc:  # the optimizer is optional: say so and fall back
            meta["learned_policy_error"] = repr(exc)
        meta["policy_fit_seconds"] = time.perf_counter() - t0
    del reqs  # from here on only the prepared trace and the policy's training trace are needed
    meta.update(train_sessions=len(trace.train), replayed=len(trace.events), measured=trace.measured,
                measured_minutes=trace.duration / 60)
    progress("train predictor", 0, 1)
    t0 = time.perf_counter()
    predictor = build_predictor(cfg.predictor)
    predictor.fit(trace.train, trace.validation)
    meta["predictor"] = getattr(predictor, "name", cfg.predictor)
    meta["predictor_fit_seconds"] = time.perf_counter() - t0
    assets = AssetModel(normalize=normalize_path).fit(trace.train)
    meta["asset_pages"] = len(assets)
    progress("train predictor", 1, 1)
    make_learned: Callable[..., PolicyFactory] | None = None
    if policy_trace is not None:
        progress("train cache policy", 0, 1)
        t0 = time.perf_counter()
        try:
            make_learned, info = train_learned_policy(policy_trace)
            meta["learned_policy"] = {k: v for k, v in info.items() if isinstance(v, int | float | str)}
        except Exception as exc:  # the optimizer is optional: say so and fall back
            meta["learned_policy_error"] = repr(exc)
        meta["policy_fit_seconds"] += time.perf_counter() - t0
        del policy_trace
        progress("train cache policy", 1, 1)
    keys = trace.events.keys
    distinct_bytes = sum(trace.sizes.get(k, 0) for k in set(keys))
    latency = LatencyModel.calibrated(trace.page_sizes, target=cfg.target_page_ms / 1000)
    meta.update(distinct_bytes=distinct_bytes, ttl=cfg.ttl, long_ttl=cfg.long_ttl,
                latency={"base_ms": latency.base * 1000, "bandwidth": latency.bandwidth, "sigma": latency.sigma,
                         "draws": "common random numbers: one per (seed, request)"})
    warm = WarmerConfig(**{f: getattr(cfg.warmer, f) for f in WarmerConfig.__slots__})
    warm.threshold = cfg.threshold
    all_modes = _modes(cfg, make_learned)
    runs: dict[str, SizeRun] = {}
    default_rcfg = ReplayConfig()
    nocache: ReplayResult | None = None  # the same at every size (same draws, no cache): replayed once
    for pair in cfg.sizes:
        rcfg = ReplayConfig(l1_bytes=max(1, int(distinct_bytes * pair.l1_share)),
                            l2_bytes=max(1, int(distinct_bytes * pair.l2_share)) if cfg.l2 else None,
                            latency=latency, warmer=warm, seed=cfg.seed)
        size_meta = {"size": pair.name, "l1_share": pair.l1_share, "l2_share": pair.l2_share if cfg.l2 else None,
                     "l1_bytes": rcfg.l1_bytes, "l2_bytes": rcfg.l2_bytes}
        results: dict[str, ReplayResult] = {}
        for mode_name in modes:
            mode = all_modes.get(mode_name)
            if mode is None:
                continue
            stage = f"{pair.name}: {mode_name}"

            def tick(done: int, total: int, stage: str = stage) -> None:
                progress(stage, done, total)

            rcfg.progress = tick
            if mode_name == "no-cache" and nocache is not None:
                results[mode_name] = nocache
                continue
            result = replay(trace, mode, rcfg, predictor, assets)
            if pair.name != cfg.default_size or mode_name not in ("learned", "heuristic", "full"):
                result.compact()  # memory: only the miss breakdown still needs per-request records
            results[mode_name] = result
            if mode_name == "no-cache":
                nocache = result
            release_freed_memory()  # RSS peaks at the largest replay, not their sum
            progress(stage, len(keys), len(keys))
        runs[pair.name] = SizeRun(size_meta, results)
        if pair.name == cfg.default_size:
            default_rcfg = rcfg
            if "full" in results and ("learned" in results or "heuristic" in results):
                without = results.get("learned") or results["heuristic"]
                meta["miss_breakdown"] = miss_breakdown(trace, without, results["full"], predictor, assets)
            for result in results.values():
                result.compact()
    default = runs[cfg.default_size]
    meta.update(default.meta)
    results = default.results
    sweep: list[dict[str, Any]] = []
    if cfg.sweep and "full" in all_modes:
        sweep_trace = _truncate(trace, cfg.sweep_max_events)
        base = replay(sweep_trace, all_modes["learned"], _quiet(default_rcfg), predictor, assets).summary()
        for k, threshold in enumerate(cfg.sweep):
            progress("threshold sweep", k, len(cfg.sweep))
            full = all_modes["full"]
            mode = Mode(f"full@{threshold}", policy=full.policy, ttl=cfg.ttl, warming="predictor",
                        threshold=threshold)
            row = replay(sweep_trace, mode, _quiet(default_rcfg), predictor, assets).summary()
            row["threshold"] = threshold
            row["misses_removed"] = misses_removed(row["hit_rate"], base["hit_rate"])
            sweep.append(row)
        progress("threshold sweep", len(cfg.sweep), len(cfg.sweep))
    meta["total_seconds"] = sum(r.wall_seconds for run in runs.values() for r in run.results.values())
    return Experiment(name, results, sweep, meta, runs)


def _quiet(rcfg: ReplayConfig) -> ReplayConfig:
    return ReplayConfig(rcfg.l1_bytes, rcfg.l2_bytes, rcfg.latency, rcfg.warmer, rcfg.seed)


def _truncate(trace: PreparedTrace, max_events: int | None) -> PreparedTrace:
    if max_events is None or len(trace.events) <= max_events:
        return trace
    ev = trace.events
    cut = Events(ev.times[:max_events], ev.keys[:max_events], ev.sizes[:max_events],
                 ev.sessions[:max_events], ev.pages[:max_events])
    end = cut.times[-1]
    return PreparedTrace(trace.name, trace.train, trace.validation, cut, min(trace.warmup, max_events // 2),
                         trace.sizes, [u for u in trace.updates if u[0] <= end])
