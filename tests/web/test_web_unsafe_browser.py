"""In real headless Chromium (Debian's, through Playwright): a predictor that rates state-changing URLs
highest never makes the browser prefetch them nor the warmer render them. The site is careless on purpose
(its action URLs answer ``GET`` with ``max-age=60``), so only the allow rule and the marks stand between a
prediction and the action; safe predicted pages must still be prefetched and warmed (the test is not
vacuous)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from examples.site.harness import RequestLog, replay, serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from precache.cache import PredictiveCache
from precache.warming import WarmerConfig
from precache.web import HintConfig, PrecacheMiddleware, WebConfig
from precache.web.marks import no_prefetch

UNSAFE = ["/api/delete_all", "/cart/add?item=1", "/logout", "/account/remove-card", "/marked", "/reports/weekly"]
SAFE = ["/a", "/b", "/c"]
LINKS = "".join(f'<a href="{u}">{u}</a> ' for u in SAFE + UNSAFE[:4]) + \
    '<a href="/marked" data-precache="no">marked</a> <a href="/reports/weekly">report</a>'


class _Predictor:
    """Rates every unsafe URL above every safe one, whatever the history."""

    def predict(self, history: Any, k: int) -> list[tuple[str, float]]:
        ranked = [(u, 0.99) for u in UNSAFE] + [(u, 0.9) for u in SAFE]
        return [(u, p) for u, p in ranked if u != history[-1]][:k]


def _site(seen: list[str]) -> Starlette:
    def page(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        seen.append(target)
        return HTMLResponse(f"<html><body><h1>{target}</h1>{LINKS}</body></html>",
                            headers={"cache-control": "max-age=60"})

    report = no_prefetch(lambda request: page(request))
    return Starlette(routes=[Route("/reports/{name}", report), Route("/{path:path}", page)])


@pytest.mark.slow
def test_no_unsafe_url_is_prefetched_or_warmed_in_chromium(browser: Any) -> None:
    seen: list[str] = []  # inside the middleware: every render, warming included
    config = WebConfig(hints=HintConfig(mode="both", threshold=0.5, max_per_page=10))
    mw = PrecacheMiddleware(_site(seen), PredictiveCache(), predictor=_Predictor(), config=config,
                            warmer_config=WarmerConfig(threshold=0.5, top_k=10))
    log = RequestLog(mw)  # outside: every request the browser made
    with serving(log) as base:
        replay(browser, base, log, ["/", "/a", "/b"], think=1.0)
        deadline = time.monotonic() + 5
        while mw.stats["warm_rendered"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    requested = {e.path + (f"?{e.query}" if e.query else "") for e in log.entries}
    unsafe_seen = [u for u in UNSAFE if u in requested or u in seen]
    assert unsafe_seen == [], unsafe_seen
    prefetched = {e.path for e in log.entries if e.purpose == "prefetch"}
    assert {"/b", "/c"} & prefetched, f"no safe page was prefetched: {sorted(requested)}"
    assert mw.stats["warm_rendered"] >= 1 and "/marked" in mw.marks
