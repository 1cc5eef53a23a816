"""Benchmark of precache in a web app: navigation times in real Chromium on the example site.

Run: ``nice -n 10 .venv/bin/python bench/bench_web.py`` (about 16 minutes with the defaults; needs Debian's
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

Also (``overhead``): what the middleware itself costs per request, on a trivial ASGI app answering a fixed 4.5 KB
page (so rendering does not hide it) under uvicorn on loopback, one keep-alive client, requests in alternating
rounds: the bare app, the middleware answering from its cache (hit), and the middleware passing a request with a
login cookie through (bypass).
The browser part runs once per ``--latency-ms`` value (default 0 and 40): Chromium's DevTools network emulation
makes that the least time from sending a request to its response headers, as on a real network instead of
loopback (a minimum, not added to the server's own time). The top-level ``configs`` are the first value's; every
run is under ``runs``.
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


def trivial_app(body: bytes) -> Any:
    """An ASGI app answering every GET with the same cacheable HTML page, doing no work of its own."""
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"max-age=300")]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def overhead(rounds: int = 9, per_round: int = 500) -> dict[str, Any]:
    """Per-request latency of the bare trivial app vs the middleware's hit and bypass paths (see the doc),
    measured with the standard library's keep-alive client (the least client work per request)."""
    import http.client

    from precache.cache import PredictiveCache
    from precache.web import PrecacheMiddleware

    body = b"<html><body>" + b"<p>precache</p>" * 300 + b"</body></html>"
    bare = trivial_app(body)
    wrapped = PrecacheMiddleware(trivial_app(body), PredictiveCache())
    latencies: dict[str, list[float]] = {"bare": [], "hit": [], "bypass": []}
    session = "precache_sid=bench-session-0001"
    with serving(bare) as b0, serving(wrapped) as b1:
        targets = {"bare": (b0, {}), "hit": (b1, {"cookie": session}),
                   "bypass": (b1, {"cookie": f"{session}; login=alice"})}
        connections = {}
        for name, (base, _) in targets.items():
            host, port = base.removeprefix("http://").split(":")
            connections[name] = http.client.HTTPConnection(host, int(port), timeout=10)

        def get(name: str) -> None:
            conn = connections[name]
            conn.request("GET", "/page", headers=targets[name][1])
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"{name}: status {reply.status}")

        try:
            for name in CONFIGS_OVERHEAD:
                for _ in range(50):  # warm-up (and the one miss that fills the cache)
                    get(name)
            for r in range(rounds):
                for name in (CONFIGS_OVERHEAD[r % 3:] + CONFIGS_OVERHEAD[: r % 3]):
                    for _ in range(per_round):
                        t0 = time.perf_counter()
                        get(name)
                        latencies[name].append((time.perf_counter() - t0) * 1000)
        finally:
            for conn in connections.values():
                conn.close()
    out: dict[str, Any] = {}
    for name, values in latencies.items():
        ordered = sorted(values)
        out[name] = {"p50_ms": round(statistics.median(ordered), 3),
                     "p95_ms": round(ordered[round(0.95 * (len(ordered) - 1))], 3), "requests": len(ordered)}
    for name in ("hit", "bypass"):
        out[name]["p50_vs_bare"] = round(out[name]["p50_ms"] / out["bare"]["p50_ms"], 3)
    out["stats"] = dict(wrapped.stats)
    return out


CONFIGS_OVERHEAD = ("bare", "hit", "bypass")


