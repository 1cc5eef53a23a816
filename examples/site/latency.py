"""A loopback TCP proxy that adds network latency, so a benchmark on one machine pays round trips.

Why not Chromium's DevTools network emulation: measured on this machine it did not delay navigations
(network-delivered pages with ``responseStart`` of 8 ms under a "40 ms" setting). This proxy delays bytes
themselves: every chunk is forwarded ``latency / 2`` after it arrived, in each direction, order kept and
chunks not serialised behind each other's delay (a pipe, not a queue of sleeps), and a new connection
waits one full ``latency`` before its first byte goes upstream (the TCP handshake's round trip). So every
request on the wire costs at least one round trip of ``latency``; the benchmark checks it in the browser.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from examples.site.harness import free_port


class DelayingProxy:
    """``with DelayingProxy(upstream_port, 40.0).running() as base_url:``"""

    def __init__(self, upstream_port: int, latency_ms: float, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.latency = latency_ms / 1000.0
        self.port = free_port()
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            with suppress(OSError):
                writer.write_eof()

        task = asyncio.create_task(deliver())
        self._track(task)
        try:
            while data := await reader.read(65536):
                queue.put_nowait((time.monotonic() + delay, data))
        except OSError:
            pass
        finally:
            queue.put_nowait((time.monotonic() + delay, b""))
            with suppress(OSError, asyncio.CancelledError):
                await task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        current = asyncio.current_task()
        if current is not None:
            self._track(current)  # type: ignore[arg-type]
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.sleep(self.latency)  # the handshake's round trip
        try:
            await asyncio.gather(self._pipe(reader, up_writer, self.latency / 2),
                                 self._pipe(up_reader, writer, self.latency / 2))
        finally:
            for w in (writer, up_writer):
                with suppress(OSError):
                    w.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @contextmanager
    def running(self) -> Iterator[str]:
        thread = threading.Thread(target=self._loop.run_forever, name="delaying-proxy", daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(timeout=5)


@contextmanager
def delayed(base_url: str, latency_ms: float) -> Iterator[str]:
    """``base_url`` (``http://127.0.0.1:PORT``) behind a :class:`DelayingProxy`; itself when latency is 0."""
    if latency_ms <= 0:
        yield base_url
        return
    port = int(base_url.rsplit(":", 1)[1])
    with DelayingProxy(port, latency_ms).running() as proxied:
        yield proxied
