"""Benchmark of precache in a web app: navigation times in real Chromium on the example site.

Run: ``nice -n 10 .venv/bin/python bench/bench_web.py`` (about 15 minutes with the defaults; needs Debian's
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
Visitor populations: ``msnbc`` (held-out visitors of the trace the predictor was trained on) and
``random-walk`` (random walks over the site's links, ``examples/site/trace.py``: visitors the model does not
know). For each, the share of clicked navigations served from the prefetch cache and the share of prefetches
nobody navigated to (``unused_prefetch_share``) are reported.
Latency: every server sits behind a loopback proxy (``examples/site/latency.py``) that delays each direction
by half of ``--latency-ms`` and a new connection by one round trip (default 40 ms; 0 = plain loopback, a
comma-separated list runs each). The benchmark verifies it in the browser: the least ``responseStart`` of a
navigation delivered over the network must be >= the latency (``latency_verified``; exit 1 when not).
The headline figures at the top of the JSON are the MSNBC visitors' at the largest latency.
The machine (2 cores) is shared with other work: one run, ratios within the run.
"""

from __future__ import annotations

import argparse
import contextlib
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
from examples.site.harness import Navigation, RequestLog, headless_chromium, replay, serving  # noqa: E402
from examples.site.latency import delayed  # noqa: E402
from examples.site.trace import as_sessions, msnbc_sessions, walk_sessions  # noqa: E402

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


