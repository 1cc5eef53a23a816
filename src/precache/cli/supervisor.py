"""``precache serve``'s processes: uvicorn's server and supervisor with three fixes for a clean stop (issue 28).

1. **Drain before closing.** At shutdown uvicorn closed the listening socket at once -- the kernel resets the
   connections it had completed but the server had not accepted yet -- and then closed every connection not
   inside a request, including one accepted a moment ago whose request the event loop had not read: those
   clients sent a request and got an empty answer (4-9 per stop under load). :class:`DrainingServer` first
   shrinks the accept queue and keeps accepting for :data:`DRAIN_SECONDS`, then stops listening (taking what
   the kernel had queued in the same step), lets the last accepted connections deliver their requests, and
   only then goes on as uvicorn does.
2. **The parent stops listening at once.** With ``--workers N`` the parent binds the socket and every worker
   inherits a copy; the parent's copy kept it listening after the workers closed theirs, so the kernel went on
   completing handshakes nobody would accept. :class:`CleanSupervisor` closes it on SIGTERM / Ctrl-C.
3. **Waiting for the workers has a deadline** (``PRECACHE_SHUTDOWN_SECONDS``): uvicorn joined them without
   one, so one hung worker kept the service and its port alive for ever. A worker still alive then is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from uvicorn import Server
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger("precache.serve")
DRAIN_SECONDS = 0.3  # accepting with the smallest queue before the listening socket closes
SETTLE_SECONDS = 0.5  # for the last accepted connections to deliver their requests (a busy CPU is slow to read)


_TAKEN_OVER: list[bool] = []


def signals_taken_over() -> bool:
    """True once a server in this process handles SIGTERM itself (uvicorn's capture, then its re-raise)."""
    return bool(_TAKEN_OVER)


class DrainingServer(Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        _TAKEN_OVER.append(True)
        with super().capture_signals():
            yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # 1. Shrink the accept queue to its minimum: handshakes the kernel already completed are still
        #    accepted and served, new ones find the queue full (the client's retry then meets a closed port).
        for server in self.servers:
            for listening in server.sockets:
                _shrink_backlog(listening.fileno())
        await asyncio.sleep(DRAIN_SECONDS)
        # 2. Stop listening without resetting a completed handshake: take what the kernel queued and close the
        #    socket in one step, without yielding to the loop, then serve what was taken.
        loop = asyncio.get_running_loop()
        for conn in self._close_listening(sockets):
            await loop.connect_accepted_socket(self._protocol, conn)
        # What was accepted last delivers its request, then uvicorn's graceful shutdown.
        await asyncio.sleep(SETTLE_SECONDS)
        await super().shutdown(sockets)

    def _close_listening(self, sockets: list[socket.socket] | None) -> list[socket.socket]:
        """Close every listening descriptor and return the connections the kernel had completed meanwhile.

        Why: closing a listening socket resets the handshakes queued on it, and a client that had sent its
        request sees a reset. A duplicate keeps the socket open while the loop's copies close; the queue is
        then emptied and the duplicate closed with no await in between, so the window is microseconds."""
        duplicates = [socket.socket(fileno=os.dup(listening.fileno()))
                      for server in self.servers for listening in server.sockets]
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        taken: list[socket.socket] = []
        for dup in duplicates:
            dup.setblocking(False)
            while True:
                try:
                    conn, _ = dup.accept()
                except OSError:  # BlockingIOError: the queue is empty
                    break
                taken.append(conn)
            dup.close()
        return taken

    def _protocol(self) -> asyncio.Protocol:
        """The protocol uvicorn's own listener gives each connection (Server.startup's create_protocol)."""
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state,
            _loop=asyncio.get_running_loop())


def _shrink_backlog(fd: int) -> None:
    """``listen(0)`` on a listening socket we do not own the object of (a duplicate of its descriptor)."""
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as dup:
        dup.listen(0)


class DrainingProcess(Process):
    """A worker process that runs a :class:`DrainingServer`."""

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class CleanSupervisor(Multiprocess):
    def __init__(self, config: Any, sockets: list[socket.socket], stop_seconds: float) -> None:
        super().__init__(config, sockets)
        self.stop_seconds = stop_seconds

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            process = DrainingProcess(self.config, self.sockets)
            process.start()
            self.processes.append(process)

    def keep_subprocess_alive(self) -> None:
        """uvicorn's, with draining workers as replacements (a dead or hung worker is replaced)."""
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if self.should_exit.is_set():
                return
            log.info("worker %s died; starting another", process.pid)
            replacement = DrainingProcess(self.config, self.sockets)
            replacement.start()
            self.processes[index] = replacement

    def _stop_listening(self) -> None:
        for sock in self.sockets:
            sock.close()

    def handle_term(self) -> None:
        self._stop_listening()
        super().handle_term()

    def handle_int(self) -> None:
        self._stop_listening()
        super().handle_int()

    def join_all(self) -> None:
        deadline = time.monotonic() + self.stop_seconds
        for worker in self.processes:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        for worker in self.processes:
            if worker.process.is_alive():
                log.error("worker %s did not stop within %.0f s (PRECACHE_SHUTDOWN_SECONDS); killing it",
                          worker.pid, self.stop_seconds)
                worker.kill()
                worker.process.join(timeout=5)
