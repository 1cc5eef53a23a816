"""What may be prefetched and warmed: the allow rule (``precache.warming.allow``), the application's marks
(route decorators, page attributes, settings) and the ``keep_query`` hint URLs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from examples.site.harness import serving
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from precache.cache import PredictiveCache
from precache.warming import AllowRule, HttpOriginResolver
from precache.warming.allow import segment_words
from precache.web import HintConfig, PrecacheMiddleware, WebConfig
from precache.web.marks import PageMarks, PrefetchPolicy, no_prefetch, prefetch_safe, routes_marks
from precache.web.sessions import BoundedSet

UNSAFE = ["/api/delete_all", "/cart/add?item=1", "/logout", "/account/remove-card", "/api/deleteAll",
          "/log-out", "/sign_out", "/%64elete", "/user/7/Unsubscribe", "/a?x=1", "//evil.example/x",
          "/a\\b", "/a\nb", "/_precache/speculation-rules", "/cart", "/checkout/", "/posts/9/vote",
          "/settings/reset-password", "/%2F%2Fevil.example"]
SAFE = ["/", "/article/news-1", "/section/on-air", "/search", "/settings", "/address/book", "/stats",
        "/caf%C3%A9", "/deleted-scenes-review-2019"]


@pytest.mark.parametrize("url", UNSAFE)
def test_the_default_rule_refuses_state_changing_and_foreign_urls(url: str) -> None:
    assert AllowRule().refusal(url) is not None


@pytest.mark.parametrize("url", SAFE)
def test_the_default_rule_allows_plain_pages(url: str) -> None:
    assert AllowRule().refusal(url) is None, url


def test_words_are_split_by_segment_and_the_vocabulary_is_configurable() -> None:
    assert segment_words("remove-card") == {"remove", "card", "removecard"}
    assert segment_words("deleteAll") == {"delete", "all", "deleteall"}
    assert AllowRule().refusal("/cart/add?item=1") == "query"
    assert AllowRule(allow_query=True).refusal("/cart/add?item=1") == "unsafe-word"
    assert AllowRule(allow_query=True).refusal("/search?q=storm") is None
    assert AllowRule(extra_unsafe_words=("news",)).refusal("/article/news-1") == "unsafe-word"
    assert AllowRule(unsafe_words=frozenset()).refusal("/logout") is None
    marked = AllowRule(safe=(r"/search\?q=[^&]*", r"/share/.*"), unsafe=(r"/article/.*",))
    assert marked.refusal("/search?q=storm") is None and marked.refusal("/search?q=a&delete=1") == "query"
    assert marked.refusal("/share/this") is None and marked.refusal("/article/news-1") == "marked-unsafe"
    with pytest.raises(ValueError, match="regular expression"):
        AllowRule(safe=("(",))


def test_page_attributes_mark_links_for_everyone() -> None:
    marks = PageMarks(100, keep_query=False)
    page = (b'<a href="/a">a</a><a data-precache="no" href="/b">b</a><a href="c" rel="nofollow">c</a>'
            b'<a href="/d?x=1" data-method="delete">d</a><a href="/e" data-method="get">e</a>'
            b'<a href="http://other.example/f" data-precache="no">f</a>')
    assert marks.scan("http://site.example/dir/page", page) == 3
    assert {"/b", "/dir/c", "/d"} == set(marks.refused._items)
    assert marks.scan("http://site.example/", b"<a href='/x'>no marker at all</a>") == 0
    policy = PrefetchPolicy(AllowRule(), BoundedSet(10), marks)
    assert policy.refusal("/b") == "marked-in-page" and policy.allows("/a") and policy.allows("/e")


def _page(request: Request) -> Response:
    return HTMLResponse("<p>page</p>", headers={"cache-control": "max-age=60"})


@no_prefetch
def _report(request: Request) -> Response:
    return _page(request)


@prefetch_safe
def _search(request: Request) -> Response:
    return _page(request)


def test_route_decorators_mark_routes_through_middleware_and_mounts() -> None:
    app = Starlette(routes=[Route("/reports/{name}", _report), Route("/search", _search), Route("/{rest:path}", _page),
                            Mount("/shop", routes=[Route("/basket-view", _search), Route("/list", _report)])])
    marks = routes_marks(PrecacheMiddleware(app))  # found through .app, as under add_middleware
    assert marks is not None
    assert marks("/reports/weekly") is False and marks("/search?q=storm") is True
    assert marks("/article/1") is None and marks("/shop/list") is False and marks("/shop/basket-view") is True
    policy = PrefetchPolicy(AllowRule(), BoundedSet(10), PageMarks(10, False), marks)
    assert policy.refusal("/reports/weekly") == "marked-route"
    assert policy.allows("/search?q=storm")  # @prefetch_safe lifts the query refusal
    assert policy.allows("/shop/basket-view")  # ... and the action word ("basket")
    assert policy.refusal("/article/1?x=1") == "query"
    assert routes_marks(Starlette(routes=[Route("/", _page)])) is None


def test_the_http_warming_resolver_follows_the_rule() -> None:
    resolver = HttpOriginResolver("http://127.0.0.1:9", key_prefix="p:")
    assert resolver.resolve("/api/delete_all") is None and resolver.resolve("/cart/add?item=1") is None
    assert resolver.resolve("article/news-1") is not None
    loose = HttpOriginResolver("http://127.0.0.1:9", rule=AllowRule(allow_query=True, unsafe_words=frozenset()))
    assert loose.resolve("/search?q=storm") is not None


class _Fixed:
    def __init__(self, pages: list[tuple[str, float]]) -> None:
        self.pages = pages

    def predict(self, history: Any, k: int) -> list[tuple[str, float]]:
        return self.pages[:k]


async def _search_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    found = scope["path"] == "/" or (scope["path"] == "/search" and scope["query_string"] == b"q=storm")
    body = (b"<p>storm</p>" if scope["path"] == "/search" else b"<p>home</p>") if found else b"<p>no</p>"
    await send({"type": "http.response.start", "status": 200 if found else 404, "headers": [
        (b"content-type", b"text/html"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"max-age=60")]})
    await send({"type": "http.response.body", "body": body})


def test_keep_query_hints_name_the_query_as_a_query() -> None:
    predictor = _Fixed([("/search?q=storm", 0.9), ("/api/delete_all", 0.9), ("/search?q=x&logout=1", 0.9)])
    config = WebConfig(keep_query=True, allow=AllowRule(safe=(r"/search\?q=[a-z]+",)),
                       hints=HintConfig(mode="link", threshold=0.5))
    mw = PrecacheMiddleware(_search_app, PredictiveCache(), predictor=predictor, config=config, warm=False)
    with serving(mw) as base, httpx.Client(base_url=base, timeout=20) as c:
        link = c.get("/").headers["link"]
        assert link == "</search?q=storm>; rel=prefetch"
        url = link.split(">")[0][1:]
        assert c.get(url).status_code == 200 and c.get(url).text == "<p>storm</p>"


@given(st.text(max_size=200))
def test_the_rule_never_raises_and_never_allows_a_query_or_a_foreign_path(page: str) -> None:
    reason = AllowRule().refusal(page)
    if reason is None:
        assert page.startswith("/") and not page.startswith("//") and "?" not in page and "\\" not in page


def test_the_wsgi_middleware_takes_route_marks_too() -> None:
    from precache.web import PrecacheWSGIMiddleware

    wmw = PrecacheWSGIMiddleware(lambda environ, start_response: [], PredictiveCache(),
                                 route_marks=lambda page: False if page.startswith("/admin/") else None)
    try:
        assert wmw.precache.policy.refusal("/admin/users") == "marked-route"
        assert wmw.precache.policy.allows("/users")
    finally:
        wmw.close()
