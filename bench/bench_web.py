"""Benchmark of precache in a web app: navigation times in real Chromium on the example site.

Run: ``nice -n 10 .venv/bin/python bench/bench_web.py`` (about 8 minutes with the defaults; needs Debian's
``chromium`` and ../shared/data/msnbc-anonymous-web). Writes ``bench/results/web.json`` and prints a table.

What it measures: visitors of the MSNBC click trace (after the 20,000 used for training), mapped onto the
example site's pages (``examples/site/trace.py``), replayed in headless Chromium by clicking links, one fresh
browser context per visitor (cold browser cache), ``--think`` seconds on each page. Every page of the site
waits ``--delay`` seconds on a simulated slow query. Four servers run side by side, one per configuration:

* ``none``: the bare site;
* ``cache``: precache's middleware caching responses (HTTP rules), no predictor: the fair baseline for what
  prediction adds (same cache size as the next two);
* ``warm``: (cache) plus the predictor (Markov, trained on 20,000 mapped visitors) warming the server cache;
* ``prefetch``: (warm) plus browser prefetch hints (Speculation Rules).

Fairness: every configuration replays the same visitors with the same think time against the same database,
starts cold, and the configurations take turns visitor by visitor (the order rotates), so machine noise spreads
evenly. Figures: Navigation Timing ``duration`` (start to load end) and ``responseStart`` of each *clicked*
navigation (the first page of a visit is typed, never predicted; it is reported separately); the share served
from the browser's prefetch cache (``deliveryType == "navigational-prefetch"``); and, from the server's own
request log, the requests prefetching caused: prefetches nobody navigated to and the rules fetches.
The machine (2 cores) is shared with other work: one run, ratios within the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from examples.site.app import build_site  # noqa: E402
from examples.site.harness import Navigation, RequestLog, replay, serving  # noqa: E402
from examples.site.trace import as_sessions, msnbc_sessions  # noqa: E402

from shared_traces import MSNBC  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "web.json"
CONFIGS = ("none", "cache", "warm", "prefetch")
TRAIN_VISITORS = 20_000


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median_ms": None, "p95_ms": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1)}


def server_counts(log: RequestLog, spans: list[tuple[int, int, list[Navigation]]]) -> dict[str, int]:
    """Requests the server received, and which prefetches were never navigated to within their visit."""
    unused = 0
    for start, end, navigations in spans:
        entries = log.entries[start:end]
        visited = {n.page for n in navigations}
        unused += sum(1 for e in entries if e.purpose == "prefetch" and e.path not in visited)
    pages = log.pages(None)
    return {
        "page_requests": len(pages),
        "prefetch_requests": len(log.pages("prefetch")),
        "prefetch_unused": unused,
        "rules_requests": sum(1 for e in log.entries if e.path.startswith("/_precache/")),
        "answered_from_server_cache": sum(1 for e in log.entries if e.precache == "hit"),
    }


def summarize(navigations: list[Navigation]) -> dict[str, Any]:
    clicked = [n for n in navigations if n.clicked]
    typed = [n for n in navigations if not n.clicked]
    served = sum(1 for n in clicked if n.delivery == "navigational-prefetch")
    return {
        "clicked_navigations": len(clicked),
        "clicked": {**quantiles([n.duration_ms for n in clicked]),
                    "response_start": quantiles([n.response_start_ms for n in clicked])},
        "first_page": quantiles([n.duration_ms for n in typed]),
        "prefetch_served_share": round(served / len(clicked), 3) if clicked else None,
        "delivery": {kind: sum(1 for n in clicked if n.delivery == kind)
                     for kind in sorted({n.delivery for n in clicked})},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=30)
    parser.add_argument("--think", type=float, default=0.5, help="seconds on each page")
    parser.add_argument("--delay", type=float, default=0.12, help="simulated query delay per page (s)")
    parser.add_argument("--threshold", type=float, default=0.25, help="warming and hint threshold")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None or not MSNBC.is_file():
        print(f"needs Debian's chromium and {MSNBC}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from precache.cache import MemoryTier, PredictiveCache
    from precache.models import build_predictor

    began = time.monotonic()
    predictor = build_predictor("markov")
    predictor.fit(list(as_sessions(msnbc_sessions(MSNBC, limit=TRAIN_VISITORS))))
    visitors = [s for s in msnbc_sessions(MSNBC, limit=20 * args.visitors, skip=TRAIN_VISITORS, min_length=2)
                if len(s) <= 12][: args.visitors]
    workdir = Path(tempfile.mkdtemp(prefix="bench-web-"))
    sites: dict[str, Any] = {}
    for name in CONFIGS:
        cache = PredictiveCache(MemoryTier(max_bytes=64 * 1024 * 1024)) if name != "none" else None
        sites[name] = build_site(workdir / "site.db", name, delay=args.delay,  # type: ignore[arg-type]
                                 predictor=predictor if name in ("warm", "prefetch") else None, cache=cache,
                                 threshold=args.threshold)
    logs = {name: RequestLog(site) for name, site in sites.items()}
    navigations: dict[str, list[Navigation]] = {name: [] for name in CONFIGS}
    spans: dict[str, list[tuple[int, int, list[Navigation]]]] = {name: [] for name in CONFIGS}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            with serving(logs["none"]) as b0, serving(logs["cache"]) as b1, serving(logs["warm"]) as b2, \
                    serving(logs["prefetch"]) as b3:
                bases = dict(zip(CONFIGS, (b0, b1, b2, b3), strict=True))
                for i, pages in enumerate(visitors):
                    order = CONFIGS[i % 4:] + CONFIGS[: i % 4]
                    for name in order:
                        start = len(logs[name].entries)
                        done = replay(browser, bases[name], logs[name], pages, think=args.think)
                        time.sleep(0.3)  # let the last page's prefetches land in this visit's span
                        spans[name].append((start, len(logs[name].entries), done))
                        navigations[name] += done
                    print(f"  visitor {i + 1}/{len(visitors)} ({len(pages)} pages)", file=sys.stderr, flush=True)
        finally:
            browser.close()
    configs: dict[str, Any] = {}
    for name in CONFIGS:
        configs[name] = {**summarize(navigations[name]), "server": server_counts(logs[name], spans[name])}
        stats = getattr(sites[name], "stats", None)
        if stats is not None:
            looked_up = stats["hit"] + stats["miss"]
            configs[name]["server"]["cache_hit_ratio"] = round(stats["hit"] / looked_up, 3) if looked_up else None
            warmer = getattr(sites[name], "warmer", None)
            if warmer is not None:
                configs[name]["server"]["warmer"] = {k: warmer.stats.as_dict()[k] for k in
                                                     ("started", "completed", "used", "predictive_hits", "efficiency")}
    base = configs["none"]["clicked"]["median_ms"]
    ratios = {name: round(configs[name]["clicked"]["median_ms"] / base, 3) if base else None for name in CONFIGS}
    result = {
        "bench": "web",
        "command": "nice -n 10 .venv/bin/python bench/bench_web.py " + " ".join(argv or sys.argv[1:]),
        "params": {"visitors": len(visitors), "think_s": args.think, "delay_s": args.delay,
                   "threshold": args.threshold, "predictor": "markov", "train_visitors": TRAIN_VISITORS,
                   "trace": "msnbc990928 mapped onto examples/site", "browser": "Debian chromium, headless"},
        "configs": configs,
        "median_vs_none": ratios,
        "seconds": round(time.monotonic() - began, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "shared": True},
    }
    print(f"\n{'config':<10}{'clicked':>8}{'median ms':>11}{'p95 ms':>9}{'vs none':>9}{'TTFB med':>10}"
          f"{'prefetch-served':>17}{'page req':>10}{'prefetch req':>14}{'unused':>8}{'rules':>7}")
    for name in CONFIGS:
        c = configs[name]
        s = c["server"]
        print(f"{name:<10}{c['clicked_navigations']:>8}{c['clicked']['median_ms']:>11}{c['clicked']['p95_ms']:>9}"
              f"{ratios[name]:>9}{c['clicked']['response_start']['median_ms']:>10}"
              f"{c['prefetch_served_share']:>17}{s['page_requests']:>10}{s['prefetch_requests']:>14}"
              f"{s['prefetch_unused']:>8}{s['rules_requests']:>7}")
    print("machine: 2 cores shared with other helpers' work; one run; configurations interleaved visitor by visitor")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
