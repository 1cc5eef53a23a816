"""Run a coroutine synchronously until it first blocks; only then hand it to a task.

Why: in the replay almost every ``cache.get`` is a hit that never suspends. Wrapping each in an
``asyncio.Task`` costs a task object plus a trip through the event loop per request (Python 3.11 has no
eager task factory). ``start_eager`` steps the coroutine by hand; if it finishes, the result is returned
at once, and if it blocks on a future (an origin fetch), the rest continues in a task exactly as
``asyncio.Task`` would have run it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Yield:
    """Awaitable that re-yields what the inner coroutine yielded, so the wrapping task blocks on it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, None]:
        yield self.value


async def _resume(coro: Coroutine[Any, Any, T], yielded: Any) -> T:
    while True:
        try:
            await _Yield(yielded)
        except BaseException as exc:  # cancellation of the wrapper goes to the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def start_eager(coro: Coroutine[Any, Any, T]) -> tuple[bool, T | asyncio.Task[T]]:
    """``(True, result)`` if ``coro`` completed without blocking, else ``(False, task)``.
    Exceptions raised before the first block propagate to the caller."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    task = asyncio.get_running_loop().create_task(_resume(coro, yielded))
    return False, task
