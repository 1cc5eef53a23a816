"""uvicorn's HTTP protocol with a header-read timeout (``PRECACHE_HEADER_TIMEOUT_SECONDS``, default 10).

Why: uvicorn waits for a request's headers for ever, so 1,500 half-open connections sending a header line
now and then were held 30 s (and would be held longer) without any token checked -- slowloris (issue 28).
Here a connection must complete each request's headers within the timeout from its first byte (or from
the connection, for the first request), else it gets ``408`` and is closed. Idle kept-alive connections are
still closed by uvicorn's ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT: list[float] = []


def header_timeout() -> float:
    if not _TIMEOUT:
        from precache.serve.settings import get_serve_settings

        _TIMEOUT.append(float(get_serve_settings().header_timeout_seconds))
    return _TIMEOUT[0]


class HeaderTimeoutProtocol(HttpToolsProtocol):
    _header_timer: asyncio.TimerHandle | None = None
    _last_request: bool = False
    _fresh: bool = True  # accepted, and no byte of a first request read yet

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        self._fresh = False
        super().on_message_begin()
        if self._header_timer is None:  # the next request of a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self._last_request and self.cycle is not None:
            self.cycle.keep_alive = False  # answered, then closed: the server is stopping

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown closes a connection with no request in progress; one whose request bytes
        the loop has not read yet would then be reset (a client that sent a request and got no answer, issue
        28), and so would one accepted a moment ago whose first request is still on its way (the client sends
        it into a closed socket). Such a connection is answered first and closed after its response; one
        whose request never comes is bounded by the header timeout and the graceful-shutdown deadline. An
        idle kept-alive connection is closed at once, as HTTP allows."""
        if self.cycle is None and (self._fresh or _unread_bytes(self.transport) > 0):
            self._last_request = True
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(header_timeout(), self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            self.transport.close()


def _unread_bytes(transport: Any) -> int:
    """Bytes the kernel holds for this connection that the loop has not read (0 when it cannot tell)."""
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0
