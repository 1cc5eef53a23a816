"""The comparison every figure and table comes from: one trace, the configurations below, three cache sizes.

Steps: split the trace by time (``workload.prepare``); train the page predictor and the asset model on
the training sessions, the learned cache policy on the training requests; then replay the rest under
each configuration on the same events, the same origin draws, the same TTL and the same bounded L1 and L2:

- ``no-cache``: every request goes to the origin;
- ``lru-ttl`` ("before ML"): LRU;
- ``heuristic``: the cache's S3-FIFO policy;
- ``heuristic-ttl-<seconds>`` / ``heuristic-ttl-none``: the better of the two heuristics (lower load time
  at ``ttl``) at each fixed TTL of ``ttl_grid``: the fixed-TTL frontier (:mod:`precache.sim.frontier`);
- ``adaptive-ttl``: the same heuristic with the change-rate TTL (:mod:`precache.cache.change_rate`);
- ``learned``: the learned optimizer policy (admission + eviction), the fixed TTL, no warming;
- ``learned-adaptive-ttl``: the learned policy with the change-rate TTL;
- ``full-offline``: the ablation: ``full``'s warmer without its online layer (trained models only, the
  fixed threshold): what ``full`` was before the warmer learned from the stream;
- ``full``: the shipped policy + the change-rate TTL + predictive warming, the warmer learning online
  (page -> asset links, each session's appetite for assets, its efficiency target). The shipped policy
  is chosen per size on a validation slice (the end of the training part) among the heuristics and
  the learned policy, each with the change-rate TTL (lowest load time; a tie goes to the heuristic);
- ``oracle``: ``full``'s cache, but each session's next request is in place just in time (an upper bound).

Content changes (the trace's own, or the synthetic site's update process) reach the cache as
invalidations for a share ``invalidate_share`` of them; the rest make copies stale (``stale_rate``).

Sizes: ``SIZE_PAIRS`` names three (L1, L2) budgets as shares of the bytes the replay touches; every
configuration runs at each, since the answer depends on size. ``default_size`` is the one the top-level
table (and the threshold sweep and miss breakdown) reports.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from precache.cache.change_rate import ChangeRateConfig, ChangeRateTTL
from precache.defaults import WARMING_THRESHOLD
from precache.models import build_predictor
from precache.scoring import misses_removed
from precache.sim.analysis import miss_breakdown
from precache.sim.frontier import TTL_GRID, ttl_mode, versus_frontier
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
"""The baselines at the configured TTL; the better one is swept over ``ttl_grid`` (the frontier)."""
ALL_MODES = ("no-cache", "lru-ttl", "heuristic", "heuristic-ttl", "adaptive-ttl", "learned", "learned-adaptive-ttl",
             "full-offline", "full", "oracle")
"""``heuristic-ttl`` stands for every ``heuristic-ttl-*`` row of the grid."""


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
    """The fixed TTL of ``lru-ttl``, ``heuristic`` and ``learned``."""
    ttl_grid: Sequence[float | None] = TTL_GRID
    adaptive: ChangeRateConfig = field(default_factory=ChangeRateConfig)
    """The change-rate TTL's bounds and stale-share target (``adaptive-ttl``, ``full``, ``oracle``)."""
    invalidate_share: float = 0.5
    """Share of content changes the application invalidates (the headline; see docs/policy.md)."""
    invalidate_sweep: Sequence[float] = ()
    """Other shares, replayed at the default size for the frontier, ``adaptive-ttl`` and ``full``."""
    validation_fraction: float = 0.2
    """The end of the training part on which the shipped policy is chosen."""
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
        table = self.table()
        return {"meta": {**self.meta, "vs_best_heuristic": versus_best_heuristic(table),
                         "vs_frontier": versus_frontier(table)}, "table": table}


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
    """The configurations that do not depend on the size (the frontier and ``full`` do: :func:`_run_size`)."""
    learned = make_learned(adaptive_ttl=False) if make_learned else s3fifo
    unavailable = "" if make_learned else " (unavailable: S3-FIFO)"
    ttl = f"TTL {cfg.ttl:.0f}s"
    modes = {
        "no-cache": Mode("no-cache", cache=False, label="no cache"),
        "lru-ttl": Mode("lru-ttl", policy=lru, ttl=cfg.ttl, label=f"LRU, {ttl} (before ML)"),
        "heuristic": Mode("heuristic", policy=s3fifo, ttl=cfg.ttl, label=f"S3-FIFO heuristic, {ttl}"),
        "learned": Mode("learned", policy=learned, ttl=cfg.ttl, label=f"learned policy, {ttl}{unavailable}"),
    }
    if make_learned is not None:
        modes["learned-adaptive-ttl"] = Mode("learned-adaptive-ttl", policy=learned, ttl=cfg.adaptive.max_ttl,
                                             ttl_learner=_learner(cfg),
                                             label="learned policy + change-rate TTL")
    return modes


