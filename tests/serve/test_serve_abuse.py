"""Abuse an operator meets (issue 28), on a real ``precache serve``: half-open connections that never finish
their headers are answered 408 and closed after ``PRECACHE_HEADER_TIMEOUT_SECONDS`` (they were held for ever,
without any token checked), and the dashboard's sign-in stops a client guessing tokens (429 + Retry-After;
300 wrong tokens went through in 0.3 s)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_harness import TOKEN, running_service, service_env, train_model


@pytest.mark.slow
def test_slow_headers_are_cut_off_and_sign_in_is_throttled(redis_server: Any, tmp_path: Path) -> None:
    env = service_env(redis_server.url, train_model(tmp_path / "ppm"), PRECACHE_HEADER_TIMEOUT_SECONDS="1")
    with running_service(env) as service:
        slow = []
        for i in range(40):  # half a request line each, then silence; some send nothing at all
            sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            if i % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(sock)
        started = time.monotonic()
        for sock in slow:
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
            sock.close()
        assert time.monotonic() - started < 6, "half-open connections were held past the header timeout"
        with httpx.Client(base_url=service.url, timeout=10) as client:  # a normal request is unaffected
            assert client.get("/healthz").status_code == 200
            statuses = [client.post("/dashboard/login", data={"token": f"guess-{i}"}).status_code for i in range(8)]
            assert statuses[:5] == [401] * 5 and statuses[5:] == [429] * 3, statuses
            refused = client.post("/dashboard/login", data={"token": TOKEN})  # even the right one, for now
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
