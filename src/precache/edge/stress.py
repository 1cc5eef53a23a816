"""Adversarial loads for a local Worker (issue 27), shared by ``tests/edge`` and ``bench/bench_edge.py``: a
batch flood of many sessions with long histories, a chunked body without Content-Length, a hung origin.

Why shared: the test asserts the bounds and the benchmark reports the figures; both must send the same load.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator

MIB = 1024 * 1024
# Cloudflare gives an isolate 128 MB of memory; local workerd sets no V8 heap limit (V8 then sizes its heap
# from the machine's RAM and collects late), so the memory figures run the isolate with that limit as well.
ISOLATE_LIMIT_FLAGS = ("--max-heap-size=128",)


def flood_body(batch: int, sessions: int = 256, pages: int = 50) -> bytes:
    """One ~1 MB ``/predict/batch`` body (the limit is 1 MiB): ``sessions`` new session ids, each with
    ``pages`` distinct 75-character paths, so nothing is shared between sessions or batches."""
    requests = [{"sessionId": f"s-{batch}-{i}", "context": {
        "history": [f"/flood/{batch}/{i}/{j}/" + "x" * 60 for j in range(pages)], "currentPath": "/hub"}}
        for i in range(sessions)]
    return json.dumps({"requests": requests}).encode()


def send_chunked(url: str, total: int, token: str | None, path: str = "/predict") -> tuple[int, bytes]:
    """POST ``total`` bytes to ``path`` with Transfer-Encoding: chunked (no Content-Length), reading the answer
    meanwhile; returns (bytes sent before the Worker answered or hung up, the answer's head)."""
    host, port = url.removeprefix("http://").split(":")
    answer = bytearray()
    answered = threading.Event()
    auth = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
                     + auth + b"Transfer-Encoding: chunked\r\n\r\n")

        def read() -> None:
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in answer and (data := sock.recv(65536)):
                    answer.extend(data)
            answered.set()

        reader = threading.Thread(target=read)
        reader.start()
        chunk = b"[" + b"1," * 32767 + b"1"
        sent = 0
        with contextlib.suppress(OSError):  # the Worker answered 413 and closed while we were still sending
            while sent < total and not answered.is_set():
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        reader.join(10)
    return sent, bytes(answer)


@contextlib.contextmanager
def hung_origin() -> Iterator[str]:
    """A manifest URL on loopback whose server accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/edge-manifest.json"