def _learner(cfg: ExperimentConfig) -> Callable[[], ChangeRateTTL]:
    return partial(ChangeRateTTL, cfg.adaptive)


def _candidates(make_learned: Callable[..., PolicyFactory] | None) -> dict[str, PolicyFactory]:
    """What the shipped policy is chosen among (heuristics first: a tie goes to the simpler one)."""
    out: dict[str, PolicyFactory] = {"s3fifo": s3fifo, "lru": lru}
    if make_learned is not None:
        out["learned"] = make_learned(adaptive_ttl=False)
    return out


def _shipped_modes(cfg: ExperimentConfig, name: str, policy: PolicyFactory) -> dict[str, Mode]:
    learner = _learner(cfg)
    top = cfg.adaptive.max_ttl
    return {
        "full": Mode("full", policy=policy, ttl=top, warming="predictor", ttl_learner=learner,
                     label=f"precache full (shipped policy: {name}, change-rate TTL, warming)"),
        "full-offline": Mode("full-offline", policy=policy, ttl=top, warming="predictor", online=False,
                             ttl_learner=learner,
                             label=f"ablation: full with the trained models only, fixed threshold ({name})"),
        "oracle": Mode("oracle", policy=policy, ttl=top, warming="oracle", ttl_learner=learner,
                       label=f"oracle (next request of each session in place just in time; {name})"),
    }


