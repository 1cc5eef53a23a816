"""The HTML report a person opens: the table, load-time CDF, hit rate over time, threshold trade-off.

Figures are matplotlib PNGs embedded as base64, so ``index.html`` is one self-contained file (a
``report.json`` with the raw numbers is written beside it).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from precache.sim.experiment import SPECIFIED_CLAIMS, Experiment

COLUMNS: list[tuple[str, str, str]] = [
    ("label", "configuration", "s"),
    ("hit_rate", "hit rate", "%"),
    ("hit_or_joined_rate", "hit or joined", "%"),
    ("byte_hit_rate", "byte hit rate", "%"),
    ("cold_starts_per_min", "cold starts/min", ".2f"),
    ("avg_load_ms", "avg load ms", ".1f"),
    ("p95_load_ms", "p95 load ms", ".1f"),
    ("online_hr5", "online HR@5", "%"),
    ("preload_efficiency", "preload efficiency", "%"),
    ("predictive_hit_rate", "predictive hit rate", "%"),
    ("extra_origin_requests", "preload origin req (gross)", "d"),
    ("net_extra_origin_requests", "net extra origin req", "d"),
    ("net_extra_origin_bytes", "net extra origin MB", "mb"),
    ("requests_per_second", "replay req/s", ".0f"),
]


def fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "%":
        return f"{value * 100:.1f}%"
    if kind == "mb":
        return f"{value / 1e6:.1f}"
    if kind == "d":
        return f"{int(value):,}"
    if kind == "s":
        return str(value)
    return format(value, kind)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def figures(exp: Experiment) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in exp.results.values():
        x, y = r.latency_cdf()
        ax.plot(x, y, label=r.label)
    ax.set_xscale("log")  # every load time is > 0: an L1 hit costs ~0.2 ms, an L2 hit ~1.5 ms
    ax.set_xlim(left=0.1)
    ax.set_xlabel("load time (ms, log scale)")
    ax.set_ylabel("fraction of requests ≤ x")
    ax.set_title(f"Load-time CDF — {exp.trace}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    out["cdf"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in exp.results.values():
        if r.mode == "no-cache":
            continue
        x, y = r.hit_rate_series(buckets=30)
        ax.plot(x, y, label=r.label, marker=".", linewidth=1.2)
    ax.set_xlabel("minutes into the replay")
    ax.set_ylabel("hit rate (per time bucket)")
    ax.set_title(f"Hit rate over time — {exp.trace}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    out["hit_rate"] = _png(fig)
    plt.close(fig)

    if exp.sweep:
        fig, ax = plt.subplots(figsize=(7, 4))
        eff = [row["preload_efficiency"] or 0.0 for row in exp.sweep]
        hr = [row["hit_rate"] for row in exp.sweep]
        ax.plot(eff, hr, marker="o")
        for row, ex, hy in zip(exp.sweep, eff, hr, strict=True):
            ax.annotate(f"{row['threshold']:.1f}", (ex, hy), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axvline(0.8, color="#999", linestyle="--", linewidth=1, label="efficiency goal 0.8")
        ax.legend(fontsize=7)
        ax.set_xlabel("preload efficiency (used / preloaded)")
        ax.set_ylabel("hit rate")
        ax.set_title("Warming threshold trade-off (labels: threshold)")
        ax.grid(alpha=0.3)
        out["sweep"] = _png(fig)
        plt.close(fig)
    return out


def _table_html(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(row.get(key), kind))}</td>" for key, _, kind in COLUMNS) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _sweep_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = [("threshold", "threshold", ".1f"), ("hit_rate", "hit rate", "%"),
            ("misses_removed", "misses removed vs no warming", "%"),
            ("preload_efficiency", "preload efficiency", "%"), ("extra_origin_requests", "extra origin req", "d"),
            ("extra_origin_bytes", "extra origin MB", "mb"), ("avg_load_ms", "avg load ms", ".1f")]
    head = "".join(f"<th>{t}</th>" for _, t, _ in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(k), f)}</td>" for k, _, f in cols) + "</tr>" for r in rows)
    return f"<h3>Threshold sweep</h3><table><tr>{head}</tr>{body}</table>"


def _headline_html(exp: Experiment) -> str:
    """Before (LRU + fixed TTL) vs after (precache full), with the claims this system was specified with."""
    h = exp.headline()
    if h is None:
        return ""
    before, after = h.before, h.after

    def change(a: float, b: float) -> str:
        return f"{(b / a - 1) * 100:+.0f}%" if a else "–"

    rows = [
        ("hit rate", fmt(before["hit_rate"], "%"), fmt(after["hit_rate"], "%"),
         f"{(after['hit_rate'] - before['hit_rate']) * 100:+.1f} pts", "95% → 99.5%"),
        ("cold starts / min", fmt(before["cold_starts_per_min"], ".2f"), fmt(after["cold_starts_per_min"], ".2f"),
         change(before["cold_starts_per_min"], after["cold_starts_per_min"]), "−90%"),
        ("average load time", f"{before['avg_load_ms']:.1f} ms", f"{after['avg_load_ms']:.1f} ms",
         change(before["avg_load_ms"], after["avg_load_ms"]), "120 → 30 ms (−75%)"),
        ("p95 load time", f"{before['p95_load_ms']:.1f} ms", f"{after['p95_load_ms']:.1f} ms",
         change(before["p95_load_ms"], after["p95_load_ms"]), ""),
        ("prediction accuracy (online HR@5)", "–", fmt(after["online_hr5"], "%"), "", "87%"),
        ("preload efficiency", "–", fmt(after["preload_efficiency"], "%"), "", "82%"),
        ("misses removed by warming", "–",
         fmt(h.misses_removed_by_warming, "%"), "", "goal ≥ 30%"),
        ("extra origin requests (warming)", "0", fmt(after["extra_origin_requests"], "d"),
         fmt(after["extra_origin_bytes"], "mb") + " MB", ""),
    ]
    head = "<tr><th>metric</th><th>before ML (LRU + TTL)</th><th>precache full</th><th>change</th>" \
           "<th>specified claim</th></tr>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='headline'>{head}{body}</table>"


def _breakdown_html(bd: dict[str, Any] | None) -> str:
    if not bd:
        return ""
    head = "<tr><th>why it missed (without warming)</th><th>misses</th><th>share</th>" \
           "<th>removed by warming</th><th>removed share</th><th>added by warming</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(r['class'])}</td><td>{r['misses']:,}</td><td>{fmt(r['share'], '%')}</td>"
        f"<td>{r['removed']:,}</td><td>{fmt(r['removed_share'], '%')}</td><td>{r['added']:,}</td></tr>"
        for r in bd["rows"]
    )
    note = (f"<p>{bd['misses']:,} misses without warming; {bd['improvable_misses']:,} of them are reachable "
            f"by this warmer (known mid-session page in the predictor's top 5, or an asset the asset model links "
            f"to the page, requested after it). Warming removed {bd['removed']:,} (pages {bd['removed_pages']:,}, "
            f"assets {bd['removed_assets']:,}) and added {bd['added']:,}: net "
            f"{fmt(bd['removed_of_all_misses'], '%')} of all misses, {fmt(bd['removed_of_improvable'], '%')} "
            f"of the reachable ones.</p>")
    return f"<h3>Where the misses come from</h3>{note}<table>{head}{body}</table>"


def _facts_html(meta: dict[str, Any]) -> str:
    keys = [("requests", "requests"), ("train_sessions", "training sessions"), ("replayed", "replayed"),
            ("measured", "measured"), ("measured_minutes", "minutes measured"), ("predictor", "predictor"),
            ("predictor_fit_seconds", "predictor fit s"), ("policy_fit_seconds", "cache policy fit s"),
            ("l1_bytes", "L1 bytes"), ("total_seconds", "replay s (all configs)")]
    items = []
    for key, title in keys:
        value = meta.get(key)
        if value is None:
            continue
        text = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)
        items.append(f"<span><b>{html.escape(title)}</b> {html.escape(text)}</span>")
    return "<p class='facts'>" + " · ".join(items) + "</p>"


def write_report(experiments: list[Experiment], out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html`` (self-contained) and ``out_dir/report.json``; returns the html path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>precache replay report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:48%;margin:4px}"
        "th{background:#f3f4f6}table.headline td{font-size:15px}table.headline td:nth-child(3){font-weight:600}"
        ".facts{color:#555;font-size:13px}",
        "</style></head><body><h1>precache: before / after</h1>",
        "<p>Discrete-event replay of each trace through the real <code>PredictiveCache</code> on a virtual clock;"
        " origin latency = base + size/bandwidth with lognormal jitter, calibrated so an uncached page costs"
        " about 120 ms, one draw per request shared by every configuration. Models are trained on the first part"
        " of the trace; that part's last slice is replayed uncounted through every cache as warm-up, the rest is"
        " measured. Every configuration has the same TTL and the same bounded L1 and L2 (LRU, like Redis'"
        " allkeys-lru), except the rows that say otherwise.</p>",
    ]
    data: dict[str, Any] = {"claims": SPECIFIED_CLAIMS, "traces": {}}
    for exp in experiments:
        figs = figures(exp)
        parts.append(f"<h2>{html.escape(exp.trace)}</h2>")
        parts.append(_facts_html(exp.meta))
        parts.append(_headline_html(exp))
        parts.append(f"<h3>Every configuration (size {html.escape(str(exp.meta.get('size', '')))}: "
                     f"L1 {exp.meta.get('l1_bytes', 0):,} B, L2 {exp.meta.get('l2_bytes') or 0:,} B)</h3>")
        parts.append(_table_html(exp.table()))
        for size, run in exp.sizes.items():
            if run.results is exp.results:
                continue
            parts.append(f"<h3>Size {html.escape(size)}: L1 {run.meta['l1_bytes']:,} B, "
                         f"L2 {run.meta['l2_bytes'] or 0:,} B</h3>")
            parts.append(_table_html(run.table()))
        parts.append(_breakdown_html(exp.meta.get("miss_breakdown")))
        parts.append(_sweep_html(exp.sweep))
        for key in ("cdf", "hit_rate", "sweep"):
            if key in figs:
                parts.append(f"<img alt='{key}' src='data:image/png;base64,{figs[key]}'>")
        data["traces"][exp.trace] = exp.as_json()
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("".join(parts), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return path
