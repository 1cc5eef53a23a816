"""Who is behind a request (``precache.serve.visitor``): forwarded headers are believed only from trusted proxies."""

from __future__ import annotations

import pytest

from precache.config import ConfigError
from precache.serve.settings import load_serve_settings
from precache.serve.visitor import forwarded_client, parse_networks, request_context
from precache.types import RequestContext

TRUSTED = "127.0.0.1, 10.0.0.0/8"
HEADERS = {"x-forwarded-for": "198.51.100.66, 203.0.113.7, 10.1.2.3", "user-agent": "Mozilla/5.0 (X11)"}


def test_a_trusted_proxy_names_the_rightmost_address_it_did_not_add_itself() -> None:
    # 198.51.100.66 was written by whoever sent the request (spoofable); 10.1.2.3 is an inner trusted proxy
    assert forwarded_client("127.0.0.1", HEADERS, parse_networks(TRUSTED)) == "203.0.113.7"
    assert request_context("10.9.9.9", HEADERS, TRUSTED) == RequestContext("203.0.113.7", "Mozilla/5.0 (X11)")


def test_forwarded_headers_from_any_other_peer_are_ignored() -> None:
    assert request_context("192.0.2.1", HEADERS, TRUSTED) == RequestContext()  # not a trusted peer
    assert request_context("127.0.0.1", HEADERS, "") == RequestContext()  # by default nothing is believed
    assert request_context(None, HEADERS, TRUSTED) == RequestContext()
    only_proxies = {"x-forwarded-for": "10.0.0.1, 127.0.0.1", "user-agent": "x"}
    assert request_context("127.0.0.1", only_proxies, TRUSTED) == RequestContext()
    assert request_context("127.0.0.1", {"user-agent": "x"}, TRUSTED) == RequestContext()


def test_a_body_names_the_visitor_over_the_route() -> None:
    route = RequestContext("203.0.113.7", "Mozilla/5.0")
    assert route.overridden(None, None) is route
    assert route.overridden("198.51.100.1", None) == RequestContext("198.51.100.1", "Mozilla/5.0")
    assert route.overridden("", "Googlebot/2.1") == RequestContext("203.0.113.7", "Googlebot/2.1")


def test_a_bad_trusted_proxies_setting_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="PRECACHE_TRUSTED_PROXIES: 'not-an-ip'"):
        load_serve_settings(trusted_proxies="127.0.0.1, not-an-ip")
    assert load_serve_settings(trusted_proxies="::1, 10.0.0.0/8").trusted_proxies == "::1, 10.0.0.0/8"
