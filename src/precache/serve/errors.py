"""Every error leaves the service as JSON ``{error, detail}``; none carries a stack trace.

Why one place: FastAPI answers validation errors, unknown routes and wrong methods with its own shapes,
and an unhandled exception would become a plain-text 500. The handlers here map all of them to one body
a client can parse, and a 422 names the offending field (``body.options.topK: ...``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from precache.serve.problems import ApiError

__all__ = ["ApiError", "describe_validation", "error_response", "error_responses", "install_error_handlers"]

log = logging.getLogger("precache.serve")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
          422: "validation_error", 429: "rate_limited", 503: "unavailable"}


_DESCRIPTIONS = {401: "missing, malformed or unknown token", 403: "the token lacks the right for this route",
                 404: "not found", 409: "conflict: the detail says with what", 413: "request body too large",
                 422: "invalid body, path or query: the detail names the field", 429: "rate limit exceeded",
                 503: "ML disabled, no model loaded, or a dependency is unavailable"}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: each code documented with the ``{error, detail}`` body."""
    from precache.serve.schemas import ErrorBody

    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def describe_validation(errors: list[Any]) -> str:
    """``body.options.topK: Input should be less than or equal to 50; ...`` (at most 5 problems)."""
    parts = []
    for err in errors[:5]:
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{_field(err.get('loc', ()))}: {message}")
    if len(errors) > 5:
        parts.append(f"... and {len(errors) - 5} more")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "validation_error", describe_validation(list(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" (not UTF-8): an invalid body like any other
            return error_response(422, "validation_error", "body: not valid UTF-8 JSON")
        code = _CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else code
        return error_response(exc.status_code, code, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s while answering a request: %s", type(exc).__name__, exc)
        return error_response(500, "internal", f"unexpected {type(exc).__name__}; see the service log")
