"""``GET /metrics``: this replica's metrics in the Prometheus text format, for Prometheus to scrape.

Auth, configurable (docs/operations.md): a bearer token of its own, ``PRECACHE_METRICS_TOKEN`` (so the scraper
holds no API token; the API token is accepted too), or none at all on a separate port: ``precache serve
--metrics-port P`` serves the same exposition from the supervising process, without authentication, on
``--metrics-host`` (127.0.0.1 unless told otherwise: expose it to the monitoring network only). The body is
this replica's workers summed (:mod:`precache.monitoring.replica`); cluster totals are Prometheus' ``sum()``.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import Request

from precache.serve.auth import Authenticator, Role

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _same(given: str, secret: str | None) -> bool:
    if not secret:
        return False
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(secret.encode()).digest())


def check_scrape_caller(request: Request, auth: Authenticator, metrics_token: str | None) -> None:
    """Let the scrape through with the metrics token; otherwise the API token rules (401 without one)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and _same(token.strip(), metrics_token):
        return
    auth.require(request, Role.API)


class ReplicaCollector:
    """A prometheus-client collector yielding the replica directory's sum (for the separate metrics port)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterator[Any]:
        from precache.monitoring.exposition import SnapshotCollector
        from precache.monitoring.replica import read_replica

        yield from SnapshotCollector(read_replica(self.path)).collect()


def serve_metrics_port(path: str, host: str, port: int) -> threading.Thread:
    """Serve ``/metrics`` (no auth) from this process on ``host:port`` in a daemon thread; returns it."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReplicaCollector(path))  # type: ignore[arg-type]
    _server, thread = start_http_server(port, addr=host, registry=registry)
    return thread

