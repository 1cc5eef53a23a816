"""The comparison every figure and table comes from: one trace, six configurations, a threshold sweep.

Steps: split the trace by time (``workload.prepare``); train the page predictor and the asset model on
the training sessions, the learned cache policy on the training requests; then replay the rest under
each configuration on the same events and the same origin latency model:

- ``no-cache``: every request goes to the origin;
- ``lru-ttl`` ("before ML"): LRU with a fixed 300 s TTL;
- ``heuristic``: the cache's S3-FIFO policy;
- ``learned``: the learned optimizer policy, no warming;
- ``full``: learned policy (or the heuristic if the optimizer is unavailable) + predictive warming;
- ``oracle``: the full cache, but the warmer preloads exactly each session's next request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from precache.defaults import WARMING_THRESHOLD
from precache.models import build_predictor
from precache.scoring import misses_removed
from precache.sim.analysis import miss_breakdown
from precache.sim.metrics import ReplayResult
from precache.sim.origin import LatencyModel
from precache.sim.policies import PolicyFactory, lru, s3fifo, train_learned_policy
from precache.sim.replay import Mode, ReplayConfig, replay
from precache.sim.workload import PreparedTrace, prepare
from precache.traces.model import Request
from precache.traces.paths import normalize_path
from precache.warming.assets import AssetModel
from precache.warming.warmer import WarmerConfig

Progress = Callable[[str, int, int], None]
SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# The figures this system was specified with; every before/after view prints ours next to them.
SPECIFIED_CLAIMS = {"hit_rate": "95% -> 99.5%", "cold_starts": "-90%", "avg_load_ms": "120 -> 30 ms (-75%)",
                    "accuracy": "87%", "preload_efficiency": "82%"}


@dataclass(slots=True)
class ExperimentConfig:
    train_fraction: float = 0.5
    warmup_fraction: float = 0.1
    predictor: str = "ppm"
    learned_policy: bool = True
    l1_fraction: float = 0.05
    """L1 size as a fraction of the distinct bytes the replay touches."""
    l2: bool = True
    fixed_ttl: float = 300.0
    ttl: float = 3600.0
    target_page_ms: float = 120.0
    threshold: float = WARMING_THRESHOLD
    sweep: Sequence[float] = SWEEP
    sweep_max_events: int | None = 200_000
    warmer: WarmerConfig = field(default_factory=WarmerConfig)
    seed: int = 0


@dataclass(slots=True)
class Experiment:
    trace: str
    results: dict[str, ReplayResult]
    sweep: list[dict[str, Any]]
    meta: dict[str, Any]

    def table(self) -> list[dict[str, Any]]:
        return [r.summary() for r in self.results.values()]

    def headline(self) -> Headline | None:
        """Before ML (``lru-ttl``) vs precache full, or None when either was not run."""
        rows = {row["mode"]: row for row in self.table()}
        before, after = rows.get("lru-ttl"), rows.get("full")
        if before is None or after is None:
            return None
        return Headline(before, after, rows.get("learned") or rows.get("heuristic") or before)


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


def run_experiment(
    requests: Sequence[Request],
    name: str,
    config: ExperimentConfig | None = None,
    updates: Sequence[tuple[float, str]] = (),
    progress: Progress = _noop,
    modes: Sequence[str] = ("no-cache", "lru-ttl", "heuristic", "learned", "full", "oracle"),
) -> Experiment:
    cfg = config or ExperimentConfig()
    meta: dict[str, Any] = {"trace": name, "requests": len(requests)}
    t0 = time.perf_counter()
    trace = prepare(requests, name, cfg.train_fraction, cfg.warmup_fraction, updates=updates)
    meta["prepare_seconds"] = time.perf_counter() - t0
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
    learned: PolicyFactory | None = None
    if cfg.learned_policy and ("learned" in modes or "full" in modes):
        progress("train cache policy", 0, 1)
        t0 = time.perf_counter()
        n_train = int(len(requests) * cfg.train_fraction)
        try:
            ordered = sorted(requests, key=lambda r: r.time)[:n_train]
            learned, info = train_learned_policy(ordered, [u for u in updates if u[0] <= ordered[-1].time])
            meta["learned_policy"] = {k: v for k, v in info.items() if isinstance(v, int | float | str)}
        except Exception as exc:  # the optimizer is optional: say so and fall back
            meta["learned_policy_error"] = repr(exc)
        meta["policy_fit_seconds"] = time.perf_counter() - t0
        progress("train cache policy", 1, 1)
    touched = {trace.events.keys[i] for i in range(len(trace.events))}
    distinct_bytes = sum(trace.sizes.get(k, 0) for k in touched)
    latency = LatencyModel.calibrated(trace.page_sizes, target=cfg.target_page_ms / 1000)
    meta.update(distinct_bytes=distinct_bytes, l1_bytes=int(distinct_bytes * cfg.l1_fraction), l2=cfg.l2,
                latency={"base_ms": latency.base * 1000, "bandwidth": latency.bandwidth,
                         "sigma": latency.sigma})
    warm = WarmerConfig(**{f: getattr(cfg.warmer, f) for f in WarmerConfig.__slots__})
    warm.threshold = cfg.threshold
    rcfg = ReplayConfig(l1_bytes=max(1, int(distinct_bytes * cfg.l1_fraction)),
                        l2_bytes=1 if cfg.l2 else None, latency=latency, warmer=warm, seed=cfg.seed)
    best_policy = learned or s3fifo
    all_modes = {
        "no-cache": Mode("no-cache", cache=False, label="no cache"),
        "lru-ttl": Mode("lru-ttl", policy=lru, ttl=cfg.fixed_ttl,
                        label=f"LRU + fixed TTL {cfg.fixed_ttl:.0f}s (before ML)"),
        "heuristic": Mode("heuristic", policy=s3fifo, ttl=cfg.ttl, label="S3-FIFO heuristic"),
        "learned": Mode("learned", policy=best_policy, ttl=cfg.ttl,
                        label="learned policy, no warming" if learned else "learned policy (unavailable: S3-FIFO)"),
        "full": Mode("full", policy=best_policy, ttl=cfg.ttl, warming="predictor",
                     label="precache full (learned policy + warming)"),
        "oracle": Mode("oracle", policy=best_policy, ttl=cfg.ttl, warming="oracle",
                       label="oracle warming (next request known)"),
    }
    results: dict[str, ReplayResult] = {}
    for mode_name in modes:
        mode = all_modes[mode_name]

        def tick(done: int, total: int, stage: str = f"replay {mode_name}") -> None:
            progress(stage, done, total)

        rcfg.progress = tick
        results[mode_name] = replay(trace, mode, rcfg, predictor, assets)
        progress(f"replay {mode_name}", len(trace.events), len(trace.events))
    sweep: list[dict[str, Any]] = []
    if cfg.sweep:
        sweep_trace = _truncate(trace, cfg.sweep_max_events)
        base = replay(sweep_trace, all_modes["learned"], _quiet(rcfg), predictor, assets).summary()
        for k, threshold in enumerate(cfg.sweep):
            progress("threshold sweep", k, len(cfg.sweep))
            mode = Mode(f"full@{threshold}", policy=best_policy, ttl=cfg.ttl, warming="predictor",
                        threshold=threshold)
            row = replay(sweep_trace, mode, _quiet(rcfg), predictor, assets).summary()
            row["threshold"] = threshold
            row["misses_removed"] = misses_removed(row["hit_rate"], base["hit_rate"])
            sweep.append(row)
        progress("threshold sweep", len(cfg.sweep), len(cfg.sweep))
    if "full" in results and ("learned" in results or "heuristic" in results):
        without = results.get("learned") or results["heuristic"]
        meta["miss_breakdown"] = miss_breakdown(trace, without, results["full"], predictor, assets)
    meta["total_seconds"] = sum(r.wall_seconds for r in results.values())
    return Experiment(name, results, sweep, meta)


def _quiet(rcfg: ReplayConfig) -> ReplayConfig:
    return ReplayConfig(rcfg.l1_bytes, rcfg.l2_bytes, rcfg.latency, rcfg.warmer, rcfg.seed)


def _truncate(trace: PreparedTrace, max_events: int | None) -> PreparedTrace:
    if max_events is None or len(trace.events) <= max_events:
        return trace
    ev = trace.events
    from precache.sim.workload import Events

    cut = Events(ev.times[:max_events], ev.keys[:max_events], ev.sizes[:max_events],
                 ev.sessions[:max_events], ev.pages[:max_events])
    end = cut.times[-1]
    return PreparedTrace(trace.name, trace.train, trace.validation, cut, min(trace.warmup, max_events // 2),
                         trace.sizes, [u for u in trace.updates if u[0] <= end])
