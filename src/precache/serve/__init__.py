"""``precache serve``: the HTTP service (FastAPI on uvicorn) -- ``/api/ml/*``, ``/healthz``, ``/readyz``.

Importing this package is cheap; :func:`create_app` (in :mod:`precache.serve.app`) builds the application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from precache.serve.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from precache.serve.app import create_app

        return create_app
    raise AttributeError(name)
