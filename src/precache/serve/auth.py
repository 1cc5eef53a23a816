"""Who may call what: the API token and the training key, compared in constant time.

The matrix (also in the OpenAPI description): no or malformed ``Authorization: Bearer`` header, or a
token that matches neither secret -> ``401``; the API token on a training route, or any token on a
training route while ``ML_TRAINING_API_KEY`` is unset -> ``403``. The training key grants everything the
API token does. ``--insecure-local`` (no API token configured, loopback only) opens the API routes to any
caller; the training routes still need the training key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum

from fastapi import Request

from precache.serve.errors import ApiError


class Role(IntEnum):
    ANONYMOUS = 0
    API = 1
    TRAINING = 2


@dataclass(frozen=True, slots=True)
class Caller:
    role: Role
    key: str  # a short hash of the token: rate-limit bucket and log name, never the token itself


def _same(given: bytes, secret: str | None) -> bool:
    # compare_digest on equal-length digests: the time taken says nothing about the secret or its length
    if not secret:
        return False
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(secret.encode()).digest())


class Authenticator:
    def __init__(self, api_token: str | None, training_key: str | None, insecure_local: bool = False) -> None:
        self.api_token = api_token or None
        self.training_key = training_key or None
        self.open_api_routes = insecure_local and self.api_token is None

    def identify(self, request: Request) -> Caller | None:
        """The caller's role from its bearer token; ``None`` when a token was sent and matches nothing."""
        header = request.headers.get("authorization")
        if header is None:
            return Caller(Role.ANONYMOUS, "anonymous")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = token.strip().encode()
        key = hashlib.sha256(given).hexdigest()[:16]
        if _same(given, self.training_key):
            return Caller(Role.TRAINING, key)
        if _same(given, self.api_token):
            return Caller(Role.API, key)
        return None

    def require(self, request: Request, needed: Role) -> Caller:
        caller = self.identify(request)
        challenge = {"WWW-Authenticate": "Bearer"}
        if caller is None:
            raise ApiError(401, "unauthorized", "invalid token", challenge)
        if needed == Role.TRAINING:
            if self.training_key is None:
                raise ApiError(403, "forbidden", "training routes are disabled: ML_TRAINING_API_KEY is not set")
            if caller.role == Role.ANONYMOUS:
                raise ApiError(401, "unauthorized", "missing bearer token", challenge)
            if caller.role < Role.TRAINING:
                raise ApiError(403, "forbidden", "this route needs the training key")
            return caller
        if caller.role == Role.ANONYMOUS and not self.open_api_routes:
            raise ApiError(401, "unauthorized", "missing bearer token", challenge)
        return caller
