"""Local child processes: a free loopback port to start one on, and ending one together with everything it
started.

Why a whole process group: ``precache serve --workers N`` forks uvicorn workers; a parent killed after its
own shutdown timed out would orphan them, and they would keep the port and the CPU (skewing every later
benchmark run, leaking into later tests). A child started with ``start_new_session=True`` leads its own
group, so the group can be signalled as one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from typing import Any

# How long to wait for a SIGKILLed child to be reaped: it cannot refuse, but the kernel needs a moment
# (on a loaded machine, more than none: a zero wait here raised TimeoutExpired).
REAP_SECONDS = 10.0


def end_process_group(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the group of ``proc`` (started with ``start_new_session=True``), wait up to ``grace`` seconds
    for a clean exit, then kill the leader and whatever is left of its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=REAP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick; another starter may
    still take it before the child binds)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
