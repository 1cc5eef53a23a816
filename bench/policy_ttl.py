"""bench_policies' TTL experiment (unbounded cache, expiry only): fixed TTLs against the offline model's
predicted time-to-change, and the plot (``policies_ttl.png``). The replay's frontier (bench_replay,
``heuristic-ttl-*`` against the change-rate TTL) is the headline; this is the model's view."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from precache.models.optimizer.features import FeatureTracker
from precache.models.optimizer.labels import CacheTrace
from precache.models.optimizer.model import OptimizerModel


def ttl_experiment(trace: CacheTrace, start: int, model: OptimizerModel, max_requests: int) -> dict[str, Any]:
    """Unbounded cache, expiry only. A read before expiry is a hit; it is a stale serve when the content
    version changed since the copy was fetched. Fixed TTLs are swept; the adaptive TTL sweeps its
    scale factor over the model's predicted time-to-change (per object, at fetch time), optionally with
    revalidation of hits whose invalidation probability passes 0.5."""
    end = min(len(trace), start + max_requests)
    tr = FeatureTracker(stream_counts=model.stream_counts)
    last_v = warm_tracker(tr, trace, start)
    post: list[list[float]] = []
    pre: list[list[float]] = []
    missing = [-1.0] * len(FeatureTracker().row_list(tr.observe("__x__", 0.0), 0.0))
    tr.objects.pop("__x__", None)
    for i in range(start, end):
        k = trace.keys[i]
        t = float(trace.times[i])
        v = int(trace.versions[i])
        st = tr.get(k)
        pre.append(tr.row_list(st, t) if st is not None else missing)
        if k in last_v and last_v[k] != v:
            tr.observe_update(k, t)
        last_v[k] = v
        st = tr.observe(k, t, int(trace.sizes[i]), trace.clients[i])
        post.append(tr.row_list(st, t))
    p_post = model.predict(np.asarray(post, dtype=np.float32))
    p_pre = model.predict(np.asarray(pre, dtype=np.float32))
    change_s = p_post.seconds_to_change()
    inval = p_pre.invalidation
    keys = trace.keys[start:end]
    times = trace.times[start:end].tolist()
    versions = trace.versions[start:end].tolist()

    def sim(ttl_of: Callable[[int], float], revalidate: bool = False) -> tuple[float, float]:
        cache: dict[str, tuple[float, int]] = {}
        hits = stale = 0
        for i, k in enumerate(keys):
            t = times[i]
            c = cache.get(k)
            if c is not None and t < c[0] and not (revalidate and inval[i] >= 0.5):
                hits += 1
                if c[1] != versions[i]:
                    stale += 1
                continue
            cache[k] = (t + ttl_of(i), versions[i])
        n = max(len(keys), 1)
        return hits / n, stale / n

    fixed_ttls = [1, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 10**9]
    fixed = []
    for T in fixed_ttls:
        def fixed_ttl(_i: int, T: int = T) -> float:
            return float(T)
        h, s = sim(fixed_ttl)
        fixed.append({"ttl_s": T, "hit_rate": h, "stale_rate": s})
    adaptive = []
    adaptive_reval = []
    for scale in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0):
        def ttl_of(i: int, scale: float = scale) -> float:
            return float(min(86400.0 * 3, max(1.0, scale * change_s[i])))
        h, s = sim(ttl_of)
        adaptive.append({"scale": scale, "hit_rate": h, "stale_rate": s})
        h, s = sim(ttl_of, revalidate=True)
        adaptive_reval.append({"scale": scale, "hit_rate": h, "stale_rate": s})
    return {"requests": len(keys), "change_signal": trace.change_signal, "fixed": fixed, "adaptive": adaptive,
            "adaptive_with_revalidation": adaptive_reval,
            "comparison": compare_curves(fixed, adaptive), "comparison_with_revalidation":
                compare_curves(fixed, adaptive_reval)}


def compare_curves(fixed: list[dict[str, Any]], adaptive: list[dict[str, Any]]) -> list[dict[str, float]]:
    """For each adaptive point, the best fixed-TTL hit rate at a stale rate no higher (interpolated
    on the fixed curve's upper envelope)."""
    pts = sorted((f["stale_rate"], f["hit_rate"]) for f in fixed)
    xs = np.array([p[0] for p in pts])
    ys = np.maximum.accumulate(np.array([p[1] for p in pts]))
    out = []
    for a in adaptive:
        s = a["stale_rate"]
        fixed_hit = float(np.interp(s, xs, ys)) if s >= xs[0] else 0.0
        out.append({"stale_rate": s, "adaptive_hit_rate": a["hit_rate"], "fixed_hit_rate_same_stale": fixed_hit,
                    "gain": a["hit_rate"] - fixed_hit})
    return out


def warm_tracker(tracker: FeatureTracker, trace: CacheTrace, start: int) -> dict[str, int]:
    """Feed the first ``start`` requests (history only) to ``tracker``; return each key's last version."""
    last_v: dict[str, int] = {}
    for i in range(start):
        k = trace.keys[i]
        v = int(trace.versions[i])
        if k in last_v and last_v[k] != v:
            tracker.observe_update(k, float(trace.times[i]))
        last_v[k] = v
        tracker.observe(k, float(trace.times[i]), int(trace.sizes[i]), trace.clients[i])
    return last_v


def plot_ttl(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(k, v["ttl"]) for k, v in results.items() if "ttl" in v]
    if not items:
        return
    fig, axes = plt.subplots(1, len(items), figsize=(6 * len(items), 4.5), squeeze=False)
    for ax, (name, t) in zip(axes[0], items, strict=True):
        for key, label, style in (("fixed", "fixed TTL (sweep)", "o-"), ("adaptive", "learned TTL (scale sweep)", "s-"),
                                  ("adaptive_with_revalidation", "learned TTL + revalidation", "^-")):
            pts = sorted((p["stale_rate"], p["hit_rate"]) for p in t[key])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label, markersize=4)
        ax.set_xscale("symlog", linthresh=1e-4)
        ax.set_xlabel("stale-serve rate (per request)")
        ax.set_ylabel("hit rate")
        ax.set_title(f"{name} (change signal: {t['change_signal']})")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
