"""Who is behind a request to ``/api/ml/predict`` or ``POST /api/ml/events``: the :class:`RequestContext`
the online layer's guards key on (per-client cap) and screen (bot filter).

Why not simply the connection's address and ``User-Agent``: every route needs a token, so the peer is a back
end (or a proxy), not the visitor -- and back ends' HTTP clients (python-httpx, curl, node-fetch, axios,
Go-http-client) are on the crawler list, so screening them would switch learning off, and keying the
per-client cap on a back end's address would cap the whole site at one visitor's share. So the visitor is
known only from what is *told*, most specific first:

1. the request body: ``context.client`` / ``context.userAgent`` on ``/predict``, ``client`` / ``userAgent``
   per event on ``/events`` (the caller holds a token: it answers for what it reports);
2. a trusted proxy (``PRECACHE_TRUSTED_PROXIES``: the peer's address is in one of its addresses or CIDR
   blocks): the right-most ``X-Forwarded-For`` address that is not itself a trusted proxy (entries left of it
   were written by whoever sent the request: spoofable), and the ``User-Agent`` it passes on;
3. otherwise unknown (``None``): the guards fall back to the session id as the client and skip the bot check.

A forwarded header from any other peer is ignored: by default none is believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import lru_cache

from precache.types import RequestContext

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_AGENT = 512  # characters of a user agent kept (the crawler patterns match well within this)


@lru_cache(maxsize=8)
def parse_networks(value: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 10.1.0.0/16, ::1"`` -> networks; ``ValueError`` naming a bad entry."""
    out = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"PRECACHE_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR block") from None
    return tuple(out)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str | None, headers: Mapping[str, str], networks: Sequence[Network]) -> str | None:
    """The visitor's address a trusted ``peer`` forwarded (see the module doc), else ``None``."""
    if not networks or peer is None or not _trusted(peer, networks):
        return None
    chain = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(chain):
        if not _trusted(hop, networks):
            return hop[:128]
    return None


def request_context(peer: str | None, headers: Mapping[str, str], trusted_proxies: str) -> RequestContext:
    """The context the routes pass on: from a trusted proxy's headers, else unknown."""
    networks = parse_networks(trusted_proxies)
    client = forwarded_client(peer, headers, networks)
    if client is None:
        return RequestContext()
    agent = headers.get("user-agent")
    return RequestContext(client, agent[:MAX_AGENT] if agent else None)
