"""RFC 9111 §4.4 and the other HTTP-correctness fixes of issue 27, against the ASGI middleware (uvicorn) and
the WSGI one (wsgiref), over real HTTP on loopback: unsafe methods invalidate, a per-user response never
changes what anonymous visitors get, a WSGI app returning a plain list is stored."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from examples.site.harness import serving
from web_harness import SiteUnderTest, asgi_app, serve_wsgi, wsgi_app

from precache.cache import MemoryTier, PredictiveCache
from precache.web import PrecacheMiddleware, PrecacheWSGIMiddleware


@pytest.fixture(params=["asgi", "wsgi"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, SiteUnderTest, Any]]:
    site = SiteUnderTest()
    cache = PredictiveCache(MemoryTier(max_bytes=8 * 1024 * 1024))
    if request.param == "asgi":
        mw = PrecacheMiddleware(asgi_app(site), cache)
        with serving(mw) as base:
            yield base, site, mw
    else:
        wmw = PrecacheWSGIMiddleware(wsgi_app(site), cache)
        try:
            with serve_wsgi(wmw) as base:
                yield base, site, wmw.precache
        finally:
            wmw.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_non_error_answer_to_an_unsafe_method_invalidates_the_target(
        served: tuple[str, SiteUnderTest, Any], method: str) -> None:
    base, site, _ = served
    with httpx.Client(base_url=base, timeout=20) as c:
        assert c.get("/item").text == "/item 1"
        assert c.get("/item").headers["x-precache"] == "hit"
        changed = c.request(method, "/item", content=b"x=1")
        assert changed.status_code == 200 and changed.headers["x-precache"] == "pass"
        after = c.get("/item")
        assert after.headers["x-precache"] == "miss" and after.text == "/item 2"
    assert site.calls["/item"] == 2 and site.calls[f"{method} /item"] == 1


def test_location_and_content_location_on_the_same_origin_are_invalidated(
        served: tuple[str, SiteUnderTest, Any]) -> None:
    base, _site, mw = served
    with httpx.Client(base_url=base, timeout=20) as c:
        for path in ("/item/1", "/item/2", "/item/3", "/item/locked"):
            c.get(path)
        assert c.post("/items").status_code == 201  # Location /item/1, Content-Location item/2 (relative)
        assert c.get("/item/1").headers["x-precache"] == "miss"
        assert c.get("/item/2").headers["x-precache"] == "miss"
        assert c.get("/item/3").headers["x-precache"] == "hit"
        assert c.post("/elsewhere").status_code == 303  # Location on another origin: nothing of ours
        assert c.get("/item/3").headers["x-precache"] == "hit"
        assert c.delete("/item/locked").status_code == 403  # an error answer invalidates nothing
        assert c.get("/item/locked").headers["x-precache"] == "hit"
    assert mw.stats["invalidated"] == 4  # /items, /item/1, /item/2, and /elsewhere itself (not its Location)


def test_a_per_user_response_never_switches_off_hints_for_everyone(served: tuple[str, SiteUnderTest, Any]) -> None:
    """/me answers a logged-in visitor with ``max-age=60`` (not public): not stored ("request-cookie"), and
    that must not mark the public page uncacheable; an anonymous response that is private does."""
    base, _, mw = served
    with httpx.Client(base_url=base, timeout=20) as alice, httpx.Client(base_url=base, timeout=20) as anon:
        alice.cookies.set("login", "alice")
        alice.get("/me")
        alice.get("/me", headers={"authorization": "Bearer a"})
        assert mw.stats["not_stored:request-cookie"] == 1 and mw.stats["not_stored:request-authorization"] == 1
        assert "/me" not in mw.uncacheable and mw.policy.allows("/me")
        assert anon.get("/me").headers["x-precache"] == "miss"
        assert anon.get("/me").headers["x-precache"] == "hit"
        anon.get("/private")
        assert "/private" in mw.uncacheable and not mw.policy.allows("/private")


def _plain_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/html"), ("Cache-Control", "max-age=60")])
    if environ["PATH_INFO"] == "/generated":
        return (part for part in (b"<p>", b"generated", b"</p>"))  # a generator is a stream
    return [b"<p>plain</p>"]


def test_a_wsgi_app_returning_a_list_without_content_length_is_stored() -> None:
    wmw = PrecacheWSGIMiddleware(_plain_wsgi, PredictiveCache())
    try:
        with serve_wsgi(wmw) as base, httpx.Client(base_url=base, timeout=20) as c:
            first, second = c.get("/plain"), c.get("/plain")
            assert first.headers["x-precache"] == "miss" and second.headers["x-precache"] == "hit"
            assert second.text == "<p>plain</p>" and second.headers["content-length"] == "12"
            assert c.get("/generated").text == "<p>generated</p>"
            assert c.get("/generated").headers["x-precache"] == "miss"
        assert wmw.precache.stats["not_stored:streamed"] == 2
    finally:
        wmw.close()


def test_an_asgi_body_in_one_message_without_content_length_is_stored() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"cache-control", b"max-age=60")]})
        await send({"type": "http.response.body", "body": b"whole"})

    mw = PrecacheMiddleware(app, PredictiveCache())
    with serving(mw) as base, httpx.Client(base_url=base, timeout=20) as c:
        assert c.get("/a").headers["x-precache"] == "miss"
        again = c.get("/a")
        assert again.headers["x-precache"] == "hit" and again.text == "whole"


def test_invalidation_drops_every_variant_of_a_varying_response(served: tuple[str, SiteUnderTest, Any]) -> None:
    base, site, _ = served
    with httpx.Client(base_url=base, timeout=20) as c:
        for lang in ("en", "de", "en", "de"):
            c.get("/lang", headers={"accept-language": lang})
        assert site.calls["/lang"] == 2
        assert c.put("/lang").status_code == 200
        en = c.get("/lang", headers={"accept-language": "en"})
        de = c.get("/lang", headers={"accept-language": "de"})  # its old variant must not come back
        assert (en.headers["x-precache"], de.headers["x-precache"]) == ("miss", "miss")
        assert (en.text, de.text) == ("en 3", "de 4")


def test_with_length_leaves_writers_and_generators_alone() -> None:
    from precache.web.wsgi import with_length

    def writer(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written")
        return [b"+tail"]

    seen: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(headers)
        return lambda data: None

    assert list(with_length(writer)({}, start_response)) == [b"+tail"]
    assert seen == [[("Content-Type", "text/plain")]]  # started when it wrote, no length invented
    seen.clear()
    assert list(with_length(_plain_wsgi)({"PATH_INFO": "/plain"}, start_response)) == [b"<p>plain</p>"]
    assert ("Content-Length", "12") in seen[0]
    seen.clear()
    assert b"".join(with_length(_plain_wsgi)({"PATH_INFO": "/generated"}, start_response)) == b"<p>generated</p>"
    assert not any(name == "Content-Length" for name, _ in seen[0])
