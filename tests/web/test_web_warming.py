"""Warming through the middleware: a predicted page is fetched by calling the app in process, as an
anonymous request (never the visitor's credentials), and the visitor's next request is a predictive hit."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from examples.site.harness import serving

from precache.cache import MemoryTier, PredictiveCache
from precache.models import build_predictor
from precache.traces.model import Session
from precache.warming import WarmerConfig
from precache.web import HintConfig, PrecacheMiddleware, WebConfig

SEEN: list[dict[str, Any]] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    SEEN.append({"path": scope["path"], "cookie": headers.get("cookie"), "auth": headers.get("authorization"),
                 "client": scope.get("client")})
    body = f"<a href='/b'>{scope['path']}</a>".encode()
    cc = b"private" if scope["path"] == "/secret" else b"max-age=60"
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/html"), (b"content-length", str(len(body)).encode()), (b"cache-control", cc)]})
    await send({"type": "http.response.body", "body": body})


def _predictor() -> Any:
    sessions = [Session(str(i), str(i), float(i), ["/a", "/b", "/c"], [], []) for i in range(20)]
    sessions += [Session("x", "x", 99.0, ["/c", "/secret"], [], [])] * 20
    model = build_predictor("markov")
    model.fit(sessions)
    return model


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_warming_calls_the_app_in_process_without_credentials() -> None:
    SEEN.clear()
    cache = PredictiveCache(MemoryTier(max_bytes=4 * 1024 * 1024))
    config = WebConfig(hints=HintConfig(mode="link", threshold=0.5))
    mw = PrecacheMiddleware(app, cache, predictor=_predictor(), config=config,
                            warmer_config=WarmerConfig(threshold=0.5))
    events: list[Any] = []
    cache.subscribe(events.append)
    with serving(mw) as base, httpx.Client(base_url=base, timeout=20) as alice:
        alice.get("/c")  # an anonymous view first: the template of warming requests
        # /c predicts /secret, which is private: the warmer fetches it once and is refused, without back-off
        _wait(lambda: mw.warmer.stats.skipped["not_preloadable"] >= 1)
        alice.cookies.set("login", "alice")
        alice.headers["authorization"] = "Bearer alice-token"
        first = alice.get("/a")
        assert first.headers["x-precache"] == "bypass"
        assert first.headers["link"] == "</b>; rel=prefetch"  # the predicted next page, as a Link hint
        _wait(lambda: any(s["path"] == "/b" for s in SEEN))
        warm = next(s for s in SEEN if s["path"] == "/b")
        assert warm["cookie"] is None and warm["auth"] is None  # anonymous, whoever triggered it
        assert warm["client"] is None  # in process: no network peer
        _wait(lambda: mw.stats["warm_rendered"] >= 1)
        del alice.headers["authorization"]
        alice.cookies.delete("login")
        second = alice.get("/b")
        assert second.headers["x-precache"] == "hit"
        assert sum(1 for s in SEEN if s["path"] == "/b") == 1
        _wait(lambda: mw.warmer.stats.predictive_hits >= 1)  # access events are delivered after the response
        assert mw.warmer.stats.failed == 0  # the refusal did not count as an origin failure (no back-off)
        assert mw.stats["not_stored:private"] == 1 and "/secret" in mw.uncacheable  # never hinted again
        assert "link" not in alice.get("/c", headers={"cache-control": "no-cache"}).headers

        # every page view became an access event with the page and the session (bypassed ones too)
        def page_views() -> list[tuple[str, str, str]]:
            return [(e.session_id, e.context["currentPath"], e.tier) for e in list(events)
                    if isinstance(e.context, dict) and "currentPath" in e.context]

        _wait(lambda: len(page_views()) >= 4)
    views = page_views()
    sessions = {sid for sid, _, _ in views}
    assert len(sessions) == 1 and None not in sessions
    assert [(page, tier) for _, page, tier in views] == [
        ("/c", "miss"), ("/a", "origin"), ("/b", "l1"), ("/c", "origin")]


def test_a_forged_session_cookie_gets_a_new_session() -> None:
    mw = PrecacheMiddleware(app, PredictiveCache())
    with serving(mw) as base, httpx.Client(base_url=base, timeout=20) as c:
        c.cookies.set("precache_sid", "bad value;")
        r = c.get("/a")
        assert r.headers["x-precache"] == "miss"  # the session cookie is not a credential
        assert r.headers["set-cookie"].startswith("precache_sid=") and "bad" not in r.headers["set-cookie"]


def test_processes_share_session_histories_through_redis(redis_url: str) -> None:
    """Two app processes behind one load balancer: the session viewed /x then /a on one, and the browser's
    rules fetch for /a lands on the other, which reads the history from Redis (the service's store)."""
    import redis
    from redis.asyncio import Redis

    from precache.history import RedisHistories

    model = build_predictor("ppm")
    model.fit([Session(str(i), str(i), float(i), [first, "/a", nxt], [], [])
               for i in range(40) for first, nxt in (("/x", "/b"), ("/y", "/c"))])
    assert model.predict(["/x", "/a"], 1)[0][0] == "/b" and model.predict(["/a"], 1)[0][1] < 0.7
    prefix = f"webhist-{uuid.uuid4().hex[:8]}:"

    def instance(shared: bool) -> PrecacheMiddleware:
        histories = RedisHistories(Redis.from_url(redis_url), prefix, 20, 1800.0) if shared else None
        return PrecacheMiddleware(app, PredictiveCache(), predictor=model, warm=False, histories=histories,
                                  config=WebConfig(hints=HintConfig(threshold=0.7)))

    a, b, alone = instance(True), instance(True), instance(False)
    with serving(a) as base_a, serving(b) as base_b, serving(alone) as base_alone, \
            httpx.Client(timeout=20) as visitor:
        visitor.get(base_a + "/x")
        sid = visitor.cookies["precache_sid"]
        rules_header = visitor.get(base_a + "/a").headers["speculation-rules"]
        route = rules_header.strip('"')
        with redis.Redis.from_url(redis_url) as client:
            stored = RedisHistories(client, prefix, 20, 1800.0).key(sid)
            _wait(lambda: client.llen(stored) == 2)  # written after the response, off its path
        cookie = {"cookie": f"precache_sid={sid}"}
        shared = httpx.get(base_b + route, headers=cookie, timeout=20)
        assert shared.headers["content-type"] == "application/speculationrules+json"
        assert shared.json()["prefetch"][0]["urls"] == ["/b"]
        local = httpx.get(base_alone + route, headers=cookie, timeout=20)  # no shared store: only [/a]
        assert local.json() == {"prefetch": []}
