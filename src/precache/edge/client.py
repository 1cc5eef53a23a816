"""Forward ``page`` predictions to the edge Worker, falling back to local inference.

Why a tight timeout and a breaker: the edge is an optimisation, never a dependency. A Worker that is
down, slow or answering garbage must cost the service at most one short timeout per request, and after
``failure_threshold`` consecutive failures none at all (the breaker skips the edge until ``reset_timeout``
has passed, then one probe request tries again). Every call returns ``None`` when the caller should answer
locally, and the caller reports which path answered.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx

from precache.resilience import CircuitBreaker


@dataclass(frozen=True, slots=True)
class EdgeAnswer:
    predictions: list[tuple[str, float]]
    model_version: str
    worker_id: str
    seconds: float


@dataclass(slots=True)
class EdgeStats:
    forwarded: int = 0
    answered: int = 0
    timeouts: int = 0
    errors: int = 0
    rejected: int = 0  # 4xx from the Worker (e.g. topK above its k): answered locally, not a failure
    skipped_open: int = 0
    last_error: str | None = None


class EdgeInference:
    """``await predict(...)`` -> :class:`EdgeAnswer` or ``None`` (answer locally)."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 0.05,
                 breaker: CircuitBreaker | None = None, client: httpx.AsyncClient | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"edge inference URL must be http(s)://..., got {url!r}")
        if not 0 < timeout <= 10:
            raise ValueError(f"edge inference timeout must be in (0, 10] seconds, got {timeout}")
        self.url = url.rstrip("/") + "/predict"
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker(failure_threshold=3, reset_timeout=5.0)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.AsyncClient(headers=headers, limits=httpx.Limits(max_keepalive_connections=32))
        self._own_client = client is None
        self.stats = EdgeStats()

    async def predict(self, session_id: str | None, current_path: str | None, history: list[str] | None,
                      top_k: int) -> EdgeAnswer | None:
        if not self.breaker.allow():
            self.stats.skipped_open += 1
            return None
        self.stats.forwarded += 1
        body = {"type": "page", "sessionId": session_id,
                "context": {"currentPath": current_path, "history": history}, "options": {"topK": top_k}}
        start = time.perf_counter()
        try:
            response = await self._client.post(self.url, json=body, timeout=self.timeout)
        except httpx.TimeoutException:
            self._failed("timeout", timeout=True)
            return None
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return None
        if 400 <= response.status_code < 500 and response.status_code not in (401, 403, 404, 408, 429):
            self.stats.rejected += 1
            self.breaker.neutral()
            return None
        if response.status_code != 200:
            self._failed(f"HTTP {response.status_code}")
            return None
        try:
            data = response.json()
            predictions = [(str(p["page"]), float(p["probability"])) for p in data["predictions"]]
            if len(predictions) > top_k or not all(0.0 <= q <= 1.0 and math.isfinite(q) for _, q in predictions):
                raise ValueError("predictions out of range")
            answer = EdgeAnswer(predictions, str(data.get("modelVersion")), str(data.get("workerId")),
                                time.perf_counter() - start)
        except (ValueError, KeyError, TypeError) as exc:
            self._failed(f"bad answer: {exc}")
            return None
        self.breaker.success()
        self.stats.answered += 1
        return answer

    def _failed(self, reason: str, timeout: bool = False) -> None:
        """Count a failure against the edge (opens the breaker after enough of them)."""
        self.breaker.failure()
        if timeout:
            self.stats.timeouts += 1
        else:
            self.stats.errors += 1
        self.stats.last_error = reason[:200]
        return None

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