def _servers(predictor: Any, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from precache.cache import MemoryTier, PredictiveCache

    sites: dict[str, Any] = {}
    for name in CONFIGS:
        cache = PredictiveCache(MemoryTier(max_bytes=64 * 1024 * 1024)) if name != "none" else None
        sites[name] = build_site(workdir / "site.db", name, delay=args.delay,  # type: ignore[arg-type]
                                 predictor=predictor if name in ("warm", "prefetch") else None, cache=cache,
                                 threshold=args.threshold)
    return sites


def population_run(browser: Any, visitors: list[list[str]], predictor: Any, args: argparse.Namespace,
                   latency: float) -> dict[str, Any]:
    """One replay of ``visitors`` on four fresh servers (see the module doc), each behind a delaying proxy
    adding ``latency`` ms of round trip (0: plain loopback)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-web-"))
    sites = _servers(predictor, args, workdir)
    logs = {name: RequestLog(site) for name, site in sites.items()}
    navigations: dict[str, list[Navigation]] = {name: [] for name in CONFIGS}
    spans: dict[str, list[tuple[int, int, list[Navigation]]]] = {name: [] for name in CONFIGS}
    with contextlib.ExitStack() as stack:
        bases = {name: stack.enter_context(delayed(stack.enter_context(serving(logs[name])), latency))
                 for name in CONFIGS}
        for i, pages in enumerate(visitors):
            order = CONFIGS[i % 4:] + CONFIGS[: i % 4]
            for name in order:
                start = len(logs[name].entries)
                done = replay(browser, bases[name], logs[name], pages, think=args.think)
                time.sleep(0.3)  # let the last page's prefetches land in this visit's span
                spans[name].append((start, len(logs[name].entries), done))
                navigations[name] += done
            print(f"  visitor {i + 1}/{len(visitors)} ({len(pages)} pages)", file=sys.stderr, flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    configs: dict[str, Any] = {}
    for name in CONFIGS:
        configs[name] = {**summarize(navigations[name]), "server": server_counts(logs[name], spans[name])}
        srv = configs[name]["server"]
        srv["unused_prefetch_share"] = (round(srv["prefetch_unused"] / srv["prefetch_requests"], 3)
                                        if srv["prefetch_requests"] else None)
        stats = getattr(sites[name], "stats", None)
        if stats is not None:
            looked_up = stats["hit"] + stats["miss"]
            srv["cache_hit_ratio"] = round(stats["hit"] / looked_up, 3) if looked_up else None
            warmer = getattr(sites[name], "warmer", None)
            if warmer is not None:
                srv["warmer"] = {k: warmer.stats.as_dict()[k] for k in
                                 ("started", "completed", "used", "predictive_hits", "efficiency")}
    base = configs["none"]["clicked"]["median_ms"]
    ratios = {name: round(configs[name]["clicked"]["median_ms"] / base, 3) if base else None for name in CONFIGS}
    network = [n.response_start_ms for name in CONFIGS for n in navigations[name] if n.delivery == "network"]
    prefetch = configs["prefetch"]
    return {"visitors": len(visitors), "configs": configs, "median_vs_none": ratios,
            "prefetch_served_share": prefetch["prefetch_served_share"],
            "unused_prefetch_share": prefetch["server"]["unused_prefetch_share"],
            "min_network_response_start_ms": round(min(network), 1) if network else None}


def browser_run(browser: Any, populations: dict[str, list[list[str]]], predictor: Any, args: argparse.Namespace,
                latency: float) -> dict[str, Any]:
    """Every population at one emulated latency; the latency is verified in the browser: no navigation
    delivered over the network may have started its response sooner than one round trip."""
    out: dict[str, Any] = {}
    for name, visitors in populations.items():
        print(f"\npopulation {name}, emulated latency {latency} ms", file=sys.stderr, flush=True)
        out[name] = population_run(browser, visitors, predictor, args, latency)
    starts = [p["min_network_response_start_ms"] for p in out.values()
              if p["min_network_response_start_ms"] is not None]
    least = min(starts) if starts else None
    return {"latency_ms": latency, "populations": out, "min_network_response_start_ms": least,
            "latency_verified": least is not None and least >= latency}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--visitors", type=int, default=30, help="held-out MSNBC visitors")
    parser.add_argument("--walk-visitors", type=int, default=15, help="random-walk visitors (0: none)")
    parser.add_argument("--think", type=float, default=0.5, help="seconds on each page")
    parser.add_argument("--delay", type=float, default=0.12, help="simulated query delay per page (s)")
    parser.add_argument("--threshold", type=float, default=0.25, help="warming and hint threshold")
    parser.add_argument("--latency-ms", type=lambda v: [float(x) for x in v.split(",")], default=[40.0],
                        help="emulated round trips to run, comma-separated (a delaying proxy; 0 = loopback)")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _print_tables(runs: dict[float, Any]) -> None:
    for latency, run in runs.items():
        verdict = "verified" if run["latency_verified"] else "NOT VERIFIED"
        print(f"\nemulated latency {latency} ms: least responseStart of a network navigation "
              f"{run['min_network_response_start_ms']} ms ({verdict})")
        for population, result in run["populations"].items():
            configs, ratios = result["configs"], result["median_vs_none"]
            print(f"population {population} ({result['visitors']} visitors)")
            print(f"{'config':<10}{'clicked':>8}{'median ms':>11}{'p95 ms':>9}{'vs none':>9}{'TTFB med':>10}"
                  f"{'prefetch-served':>17}{'page req':>10}{'prefetch req':>14}{'unused':>8}{'unused share':>14}")
            for name in CONFIGS:
                c = configs[name]
                srv = c["server"]
                print(f"{name:<10}{c['clicked_navigations']:>8}{c['clicked']['median_ms']:>11}"
                      f"{c['clicked']['p95_ms']:>9}{ratios[name]:>9}{c['clicked']['response_start']['median_ms']:>10}"
                      f"{c['prefetch_served_share']:>17}{srv['page_requests']:>10}{srv['prefetch_requests']:>14}"
                      f"{srv['prefetch_unused']:>8}{srv['unused_prefetch_share']!s:>14}")
    print("machine: 2 cores shared with other helpers' work; one run; configurations interleaved visitor by visitor")


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if shutil.which("chromium") is None or not MSNBC.is_file():
        print(f"needs Debian's chromium and {MSNBC}", file=sys.stderr)
        return 2
    from precache.models import build_predictor

    began = time.monotonic()
    cost = None if args.skip_overhead else overhead()
    if cost is not None:
        print(f"\n{'middleware overhead':<22}{'p50 ms':>9}{'p95 ms':>9}{'p50 vs bare':>13}")
        for name in CONFIGS_OVERHEAD:
            row = cost[name]
            print(f"{name:<22}{row['p50_ms']:>9}{row['p95_ms']:>9}{row.get('p50_vs_bare', 1.0):>13}")
    predictor = build_predictor("markov")
    predictor.fit(list(as_sessions(msnbc_sessions(MSNBC, limit=TRAIN_VISITORS))))
    populations = {"msnbc": [s for s in msnbc_sessions(MSNBC, limit=20 * args.visitors, skip=TRAIN_VISITORS,
                                                       min_length=2) if len(s) <= 12][: args.visitors]}
    if args.walk_visitors:
        populations["random-walk"] = walk_sessions(args.walk_visitors * 2, seed=27)[: args.walk_visitors]
    runs = {}
    with headless_chromium() as browser:
        for latency in args.latency_ms:
            runs[latency] = browser_run(browser, populations, predictor, args, latency)
    emulated = max(args.latency_ms)
    main_run = runs[emulated]
    msnbc = main_run["populations"]["msnbc"]
    result = {
        "bench": "web",
        "command": "nice -n 10 .venv/bin/python bench/bench_web.py " + " ".join(argv or sys.argv[1:]),
        "params": {"visitors": {k: len(v) for k, v in populations.items()}, "think_s": args.think,
                   "delay_s": args.delay, "threshold": args.threshold, "predictor": "markov",
                   "train_visitors": TRAIN_VISITORS, "trace": "msnbc990928 mapped onto examples/site",
                   "browser": "Debian chromium, headless", "latency_ms": args.latency_ms,
                   "latency_emulation": "examples/site/latency.py: a loopback TCP proxy delaying each direction "
                                        "by latency/2 and a new connection by one round trip"},
        # the headline figures: the MSNBC visitors at the largest emulated latency
        "emulated_latency_ms": emulated,
        "min_network_response_start_ms": main_run["min_network_response_start_ms"],
        "latency_verified": main_run["latency_verified"],
        "prefetch_served_share": msnbc["prefetch_served_share"],
        "unused_prefetch_share": msnbc["unused_prefetch_share"],
        "populations": {name: {k: p[k] for k in ("visitors", "prefetch_served_share", "unused_prefetch_share",
                                                  "median_vs_none")}
                        for name, p in main_run["populations"].items()},
        "runs": list(runs.values()),
        "overhead": cost,
        "seconds": round(time.monotonic() - began, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "shared": True,
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
    }
    _print_tables(runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not all(run["latency_verified"] for latency, run in runs.items() if latency > 0):
        print("FLAG: a network-delivered navigation started its response sooner than the emulated latency",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
