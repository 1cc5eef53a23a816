"""``PrecacheWSGIMiddleware``: the same middleware for WSGI apps (Flask, Django through WSGI).

It is the ASGI middleware, not a second implementation: a2wsgi runs the WSGI app as an ASGI app (in a
thread pool) inside :class:`~precache.web.asgi.PrecacheMiddleware`, and exposes the result as WSGI again,
with the cache, the warmer and the in-process warming requests on one event-loop thread of its own. So
both kinds of app get the same caching rules, sessions, hints and warming, by construction.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

from a2wsgi import ASGIMiddleware, WSGIMiddleware

from precache.cache.layered import PredictiveCache
from precache.history import HistoryStore
from precache.warming.warmer import WarmerConfig
from precache.web.asgi import PrecacheMiddleware
from precache.web.config import WebConfig
from precache.web.hints import Predictor


class PrecacheWSGIMiddleware:
    """``app.wsgi_app = PrecacheWSGIMiddleware(app.wsgi_app, cache, predictor=model)`` (Flask), or wrap
    Django's ``get_wsgi_application()``. Arguments as :class:`~precache.web.asgi.PrecacheMiddleware`;
    ``workers``: threads running the WSGI app. ``.precache`` is the ASGI middleware inside (its ``stats``,
    ``warmer``, ``cache``); ``close()`` stops the warmer, closes an owned cache and the loop thread."""

    def __init__(
        self,
        wsgi_app: Any,
        cache: PredictiveCache | None = None,
        *,
        predictor: Predictor | None = None,
        config: WebConfig | None = None,
        warm: bool = True,
        warmer_config: WarmerConfig | None = None,
        histories: HistoryStore | None = None,
        workers: int = 10,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="precache-wsgi", daemon=True)
        self._thread.start()
        # a2wsgi types ASGI with its own TypedDicts, Starlette with plain mappings: the same protocol
        inner: Any = WSGIMiddleware(wsgi_app, workers=workers)
        self.precache = PrecacheMiddleware(inner, cache, predictor=predictor, config=config, warm=warm,
                                           warmer_config=warmer_config, histories=histories)
        outer: Any = self.precache
        self._wsgi: Any = ASGIMiddleware(outer, loop=self._loop)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result: Iterable[bytes] = self._wsgi(environ, start_response)
        return result

    def close(self) -> None:
        """Idempotent."""
        if not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self.precache.aclose(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
