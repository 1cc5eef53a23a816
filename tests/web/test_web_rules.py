"""The HTTP caching rules (RFC 9111 for a shared cache) and the hint filter, as pure functions."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from precache.warming.allow import AllowRule
from precache.web.config import HintConfig
from precache.web.hints import HintPlanner, link_header
from precache.web.marks import PageMarks, PrefetchPolicy
from precache.web.rules import (
    RequestView,
    etag_matches,
    lookup_bypass,
    parse_cache_control,
    store_decision,
    variant_suffix,
)
from precache.web.sessions import BoundedSet, HintBudgets, valid_session_id

NOW = 1_700_000_000.0
GET = RequestView("GET", {})


def decide(headers: dict[str, str], request: RequestView = GET, status: int = 200, **kw: Any) -> tuple[float, str]:
    options: dict[str, Any] = {"now": NOW, "heuristic_ttl": 60.0, "max_ttl": 3600.0, "max_body_bytes": 1000}
    options.update(kw)
    d = store_decision(request, status, {"content-length": "10", **headers}, **options)
    return d.ttl, d.reason


def test_cache_control_parsing_keeps_quoted_commas_together() -> None:
    cc = parse_cache_control('Public, MAX-AGE="60", private="set-cookie, x-user", no-cache')
    assert cc == {"public": None, "max-age": "60", "private": "set-cookie, x-user", "no-cache": None}
    assert parse_cache_control(None) == {} and parse_cache_control(" , ,") == {}


@given(st.text())
def test_parsing_and_deciding_never_raise_on_any_header_text(text: str) -> None:
    parse_cache_control(text)
    decide({"cache-control": text, "expires": text, "age": text, "vary": text, "date": text})
    etag_matches(text, '"x"')


def test_freshness_sources_in_order() -> None:
    assert decide({"cache-control": "max-age=100, s-maxage=20"}) == (20.0, "stored")
    assert decide({"cache-control": "max-age=100"}) == (100.0, "stored")
    assert decide({"cache-control": "max-age=100", "age": "30"}) == (70.0, "stored")
    assert decide({"cache-control": "max-age=99999"})[0] == 3600.0  # max_ttl
    assert decide({"date": "Tue, 14 Nov 2023 22:13:20 GMT", "expires": "Tue, 14 Nov 2023 22:15:20 GMT"})[0] == 120.0
    assert decide({"expires": "not a date"}) == (0.0, "stale")  # an invalid Expires is already expired
    assert decide({"cache-control": "max-age=abc"}) == (0.0, "stale")
    assert decide({"cache-control": "max-age=²"}) == (0.0, "stale")  # a Unicode digit is not delta-seconds
    assert decide({}) == (60.0, "stored")  # heuristic lifetime for a 200 with no freshness information
    assert decide({}, heuristic_ttl=None) == (0.0, "no-freshness")
    assert decide({"cache-control": "max-age=0"}) == (0.0, "stale")


def test_what_is_never_stored() -> None:
    for cc in ("no-store", "private", "no-cache", "private, max-age=60", "public, no-store"):
        assert decide({"cache-control": cc})[0] == 0.0, cc
    assert decide({"cache-control": "max-age=60", "set-cookie": "a=b"}) == (0.0, "set-cookie")
    assert decide({"cache-control": "public, max-age=60", "set-cookie": "a=b"}) == (0.0, "set-cookie")
    assert decide({"vary": "Accept, *"}) == (0.0, "vary-star")
    assert decide({"content-type": "text/event-stream; charset=utf-8"}) == (0.0, "event-stream")
    assert decide({"content-length": "2000"}) == (0.0, "too-large")
    assert store_decision(GET, 200, {}, now=NOW, heuristic_ttl=60, max_ttl=60, max_body_bytes=10).reason == "streamed"
    assert decide({}, status=206) == (0.0, "status") and decide({}, status=500) == (0.0, "status")
    assert decide({}, status=302) == (0.0, "status")
    assert decide({"cache-control": "max-age=5"}, status=302) == (5.0, "stored")
    assert decide({}, status=404) == (60.0, "stored")
    assert decide({}, RequestView("POST", {})) == (0.0, "method")
    assert decide({}, RequestView("GET", {"cache-control": "no-store"})) == (0.0, "request-no-store")


def test_credentials_need_an_explicit_permission_to_share() -> None:
    auth = RequestView("GET", {"authorization": "Bearer t"})
    assert decide({"cache-control": "max-age=60"}, auth) == (0.0, "request-authorization")
    assert decide({"cache-control": "s-maxage=60"}, auth) == (60.0, "stored")
    assert decide({"cache-control": "public, max-age=60"}, auth) == (60.0, "stored")
    cookie = RequestView("GET", {"cookie": "sid=1; login=alice"}, frozenset({"sid"}))
    assert decide({"cache-control": "s-maxage=60"}, cookie) == (0.0, "request-cookie")
    assert decide({"cache-control": "public, max-age=60"}, cookie) == (60.0, "stored")
    only_session = RequestView("GET", {"cookie": "sid=1"}, frozenset({"sid"}))
    assert only_session.credentials() is None and lookup_bypass(only_session) is None


def test_lookup_bypass() -> None:
    assert lookup_bypass(RequestView("HEAD", {})) is None
    assert lookup_bypass(RequestView("POST", {})) == "method"
    assert lookup_bypass(RequestView("GET", {"authorization": "x"})) == "authorization"
    assert lookup_bypass(RequestView("GET", {"cookie": "a=1"})) == "cookie"
    assert lookup_bypass(RequestView("GET", {"cache-control": "no-cache"})) == "request-no-cache"
    assert lookup_bypass(RequestView("GET", {"pragma": "no-cache"})) == "request-no-cache"


def test_variants_and_validators() -> None:
    en = variant_suffix(["accept-language"], {"accept-language": "en"})
    assert en == variant_suffix(["accept-language"], {"accept-language": " en "})
    assert en != variant_suffix(["accept-language"], {"accept-language": "de"})
    assert variant_suffix(["x"], {}) != variant_suffix(["x"], {"x": ""})  # absent and empty differ
    assert etag_matches('W/"a", "b"', '"b"') and etag_matches('"a"', 'W/"a"') and etag_matches("*", '"z"')
    assert not etag_matches('"a"', '"b"') and not etag_matches(None, '"a"') and not etag_matches('"a"', None)


class _Fixed:
    def __init__(self, pages: list[tuple[str, float]]) -> None:
        self.pages = pages

    def predict(self, history: Any, k: int) -> list[tuple[str, float]]:
        return self.pages[:k]


def test_hints_only_name_safe_same_origin_pages_within_budget() -> None:
    uncacheable = BoundedSet(10)
    uncacheable.add("/account")
    policy = PrefetchPolicy(AllowRule(), uncacheable, PageMarks(10, keep_query=False))
    predicted = [("//evil.example/x", 0.9), ("/logout", 0.9), ("/_precache/speculation-rules", 0.9),
                 ("/account", 0.9), ("/a\nb", 0.9), ("/b", 0.8), ("/c d", 0.7), ("/d", 0.6), ("/e", 0.1)]
    sessions = HintBudgets()
    planner = HintPlanner(HintConfig(threshold=0.5, max_per_page=3, budget_per_session=3), _Fixed(predicted),
                          sessions, policy)
    assert planner.choose("s1", ["/a"]) == ["/b", "/c%20d", "/d"]
    planner.predictor = _Fixed([("/b", 0.9), ("/f", 0.9)])
    assert planner.choose("s1", ["/a", "/b"]) == []  # /b is the current page; /f is over the budget
    assert planner.choose("s1", ["/a"]) == ["/b"]  # hinting an already hinted URL is free
    assert planner.choose("s2", ["/a"]) == ["/b", "/f"]  # another session has its own budget
    assert link_header(["/b", "/f"]) == "</b>; rel=prefetch, </f>; rel=prefetch"
    assert planner.rules_json(["/b"]) == b'{"prefetch":[{"source":"list","urls":["/b"],"eagerness":"immediate"}]}'
    assert planner.rules_json([]) == b'{"prefetch":[]}'
    header = planner.rules_header("/a b", view=True)
    assert header.startswith('"/_precache/speculation-rules?page=%2Fa%20b&n=') and header.endswith('&view=1"')


def test_session_ids_must_look_issued() -> None:
    assert valid_session_id("abcdefgh") == "abcdefgh"
    assert valid_session_id("short") is None and valid_session_id("has space 123") is None
    assert valid_session_id("x" * 65) is None and valid_session_id(None) is None