def _choose_shipped(cfg: ExperimentConfig, validation: PreparedTrace | None, pair: SizePair,
                    candidates: dict[str, PolicyFactory], latency: LatencyModel) -> dict[str, Any]:
    """Replay each candidate (with the change-rate TTL, no warming) on the validation slice at this
    size's shares of its bytes; the lowest load time wins, ties to the earlier (simpler) candidate."""
    if validation is None or len(candidates) == 1:
        return {"chosen": next(iter(candidates)), "validation": {}}
    ev = validation.events
    distinct = sum(validation.sizes.get(k, 0) for k in set(ev.keys))
    rcfg = ReplayConfig(l1_bytes=max(1, int(distinct * pair.l1_share)),
                        l2_bytes=max(1, int(distinct * pair.l2_share)) if cfg.l2 else None,
                        latency=latency, seed=cfg.seed, invalidate_share=cfg.invalidate_share)
    rows: dict[str, dict[str, float]] = {}
    for name, policy in candidates.items():
        mode = Mode(name, policy=policy, ttl=cfg.adaptive.max_ttl, ttl_learner=_learner(cfg))
        row = replay(validation, mode, rcfg).summary()
        rows[name] = {k: row[k] for k in ("avg_load_ms", "hit_rate", "stale_rate")}
    chosen = min(rows, key=lambda k: (round(rows[k]["avg_load_ms"], 6), list(rows).index(k)))
    return {"chosen": chosen, "validation": rows, "validation_requests": validation.measured}


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
    (at 1M requests they are ~150 MB). Content ``updates`` (changes) after the last request are ignored;
    without any, the changes the log itself shows are used (:func:`content_changes`)."""
    cfg = config or ExperimentConfig()
    if cfg.default_size not in {s.name for s in cfg.sizes}:
        raise ValueError(f"default_size {cfg.default_size!r} is not one of the size pairs")
    reqs = _read(requests, progress)
    del requests
    last = reqs[-1].time if reqs else 0.0
    updates = [u for u in updates if u[0] <= last]
    meta: dict[str, Any] = {"trace": name, "requests": len(reqs)}
    if not updates:
        from precache.models.optimizer.labels import content_changes

        updates = content_changes(reqs, key=normalize_path)
        meta["changes"] = {"source": "the log: a URL's full 200 response with another size", "count": len(updates)}
    else:
        meta["changes"] = {"source": "the workload's update events", "count": len(updates)}
    t0 = time.perf_counter()
    trace = prepare(reqs, name, cfg.train_fraction, cfg.warmup_fraction, updates=updates)
    train_reqs = sorted(reqs, key=lambda r: r.time)[: int(len(reqs) * cfg.train_fraction)]
    validation = _validation_trace(train_reqs, name, cfg, updates)
    del train_reqs
    meta["prepare_seconds"] = time.perf_counter() - t0
    make_learned = _train_policy(reqs, updates, cfg, modes, meta, progress)
    del reqs  # from here on only the prepared traces are needed
    meta.update(train_sessions=len(trace.train), replayed=len(trace.events), measured=trace.measured,
                measured_minutes=trace.duration / 60, invalidate_share=cfg.invalidate_share,
                adaptive_ttl=dataclasses.asdict(cfg.adaptive))
    progress("train predictor", 0, 1)
    t0 = time.perf_counter()
    predictor = build_predictor(cfg.predictor)
    predictor.fit(trace.train, trace.validation)
    meta["predictor"] = getattr(predictor, "name", cfg.predictor)
    meta["predictor_fit_seconds"] = time.perf_counter() - t0
    assets = AssetModel(normalize=normalize_path).fit(trace.train)
    meta["asset_pages"] = len(assets)
    progress("train predictor", 1, 1)
    distinct_bytes = sum(trace.sizes.get(k, 0) for k in set(trace.events.keys))
    latency = LatencyModel.calibrated(trace.page_sizes, target=cfg.target_page_ms / 1000)
    meta.update(distinct_bytes=distinct_bytes, ttl=cfg.ttl, ttl_grid=list(cfg.ttl_grid),
                latency={"base_ms": latency.base * 1000, "bandwidth": latency.bandwidth, "sigma": latency.sigma,
                         "draws": "common random numbers: one per (seed, request)"})
    warm = WarmerConfig(**{f: getattr(cfg.warmer, f) for f in WarmerConfig.__slots__})
    warm.threshold = cfg.threshold
    ctx = _Context(cfg, trace, validation, predictor, assets, latency, warm, _modes(cfg, make_learned),
                   _candidates(make_learned), modes, progress, distinct_bytes)
    runs: dict[str, SizeRun] = {}
    for pair in cfg.sizes:
        runs[pair.name] = _run_size(ctx, pair)
        if pair.name == cfg.default_size:
            _default_size_extras(ctx, runs[pair.name], meta)
    default = runs[cfg.default_size]
    meta.update(default.meta)
    meta["total_seconds"] = sum(r.wall_seconds for run in runs.values() for r in run.results.values())
    return Experiment(name, default.results, _threshold_sweep(ctx, default), meta, runs)


@dataclass(slots=True)
class _Context:
    """What every size's replays share."""

    cfg: ExperimentConfig
    trace: PreparedTrace
    validation: PreparedTrace | None
    predictor: Any
    assets: AssetModel
    latency: LatencyModel
    warm: WarmerConfig
    modes: dict[str, Mode]
    candidates: dict[str, PolicyFactory]
    wanted: Sequence[str]
    progress: Progress
    distinct_bytes: int
    nocache: ReplayResult | None = None
    shipped: dict[str, Mode] = field(default_factory=dict)
    rcfg: ReplayConfig | None = None


def _validation_trace(train_reqs: list[Request], name: str, cfg: ExperimentConfig,
                      updates: list[tuple[float, str]]) -> PreparedTrace | None:
    """The end of the training part (``validation_fraction`` of it, after a warm-up as long), for
    choosing the shipped policy; None when too short."""
    if cfg.validation_fraction <= 0 or len(train_reqs) < 200:
        return None
    end = train_reqs[-1].time
    return prepare(train_reqs, f"{name}-validation", 1.0 - cfg.validation_fraction,
                   min(cfg.validation_fraction, 0.1), updates=[u for u in updates if u[0] <= end])


def _train_policy(reqs: list[Request], updates: list[tuple[float, str]], cfg: ExperimentConfig,
                  modes: Sequence[str], meta: dict[str, Any],
                  progress: Progress) -> Callable[..., PolicyFactory] | None:
    """Train the learned policy on the training part (None when not wanted or unavailable)."""
    wants = cfg.learned_policy and any(m.startswith(("learned", "full")) or m == "oracle" for m in modes)
    if not wants:
        return None
    progress("train cache policy", 0, 1)
    t0 = time.perf_counter()
    make_learned: Callable[..., PolicyFactory] | None = None
    try:  # the optimizer is optional: say so and fall back
        from precache.models.optimizer.labels import trace_from_requests

        ordered = sorted(reqs, key=lambda r: r.time)[: int(len(reqs) * cfg.train_fraction)]
        policy_trace: CacheTrace = trace_from_requests(
            ordered, [u for u in updates if u[0] <= ordered[-1].time] or None)
        del ordered
        make_learned, info = train_learned_policy(policy_trace)
        meta["learned_policy"] = {k: v for k, v in info.items() if isinstance(v, int | float | str)}
    except Exception as exc:
        meta["learned_policy_error"] = repr(exc)
    meta["policy_fit_seconds"] = time.perf_counter() - t0
    progress("train cache policy", 1, 1)
    return make_learned


