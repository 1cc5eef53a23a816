"""Running the site on loopback and watching it from the server side: what the browser tests and
``bench/bench_web.py`` share (a uvicorn server in a thread, a request log outside the middleware, a
browser session replay that clicks links and reads Navigation Timing)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from precache.processes import free_port

NAVIGATION_JS = """() => { const n = performance.getEntriesByType('navigation')[0];
  return {url: n.name, deliveryType: n.deliveryType, duration: n.duration, responseStart: n.responseStart,
          transferSize: n.transferSize}; }"""


@dataclass
class LoggedRequest:
    path: str
    query: str
    purpose: str | None
    time: float
    status: int = 0
    precache: str | None = None


@dataclass
class RequestLog:
    """ASGI wrapper recording every request the server received (outside precache's middleware)."""

    app: Any
    entries: list[LoggedRequest] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        purpose = headers.get(b"sec-purpose")
        entry = LoggedRequest(scope["path"], scope.get("query_string", b"").decode("latin-1"),
                              purpose.decode("latin-1") if purpose else None, time.monotonic())
        self.entries.append(entry)

        async def logged_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
                value = dict(message.get("headers", [])).get(b"x-precache")
                entry.precache = value.decode() if value else None
            await send(message)

        await self.app(scope, receive, logged_send)

    def pages(self, purpose: str | None = None) -> list[LoggedRequest]:
        """Requests for site pages (not the rules route, not the favicon), with this ``Sec-Purpose``."""
        return [e for e in self.entries if not e.path.startswith("/_precache/") and e.path != "/favicon.ico"
                and (e.purpose or None) == purpose]


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (its own browser download is not used: the system package is
    what `make test` installs). Raises RuntimeError when chromium is missing."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("chromium is not installed: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``with serving(app) as base_url:`` uvicorn on a free loopback port, in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Navigation:
    page: str
    delivery: str
    duration_ms: float
    response_start_ms: float
    server_saw: bool
    """A non-prefetch request for this page reached the server during this navigation."""
    clicked: bool = True
    """False for a visit's first page (typed, so never predicted)."""


def replay(browser: Any, base: str, log: RequestLog, pages: list[str], think: float = 0.6,
           latency_ms: float = 0.0) -> list[Navigation]:
    """One visitor in a fresh browser context: open ``pages[0]``, then click the link to each next page,
    waiting ``think`` seconds on each page (the time a reader spends, when prefetches happen).
    ``latency_ms``: emulated network round trip (Chromium's DevTools network emulation)."""
    context = browser.new_context()
    out: list[Navigation] = []
    try:
        tab = context.new_page()
        if latency_ms:
            cdp = context.new_cdp_session(tab)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": latency_ms,
                                                          "downloadThroughput": -1, "uploadThroughput": -1})
        for i, page in enumerate(pages):
            before = len(log.entries)
            if i == 0:
                tab.goto(base + page)
            else:
                link = tab.locator(f'a[href="{page}"]').first
                with tab.expect_navigation():
                    link.click()
            tab.wait_for_load_state("load")
            timing = tab.evaluate(NAVIGATION_JS)
            saw = any(e.path == page and e.purpose is None for e in log.entries[before:])
            out.append(Navigation(page, timing["deliveryType"] or "network", float(timing["duration"]),
                                  float(timing["responseStart"]), saw, clicked=i > 0))
            time.sleep(think)
    finally:
        context.close()
    return out
