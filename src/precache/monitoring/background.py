"""The one way periodic tasks (sampler, publisher, alert loop, webhook sender, experiments hub) are stopped.

Why a deadline: a loop that catches ``Exception`` around a Redis call can swallow its own cancellation
(a cancel that lands as an ``asyncio.timeout`` expires surfaces as ``TimeoutError``), and an unbounded
``await task`` then kept a uvicorn worker in "Waiting for application shutdown." for minutes, its port open
(issue 28). :func:`cancel_task` cancels again until the task is done or the deadline passes, then abandons it
with an error in the log; loops call :func:`raise_if_cancelling` in their ``except Exception`` branches.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("precache.shutdown")
STOP_SECONDS = 5.0  # the default bound of one component's stop (the service passes its own budget)
_RECANCEL_SECONDS = 0.1


def cancelling() -> bool:
    """True when the running task has been asked to stop (``Task.cancelling()``, Python 3.11+)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def raise_if_cancelling(exc: BaseException | None = None) -> None:
    """In a loop's ``except Exception``: when the task is being cancelled, stop instead of retrying."""
    if cancelling():
        raise asyncio.CancelledError from exc


async def cancel_task(task: asyncio.Task[Any] | None, within: float = STOP_SECONDS) -> bool:
    """Cancel ``task`` and wait up to ``within`` seconds for it to finish; re-cancel while it runs.

    Returns False (and logs an error) when the task is still running at the deadline: shutdown goes on
    without it rather than hanging."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, within)
    while not task.done():
        task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.wait({task}, timeout=min(remaining, _RECANCEL_SECONDS))
    if not task.done():
        log.error("background task %s did not stop within %.1f s; abandoning it", task.get_name(), within)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning("background task %s ended with %r", task.get_name(), task.exception())
    return True


async def bounded(work: Any, within: float, what: str) -> bool:
    """Await ``work`` (a coroutine: a final flush, a close) for at most ``within`` seconds; log a failure.

    Returns True when it completed."""
    try:
        await asyncio.wait_for(work, timeout=max(0.001, within))
    except TimeoutError:
        log.error("%s did not finish within %.1f s; skipped", what, within)
        return False
    except Exception as exc:
        log.warning("%s failed (%s: %s)", what, type(exc).__name__, exc)
        return False
    return True
