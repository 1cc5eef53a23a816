"""``ApiError``: what the service's core and routes raise to answer with ``{error, detail}``.

Kept free of FastAPI (the handler that turns it into a response lives in :mod:`precache.serve.errors`), so
the framework-free prediction core (:mod:`precache.serve.predictions`) can raise it too.
"""

from __future__ import annotations


class ApiError(Exception):
    """Answer ``status`` with ``{error: code, detail}`` (and optional headers)."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers
