"""The example site in real headless Chromium (Debian's, driven by Playwright) behind precache's middleware:
sessions of the MSNBC trace, mapped onto the site, replayed by clicking links. The browser must really
prefetch (the server sees ``Sec-Purpose: prefetch`` requests, answered from precache's cache) and show the
predicted page from its prefetch cache (Navigation Timing ``deliveryType``; no second request)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from examples.site.app import build_site
from examples.site.harness import RequestLog, replay, serving
from examples.site.trace import as_sessions, msnbc_sessions

from conftest import shared_file
from precache.cache import MemoryTier, PredictiveCache

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.mark.realdata
def test_the_browser_prefetches_predicted_pages_served_from_the_cache(browser: Any, tmp_path: Path) -> None:
    trace = shared_file("msnbc-anonymous-web/msnbc990928.zip")
    from precache.models import build_predictor

    predictor = build_predictor("markov")
    predictor.fit(list(as_sessions(msnbc_sessions(trace, limit=20_000))))
    visitors = [s for s in msnbc_sessions(trace, limit=400, skip=20_000, min_length=4) if len(s) <= 7][:3]
    assert len(visitors) == 3
    cache = PredictiveCache(MemoryTier(max_bytes=32 * 1024 * 1024))
    site = build_site(tmp_path / "site.db", "prefetch", delay=0.1, predictor=predictor, cache=cache)
    log = RequestLog(site)
    navigations = []
    with serving(log) as base:
        for pages in visitors:
            navigations += replay(browser, base, log, pages, think=0.7)
        views, beacons = site.stats["views"], site.stats["beacon_views"]
        tab = browser.new_page(viewport={"width": 1200, "height": 900})
        tab.goto(base + "/article/news-1")
        ARTIFACTS.mkdir(exist_ok=True)
        tab.screenshot(path=str(ARTIFACTS / "web-site.png"), full_page=True)
        assert tab.locator("nav#sections a").count() == 18 and tab.locator("a#next").count() == 1
        tab.close()

    prefetches = log.pages(purpose="prefetch")
    assert prefetches, "the server saw no Sec-Purpose: prefetch request"
    assert all(e.status == 200 for e in prefetches)
    served = [e for e in prefetches if e.precache == "hit"]
    assert len(served) >= len(prefetches) // 2, [(e.path, e.precache) for e in prefetches]
    from_prefetch = [n for n in navigations if n.delivery == "navigational-prefetch"]
    assert from_prefetch, [(n.page, n.delivery) for n in navigations]
    assert not any(n.server_saw for n in from_prefetch), "a prefetched page was requested again"
    assert all(n.server_saw for n in navigations if n.delivery == "network")
    # pages shown from the prefetch cache (or the browser's HTTP cache) still reach the session history,
    # through the rules route's beacon
    assert beacons >= len(from_prefetch)
    assert views == len(navigations)


@pytest.mark.realdata
def test_link_prefetch_hints_are_followed_too(browser: Any, tmp_path: Path) -> None:
    """``HintConfig(mode="link")``: ``Link: <…>; rel=prefetch`` on the page; Chromium prefetches with
    ``Sec-Purpose: prefetch`` into its HTTP cache and the click is answered from there, without a request."""
    from examples.site.app import create_app

    from precache.models import build_predictor
    from precache.web import HintConfig, PrecacheMiddleware, WebConfig

    trace = shared_file("msnbc-anonymous-web/msnbc990928.zip")
    predictor = build_predictor("markov")
    predictor.fit(list(as_sessions(msnbc_sessions(trace, limit=5_000))))
    site = PrecacheMiddleware(create_app(tmp_path / "site.db", delay=0.05), predictor=predictor,
                              config=WebConfig(hints=HintConfig(mode="link", threshold=0.25)))
    log = RequestLog(site)
    with serving(log) as base:
        navigations = replay(browser, base, log, ["/section/news", "/article/news-1", "/article/news-2"], think=0.7)
    prefetched = {e.path for e in log.pages(purpose="prefetch")}
    assert "/article/news-1" in prefetched
    assert navigations[1].delivery == "cache" and not navigations[1].server_saw