def _size_config(ctx: _Context, pair: SizePair, share: float | None = None) -> ReplayConfig:
    cfg = ctx.cfg
    return ReplayConfig(l1_bytes=max(1, int(ctx.distinct_bytes * pair.l1_share)),
                        l2_bytes=max(1, int(ctx.distinct_bytes * pair.l2_share)) if cfg.l2 else None,
                        latency=ctx.latency, warmer=ctx.warm, seed=cfg.seed,
                        invalidate_share=cfg.invalidate_share if share is None else share)


def _run_one(ctx: _Context, mode: Mode, rcfg: ReplayConfig, stage: str) -> ReplayResult:
    def tick(done: int, total: int) -> None:
        ctx.progress(stage, done, total)

    rcfg.progress = tick
    result = replay(ctx.trace, mode, rcfg, ctx.predictor, ctx.assets)
    rcfg.progress = None
    release_freed_memory()  # RSS peaks at the largest replay, not their sum
    ctx.progress(stage, len(ctx.trace.events), len(ctx.trace.events))
    return result


def _frontier(ctx: _Context, results: dict[str, ReplayResult], rcfg: ReplayConfig,
              stage: str, best: str | None = None) -> tuple[str, PolicyFactory]:
    """The fixed-TTL rows of the better heuristic (``best``: that row's mode, else the faster of the
    ``HEURISTICS`` in ``results``); returns its name and policy."""
    cfg = ctx.cfg
    if best is None:
        runs = [m for m in HEURISTICS if m in results]
        best = min(runs, key=lambda m: results[m].summary()["avg_load_ms"]) if runs else "heuristic"
    policy = lru if best == "lru-ttl" else s3fifo
    label = "LRU" if best == "lru-ttl" else "S3-FIFO"
    for ttl in cfg.ttl_grid:
        name = ttl_mode(ttl)
        if ttl == cfg.ttl and best in results:  # the same configuration: reuse its replay
            results[name] = dataclasses.replace(results[best], mode=name, label=f"{label}, fixed TTL {ttl:.0f}s")
            continue
        what = "no expiry" if ttl is None else f"fixed TTL {ttl:.0f}s"
        results[name] = _run_one(ctx, Mode(name, policy=policy, ttl=ttl, label=f"{label}, {what}"), rcfg,
                                 f"{stage}: {name}")
        results[name].compact()
    return label, policy


def _run_size(ctx: _Context, pair: SizePair) -> SizeRun:
    """Every configuration at one size pair."""
    cfg, wanted = ctx.cfg, ctx.wanted
    rcfg = _size_config(ctx, pair)
    meta: dict[str, Any] = {"size": pair.name, "l1_share": pair.l1_share,
                            "l2_share": pair.l2_share if cfg.l2 else None, "l1_bytes": rcfg.l1_bytes,
                            "l2_bytes": rcfg.l2_bytes, "invalidate_share": cfg.invalidate_share}
    results: dict[str, ReplayResult] = {}
    keep = pair.name == cfg.default_size
    for name in ("no-cache", "lru-ttl", "heuristic"):
        if name not in wanted:
            continue
        if name == "no-cache" and ctx.nocache is not None:  # the same at every size: replayed once
            results[name] = ctx.nocache
            continue
        results[name] = _run_one(ctx, ctx.modes[name], rcfg, f"{pair.name}: {name}")
        if name == "no-cache":
            ctx.nocache = results[name]
    if "heuristic-ttl" in wanted or "adaptive-ttl" in wanted:
        label, policy = _frontier(ctx, results, rcfg, pair.name)
        meta["frontier_heuristic"] = label
        meta["frontier_mode"] = "lru-ttl" if label == "LRU" else "heuristic"
        if "adaptive-ttl" in wanted:
            mode = Mode("adaptive-ttl", policy=policy, ttl=cfg.adaptive.max_ttl, ttl_learner=_learner(cfg),
                        label=f"{label} + change-rate TTL")
            results["adaptive-ttl"] = _run_one(ctx, mode, rcfg, f"{pair.name}: adaptive-ttl")
    for name in ("learned", "learned-adaptive-ttl"):
        if name in wanted and name in ctx.modes:
            results[name] = _run_one(ctx, ctx.modes[name], rcfg, f"{pair.name}: {name}")
    if any(m in wanted for m in ("full", "full-offline", "oracle")):
        ctx.progress(f"{pair.name}: choose the shipped policy", 0, 1)
        choice = _choose_shipped(cfg, ctx.validation, pair, ctx.candidates, ctx.latency)
        meta["shipped"] = choice
        ctx.shipped = _shipped_modes(cfg, choice["chosen"], ctx.candidates[choice["chosen"]])
        for name in ("full-offline", "full", "oracle"):
            if name in wanted:
                results[name] = _run_one(ctx, ctx.shipped[name], rcfg, f"{pair.name}: {name}")
    for name, result in results.items():
        if not keep or name not in ("learned", "heuristic", "full"):
            result.compact()  # memory: only the miss breakdown still needs per-request records
    if keep:
        ctx.rcfg = rcfg
    return SizeRun(meta, results)


