"""The middleware's HTTP caching behaviour, the same tests against the ASGI middleware (uvicorn) and the
WSGI one (wsgiref's threaded server), over real HTTP on loopback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from examples.site.harness import serving
from web_harness import SiteUnderTest, asgi_app, serve_wsgi, wsgi_app

from precache.cache import MemoryTier, PredictiveCache, RedisTier
from precache.web import PrecacheMiddleware, PrecacheWSGIMiddleware, WebConfig

CONFIG = WebConfig(max_body_bytes=100_000, ignore_cookies=(r"_ga.*",), credential_headers=("X-Api-Key",))


@pytest.fixture(params=["asgi", "wsgi"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, SiteUnderTest, Any]]:
    site = SiteUnderTest()
    cache = PredictiveCache(MemoryTier(max_bytes=8 * 1024 * 1024))
    if request.param == "asgi":
        mw = PrecacheMiddleware(asgi_app(site), cache, config=CONFIG)
        with serving(mw) as base:
            yield base, site, mw
    else:
        wmw = PrecacheWSGIMiddleware(wsgi_app(site), cache, config=CONFIG)
        try:
            with serve_wsgi(wmw) as base:
                yield base, site, wmw.precache
        finally:
            wmw.close()


def _client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=20)


def test_a_public_page_is_stored_and_served_to_other_sessions(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, mw = served
    with _client(base) as a, _client(base) as b:
        first = a.get("/public")
        assert first.status_code == 200 and first.headers["x-precache"] == "miss"
        assert first.text == "<p>public 1</p>"
        again = b.get("/public")
        assert again.headers["x-precache"] == "hit" and again.text == "<p>public 1</p>"
        assert int(again.headers["age"]) >= 0
        assert site.calls["/public"] == 1
        head = b.head("/public")
        assert head.headers["x-precache"] == "hit" and head.content == b""
        assert head.headers["content-length"] == str(len("<p>public 1</p>"))
    assert mw.stats["stored"] == 1


def test_the_session_cookie_is_set_after_the_decision_and_never_stored(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, _ = served
    with _client(base) as a, _client(base) as b:
        first = a.get("/public")
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("precache_sid=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # plain HTTP
        assert first.headers["x-precache"] == "miss"  # the cookie did not make it uncacheable
        second = b.get("/public")
        assert second.headers["x-precache"] == "hit"
        assert second.headers["set-cookie"] != cookie  # b's own session, not a's stored cookie
        again = a.get("/public")  # a sends its cookie now: still a hit, no new cookie
        assert again.headers["x-precache"] == "hit" and "set-cookie" not in again.headers
    assert site.calls["/public"] == 1


def test_the_app_sees_no_cookies_on_the_cached_path(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, _ = served
    with _client(base) as a:
        a.get("/public")
        a.cookies.set("_ga_123", "analytics")  # ignored cookie: still anonymous
        r = a.get("/echo-cookies")
        assert r.headers["x-precache"] == "miss"
    assert site.seen_cookies == [""]


@pytest.mark.parametrize("path", ["/private", "/nostore", "/set-cookie", "/error"])
def test_uncacheable_responses_are_never_stored(served: tuple[str, SiteUnderTest, Any], path: str) -> None:
    base, site, mw = served
    with _client(base) as a, _client(base) as b:
        r1, r2 = a.get(path), b.get(path)
        assert r1.headers["x-precache"] == r2.headers["x-precache"] == "miss"
        assert r1.text != r2.text
    assert site.calls[path] == 2
    assert mw.stats["stored"] == 0
    if path == "/set-cookie":
        assert "cart=abc" in r2.headers.get_list("set-cookie")[0]


def test_vary_accept_language_gives_two_entries(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, _ = served
    with _client(base) as c:
        en = c.get("/lang", headers={"accept-language": "en"})
        de = c.get("/lang", headers={"accept-language": "de"})
        assert en.text == "en 1" and de.text == "de 2"
        en2 = c.get("/lang", headers={"accept-language": "en"})
        de2 = c.get("/lang", headers={"accept-language": "de"})
        assert (en2.text, de2.text) == ("en 1", "de 2")
        assert en2.headers["x-precache"] == de2.headers["x-precache"] == "hit"
    assert site.calls["/lang"] == 2


def test_a_logged_in_users_page_is_never_shown_to_another_session(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, _ = served
    with _client(base) as alice, _client(base) as anon, _client(base) as bob:
        alice.cookies.set("login", "alice")
        bob.cookies.set("login", "bob")
        assert alice.get("/me").text.startswith("hello alice")
        assert alice.get("/me").headers["x-precache"] == "bypass"
        assert anon.get("/me").text.startswith("hello anonymous")
        assert bob.get("/me").text.startswith("hello bob")
        assert anon.get("/me").headers["x-precache"] == "hit"  # the anonymous page was stored
        assert alice.get("/me").text.startswith("hello alice")  # never the anonymous copy
        bearer = {"authorization": "Bearer secret-a"}
        assert "secret-a" in anon.get("/auth", headers=bearer).text
        other = anon.get("/auth")
        assert "secret-a" not in other.text and other.headers["x-precache"] == "miss"
        assert anon.get("/public", headers={"x-api-key": "k"}).headers["x-precache"] == "bypass"
    assert site.calls["/me"] == 5  # alice three times, anonymous once (then a hit), bob once


def test_a_credentialed_response_marked_public_is_shared(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, _ = served
    with _client(base) as c:
        first = c.get("/shared-auth", headers={"authorization": "Bearer x"})
        assert first.headers["x-precache"] == "bypass"
        second = c.get("/shared-auth")
        assert second.headers["x-precache"] == "hit" and second.text == first.text
    assert site.calls["/shared-auth"] == 1


def test_etag_revalidation_answers_304(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, _ = served
    with _client(base) as c:
        first = c.get("/etag")
        assert first.headers["etag"] == '"v1"'
        not_modified = c.get("/etag", headers={"if-none-match": 'W/"v1"'})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == '"v1"' and "content-type" not in not_modified.headers
        assert c.get("/etag", headers={"if-none-match": '"v0"'}).status_code == 200
        generated = c.get("/public")  # no ETag from the app: a strong one from the body
        assert generated.headers["etag"].startswith('"')
        assert c.get("/public", headers={"if-none-match": generated.headers["etag"]}).status_code == 304
        miss_304 = c.get("/noinfo", headers={"if-none-match": "*"})  # conditional on a miss
        assert miss_304.status_code == 304 and miss_304.headers["x-precache"] == "miss"
    assert site.calls["/etag"] == 1


def test_streams_and_large_bodies_pass_through_unbuffered(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, mw = served
    with _client(base) as c:
        for path in ("/stream", "/sse"):
            started = time.monotonic()
            with c.stream("GET", path) as r:
                chunks = r.iter_raw()
                first = next(chunks)
                assert first in (b"first;", b"data: 1\n\n")
                assert time.monotonic() - started < 4, "the first chunk waited for the whole body"
                c.get("/release")
                assert b"".join(chunks) == b"second"
        big = c.get("/big")
        assert len(big.content) == 300_000 and big.headers["x-precache"] == "miss"
        assert c.get("/big").headers["x-precache"] == "miss"
    assert site.calls["/big"] == 2 and site.calls["/stream"] == 1
    assert mw.stats["not_stored:streamed"] >= 1 and mw.stats["not_stored:too-large"] == 2


def test_methods_and_request_no_cache_bypass(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, _, _ = served
    with _client(base) as c:
        c.get("/public")
        assert c.post("/public").headers["x-precache"] == "pass"
        fresh = c.get("/public", headers={"cache-control": "no-cache"})
        assert fresh.headers["x-precache"] == "bypass" and fresh.text == "<p>public 2</p>"
        assert c.get("/noinfo").headers["x-precache"] == "miss"  # heuristic freshness (60 s)
        assert c.get("/noinfo").headers["x-precache"] == "hit"


def test_the_session_can_come_from_a_header() -> None:
    site = SiteUnderTest()
    mw = PrecacheMiddleware(asgi_app(site), PredictiveCache(), config=WebConfig(session_header="X-Session-Id"))
    with serving(mw) as base, _client(base) as c:
        r = c.get("/public", headers={"x-session-id": "header-session-1"})
        assert "set-cookie" not in r.headers and r.headers["x-precache"] == "miss"
        c.get("/noinfo", headers={"x-session-id": "header-session-1"})
    assert mw.history.read("header-session-1") == ["/public", "/noinfo"]


def test_concurrent_misses_of_one_page_render_it_once(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, mw = served
    with ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: httpx.get(base + "/slow", timeout=20), range(5)))
    assert {r.text for r in replies} == {"slow 1"}
    assert sorted(r.headers["x-precache"] for r in replies) == ["hit"] * 4 + ["miss"]
    assert site.calls["/slow"] == 1 and mw.stats["joined"] == 4


def test_instances_share_stored_pages_through_redis(redis_url: str) -> None:
    site = SiteUnderTest()
    prefix = f"webtest-{uuid.uuid4().hex[:8]}:"
    a = PrecacheMiddleware(asgi_app(site), PredictiveCache(MemoryTier(), RedisTier(redis_url, prefix=prefix)))
    b = PrecacheMiddleware(asgi_app(site), PredictiveCache(MemoryTier(), RedisTier(redis_url, prefix=prefix)))
    with serving(a) as base_a, serving(b) as base_b:
        first = httpx.get(base_a + "/lang", headers={"accept-language": "fr"}, timeout=20)
        port_a = base_a.rsplit(":", 1)[1]
        # the same host name on both instances (the key includes it), as behind one load balancer
        second = httpx.get(base_b + "/lang", headers={"accept-language": "fr", "host": f"127.0.0.1:{port_a}"},
                           timeout=20)
        third = httpx.get(base_b + "/lang", headers={"accept-language": "en", "host": f"127.0.0.1:{port_a}"},
                          timeout=20)
    assert first.headers["x-precache"] == "miss" and second.headers["x-precache"] == "hit"
    assert second.text == first.text == "fr 1" and third.text == "en 2"
    assert site.calls["/lang"] == 2