def browser_run(browser: Any, visitors: list[list[str]], predictor: Any, args: argparse.Namespace,
                latency: float) -> dict[str, Any]:
    """One replay of every visitor on four fresh servers (see the module doc), with ``latency`` ms of
    emulated network round trip (Chromium's network emulation; 0 = plain loopback)."""
    from precache.cache import MemoryTier, PredictiveCache

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
    with serving(logs["none"]) as b0, serving(logs["cache"]) as b1, serving(logs["warm"]) as b2, \
            serving(logs["prefetch"]) as b3:
        bases = dict(zip(CONFIGS, (b0, b1, b2, b3), strict=True))
        for i, pages in enumerate(visitors):
            order = CONFIGS[i % 4:] + CONFIGS[: i % 4]
            for name in order:
                start = len(logs[name].entries)
                done = replay(browser, bases[name], logs[name], pages, think=args.think, latency_ms=latency)
                time.sleep(0.3)  # let the last page's prefetches land in this visit's span
                spans[name].append((start, len(logs[name].entries), done))
                navigations[name] += done
            print(f"  visitor {i + 1}/{len(visitors)} ({len(pages)} pages)", file=sys.stderr, flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
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
    return {"latency_ms": latency, "configs": configs, "median_vs_none": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=30)
    parser.add_argument("--think", type=float, default=0.5, help="seconds on each page")
    parser.add_argument("--delay", type=float, default=0.12, help="simulated query delay per page (s)")
    parser.add_argument("--threshold", type=float, default=0.25, help="warming and hint threshold")
    parser.add_argument("--latency-ms", type=lambda v: [float(x) for x in v.split(",")], default=[0.0, 40.0],
                        help="emulated network round trips to run, comma-separated (Chromium network emulation)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None or not MSNBC.is_file():
        print(f"needs Debian's chromium and {MSNBC}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from precache.models import build_predictor

    began = time.monotonic()
    cost = overhead()
    print(f"\n{'middleware overhead':<22}{'p50 ms':>9}{'p95 ms':>9}{'p50 vs bare':>13}")
    for name in CONFIGS_OVERHEAD:
        row = cost[name]
        print(f"{name:<22}{row['p50_ms']:>9}{row['p95_ms']:>9}{row.get('p50_vs_bare', 1.0):>13}")
    predictor = build_predictor("markov")
    predictor.fit(list(as_sessions(msnbc_sessions(MSNBC, limit=TRAIN_VISITORS))))
    visitors = [s for s in msnbc_sessions(MSNBC, limit=20 * args.visitors, skip=TRAIN_VISITORS, min_length=2)
                if len(s) <= 12][: args.visitors]
    runs = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            for latency in args.latency_ms:
                print(f"\nbrowser run, emulated latency {latency} ms", file=sys.stderr, flush=True)
                runs[latency] = browser_run(browser, visitors, predictor, args, latency)
        finally:
            browser.close()
    first = args.latency_ms[0]
    result = {
        "bench": "web",
        "command": "nice -n 10 .venv/bin/python bench/bench_web.py " + " ".join(argv or sys.argv[1:]),
        "params": {"visitors": len(visitors), "think_s": args.think, "delay_s": args.delay,
                   "threshold": args.threshold, "predictor": "markov", "train_visitors": TRAIN_VISITORS,
                   "trace": "msnbc990928 mapped onto examples/site", "browser": "Debian chromium, headless",
                   "latency_ms": args.latency_ms},
        # the first latency's figures (loopback by default) at the top level; every run under "runs"
        "configs": runs[first]["configs"],
        "median_vs_none": runs[first]["median_vs_none"],
        "runs": [runs[latency] for latency in args.latency_ms],
        "overhead": cost,
        "seconds": round(time.monotonic() - began, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "shared": True},
    }
    for latency in args.latency_ms:
        configs, ratios = runs[latency]["configs"], runs[latency]["median_vs_none"]
        print(f"\nemulated latency {latency} ms")
        print(f"{'config':<10}{'clicked':>8}{'median ms':>11}{'p95 ms':>9}{'vs none':>9}{'TTFB med':>10}"
              f"{'prefetch-served':>17}{'page req':>10}{'prefetch req':>14}{'unused':>8}{'rules':>7}")
        for name in CONFIGS:
            c = configs[name]
            srv = c["server"]
            print(f"{name:<10}{c['clicked_navigations']:>8}{c['clicked']['median_ms']:>11}{c['clicked']['p95_ms']:>9}"
                  f"{ratios[name]:>9}{c['clicked']['response_start']['median_ms']:>10}"
                  f"{c['prefetch_served_share']:>17}{srv['page_requests']:>10}{srv['prefetch_requests']:>14}"
                  f"{srv['prefetch_unused']:>8}{srv['rules_requests']:>7}")
    print("machine: 2 cores shared with other helpers' work; one run; configurations interleaved visitor by visitor")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
