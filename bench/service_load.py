"""The load generator of ``bench/bench_service.py``, run in its own process (its own event loop, uvloop) so that
its overhead does not share the service's loop: open loop at a fixed rate on a schedule made before the run
(latency from the *scheduled* time: coordinated omission counted) or closed loop at a fixed concurrency, over a
raw HTTP/1.1 keep-alive client. Prints one JSON line with the latency summary.

Run by ``bench_service.py`` as ``python bench/service_load.py --port P --requests FILE --mode open|closed ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import socket
import statistics
import time
from pathlib import Path
from typing import Any

TOKEN = "bench-token"


def encode(sequence: list[tuple[str, str]], port: int) -> list[bytes]:
    out = []
    for sid, page in sequence:
        body = json.dumps({"sessionId": sid, "type": "page", "context": {"currentPath": page},
                           "options": {"topK": 5}}).encode()
        out.append(b"POST /api/ml/predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (port, TOKEN.encode(), len(body), body))
    return out


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def roundtrip(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


class Pool:
    def __init__(self, port: int, limit: int) -> None:
        self.port, self.limit = port, limit
        self.idle: list[Connection] = []
        self.opened = 0
        self.waiters: collections.deque[asyncio.Future[Connection]] = collections.deque()

    async def get(self) -> Connection:
        if self.idle:
            return self.idle.pop()
        if self.opened < self.limit:
            self.opened += 1
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.transport.set_write_buffer_limits(0)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return Connection(reader, writer)
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    async def reconnect(self) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Connection(reader, writer)

    def put(self, conn: Connection) -> None:
        while self.waiters:  # someone is waiting: hand it over directly
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)


def summarize(latencies_ms: list[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return {"p50": None, "p90": None, "p99": None, "p999": None, "max": None, "mean": None}
    values = sorted(latencies_ms)

    def q(p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))], 3)

    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": round(values[-1], 3),
            "mean": round(statistics.fmean(values), 3)}


async def open_loop(port: int, requests: list[bytes], rate: float, duration: float, warmup: float) -> dict[str, Any]:
    """Send at ``rate``/s on a fixed schedule for ``warmup + duration`` s; measure the last ``duration`` s."""
    pool = Pool(port, 512)
    total = int(rate * (warmup + duration))
    start = time.perf_counter() + 0.2
    measured_from = start + warmup
    latencies: list[float] = []
    errors = 0
    late_starts = 0
    outcomes: collections.Counter[str] = collections.Counter()
    tasks: set[asyncio.Task[None]] = set()

    async def fire(i: int, scheduled: float) -> None:
        nonlocal errors, late_starts
        if time.perf_counter() - scheduled > 0.001:
            late_starts += 1
        conn = await pool.get()
        request = requests[i % len(requests)]
        try:
            status = await conn.roundtrip(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            # an idle keep-alive connection the server closed (uvicorn's keep-alive timeout): reconnect and
            # resend once, as any HTTP client does; the time spent stays in this request's latency
            outcomes["reconnects"] += 1
            try:
                conn = await pool.reconnect()
                status = await conn.roundtrip(request)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors += 1
                outcomes[type(exc).__name__] += 1
                pool.opened -= 1
                return
        pool.put(conn)
        done = time.perf_counter()
        if scheduled >= measured_from:
            outcomes[str(status)] += 1
            if status != 200:
                errors += 1
            latencies.append((done - scheduled) * 1000)

    loop = asyncio.get_running_loop()
    i = 0
    while i < total:  # wake up, start every request that is due, sleep until the next one is
        now = time.perf_counter()
        while i < total and start + i / rate <= now:
            task = loop.create_task(fire(i, start + i / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    sent_until = time.perf_counter()
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    measured = int(rate * duration)
    return {"mode": "open", "rate": rate, "duration_s": duration, "scheduled": measured, "completed": len(latencies),
            "errors": errors, "outcomes": dict(outcomes), "late_starts": late_starts, "connections": pool.opened,
            "send_overrun_s": round(sent_until - (start + total / rate), 3), **summarize(latencies)}


async def closed_loop(port: int, requests: list[bytes], concurrency: int, duration: float,
                      warmup: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = 0
    begin = time.perf_counter()
    measured_from, stop = begin + warmup, begin + warmup + duration

    async def worker(offset: int) -> None:
        nonlocal errors, counter
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(reader, writer)
        while True:
            t0 = time.perf_counter()
            if t0 >= stop:
                break
            counter += 1
            status = await conn.roundtrip(requests[(counter * 7919 + offset) % len(requests)])
            t1 = time.perf_counter()
            if t0 >= measured_from:
                latencies.append((t1 - t0) * 1000)
                if status != 200:
                    errors += 1
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"mode": "closed", "concurrency": concurrency, "duration_s": duration, "completed": len(latencies),
            "throughput_rps": round(len(latencies) / duration, 1), "errors": errors, **summarize(latencies)}


def generator_main(args: argparse.Namespace) -> None:
    import uvloop  # the generator's own overhead must stay small next to the server's (uvicorn uses it too)

    requests = encode([(sid, page) for sid, page in json.loads(Path(args.requests).read_text())], args.port)
    if args.mode == "open":
        result = uvloop.run(open_loop(args.port, requests, args.rate, args.duration, args.warmup))
    else:
        result = uvloop.run(closed_loop(args.port, requests, args.concurrency, args.duration, args.warmup))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=Path, required=True, help="JSON [[session id, page], ...]")
    parser.add_argument("--mode", choices=("open", "closed"), default="open")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    generator_main(parser.parse_args())


if __name__ == "__main__":
    main()
