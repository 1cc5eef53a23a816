"""precache.web: one line to add precache to a Python web app.

* :class:`PrecacheMiddleware` (ASGI: Starlette, FastAPI) and :class:`PrecacheWSGIMiddleware` (Flask,
  Django through WSGI): sessions, page views as access events, HTTP-correct shared caching of responses
  (RFC 9111, :mod:`precache.web.rules`), in-process warming of predicted pages, and browser prefetch hints
  (Speculation Rules, ``Link: rel=prefetch``) for pages predicted above the threshold.
* :class:`WebConfig`, :class:`HintConfig`: their settings.

Names load on first use (the WSGI one needs ``a2wsgi``, in the ``web`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from precache._lazy import lazy_getattr

if TYPE_CHECKING:
    from precache.web.asgi import PrecacheMiddleware
    from precache.web.config import HintConfig, WebConfig
    from precache.web.wsgi import PrecacheWSGIMiddleware

_LAZY = {
    "PrecacheMiddleware": "precache.web.asgi",
    "PrecacheWSGIMiddleware": "precache.web.wsgi",
    "WebConfig": "precache.web.config",
    "HintConfig": "precache.web.config",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = ["HintConfig", "PrecacheMiddleware", "PrecacheWSGIMiddleware", "WebConfig"]
