"""``PrecacheWSGIMiddleware``: the same middleware for WSGI apps (Flask, Django through WSGI).

It is the ASGI middleware, not a second implementation: a2wsgi runs the WSGI app as an ASGI app (in a
thread pool) inside :class:`~precache.web.asgi.PrecacheMiddleware`, and exposes the result as WSGI again,
with the cache, the warmer and the in-process warming requests on one event-loop thread of its own. So
both kinds of app get the same caching rules, sessions, hints and warming, by construction.

One WSGI fact a2wsgi does not pass on: an app that returns a list (``return [b"..."]``) has told its whole
body, but a2wsgi streams it chunk by chunk without a ``Content-Length``, which would make every such
response a stream that is never stored. :func:`with_length` adds the header for such apps, as wsgiref's
own server does, before a2wsgi sees the response.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

from a2wsgi import ASGIMiddleware, WSGIMiddleware

from precache.cache.layered import PredictiveCache
from precache.history import HistoryStore
from precache.warming.warmer import WarmerConfig
from precache.web.asgi import PrecacheMiddleware
from precache.web.config import WebConfig
from precache.web.hints import Predictor
from precache.web.marks import RouteMarks

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class _LengthShim:
    """``start_response`` for the wrapped app: held until the app returns, so a list result's length can
    be added; forwarded at once when the app writes, passes ``exc_info`` or returns a generator."""

    def __init__(self, start_response: Any) -> None:
        self.start_response = start_response
        self.held: tuple[str, list[tuple[str, str]]] | None = None
        self.forwarded = False
        self.write: Any = None

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if self.forwarded or exc_info is not None:
            self.forwarded = True
            self.write = self.start_response(status, headers, exc_info)
            return self.write
        self.held = (status, list(headers))
        return self._write

    def _write(self, data: bytes) -> None:
        self.release()
        self.write(data)

    def release(self, length: int | None = None) -> None:
        if self.forwarded or self.held is None:
            self.forwarded = True
            return
        status, headers = self.held
        if length is not None and not any(name.lower() == "content-length" for name, _ in headers):
            headers = [*headers, ("Content-Length", str(length))]
        self.forwarded = True
        self.write = self.start_response(status, headers)


def with_length(app: WSGIApp) -> WSGIApp:
    """``app`` with ``Content-Length`` added to responses it returns as a list or tuple of bytes."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        shim = _LengthShim(start_response)
        result = app(environ, shim)
        if isinstance(result, list | tuple) and all(isinstance(c, bytes) for c in result):
            shim.release(sum(len(c) for c in result))
        else:
            shim.release()
        return result

    return wrapped


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
        route_marks: RouteMarks | None = None,
        workers: int = 10,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="precache-wsgi", daemon=True)
        self._thread.start()
        # a2wsgi types ASGI with its own TypedDicts, Starlette with plain mappings: the same protocol
        sized: Any = with_length(wsgi_app)
        inner: Any = WSGIMiddleware(sized, workers=workers)
        self.precache = PrecacheMiddleware(inner, cache, predictor=predictor, config=config, warm=warm,
                                           warmer_config=warmer_config, histories=histories,
                                           route_marks=route_marks)
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