def _default_size_extras(ctx: _Context, run: SizeRun, meta: dict[str, Any]) -> None:
    """At the default size: the miss breakdown, and the frontier at the other invalidation shares."""
    results = run.results
    if "full" in results and ("learned" in results or "heuristic" in results):
        without = results.get("learned") or results["heuristic"]
        meta["miss_breakdown"] = miss_breakdown(ctx.trace, without, results["full"], ctx.predictor, ctx.assets)
    for result in results.values():
        result.compact()
    sweep: dict[str, Any] = {}
    pair = next(p for p in ctx.cfg.sizes if p.name == ctx.cfg.default_size)
    for share in ctx.cfg.invalidate_sweep:
        rcfg = _size_config(ctx, pair, share)
        rows: dict[str, ReplayResult] = {}
        _, policy = _frontier(ctx, rows, rcfg, f"invalidate {share}", run.meta.get("frontier_mode", "heuristic"))
        rows["adaptive-ttl"] = _run_one(ctx, Mode("adaptive-ttl", policy=policy, ttl=ctx.cfg.adaptive.max_ttl,
                                                  ttl_learner=_learner(ctx.cfg)), rcfg, f"invalidate {share}")
        if "full" in ctx.shipped:
            rows["full"] = _run_one(ctx, ctx.shipped["full"], rcfg, f"invalidate {share}: full")
        table = [r.summary() for r in rows.values()]
        sweep[f"{share:g}"] = {"table": table, "vs_frontier": versus_frontier(table)}
    if sweep:
        meta["invalidation_sweep"] = sweep


def _threshold_sweep(ctx: _Context, default: SizeRun) -> list[dict[str, Any]]:
    cfg = ctx.cfg
    if not cfg.sweep or "full" not in ctx.shipped or ctx.rcfg is None:
        return []
    sweep_trace = _truncate(ctx.trace, cfg.sweep_max_events)
    full = ctx.shipped["full"]
    without = Mode("without", policy=full.policy, ttl=full.ttl, ttl_learner=full.ttl_learner)
    base = replay(sweep_trace, without, _quiet(ctx.rcfg), ctx.predictor, ctx.assets).summary()
    out: list[dict[str, Any]] = []
    for k, threshold in enumerate(cfg.sweep):
        ctx.progress("threshold sweep", k, len(cfg.sweep))
        mode = Mode(f"full@{threshold}", policy=full.policy, ttl=full.ttl, warming="predictor",
                    threshold=threshold, ttl_learner=full.ttl_learner)
        row = replay(sweep_trace, mode, _quiet(ctx.rcfg), ctx.predictor, ctx.assets).summary()
        row["threshold"] = threshold
        row["misses_removed"] = misses_removed(row["hit_rate"], base["hit_rate"])
        out.append(row)
    ctx.progress("threshold sweep", len(cfg.sweep), len(cfg.sweep))
    return out


def _quiet(rcfg: ReplayConfig) -> ReplayConfig:
    return ReplayConfig(rcfg.l1_bytes, rcfg.l2_bytes, rcfg.latency, rcfg.warmer, rcfg.seed,
                        invalidate_share=rcfg.invalidate_share)


def _truncate(trace: PreparedTrace, max_events: int | None) -> PreparedTrace:
    if max_events is None or len(trace.events) <= max_events:
        return trace
    ev = trace.events
    cut = Events(ev.times[:max_events], ev.keys[:max_events], ev.sizes[:max_events],
                 ev.sessions[:max_events], ev.pages[:max_events])
    end = cut.times[-1]
    return PreparedTrace(trace.name, trace.train, trace.validation, cut, min(trace.warmup, max_events // 2),
                         trace.sizes, [u for u in trace.updates if u[0] <= end])
